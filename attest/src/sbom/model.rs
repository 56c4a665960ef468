//! What an SBOM records, as typed values: the job's outputs, its source, its build image and
//! that image's OS packages, its declared inputs, its lockfile dependencies and the known
//! vulnerabilities of all of them. Both document formats are rendered from this one model.

use std::time::SystemTime;

use crate::digest::Sha256Digest;

/// Everything one job's SBOM says.
#[derive(Debug, Clone, PartialEq)]
pub struct Sbom {
    /// The document's name: the job's name.
    pub name: String,
    /// A URI no other SBOM uses (SPDX `documentNamespace`): the job attempt's URI.
    pub namespace: String,
    /// CycloneDX `serialNumber`, `urn:uuid:<uuid>`.
    pub serial_number: String,
    /// When the document was made.
    pub created: SystemTime,
    /// The airlock version that made it.
    pub tool_version: String,
    /// What the job produced (the statement's subjects).
    pub outputs: Vec<SbomOutput>,
    /// The source the steps ran on.
    pub source: SbomSource,
    /// The image the steps ran in.
    pub image: BuildImage,
    /// The job's `[[inputs]]`.
    pub inputs: Vec<SbomInput>,
    /// The packages of the job's `[[deps]]` lockfiles.
    pub dependencies: Vec<SbomDependency>,
    /// Known vulnerabilities of the image's packages and the dependencies (CycloneDX only).
    pub vulnerabilities: Vec<SbomVulnerability>,
}

/// One output: a file, or an image output named by its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomOutput {
    /// Its path under `/out` (or the image output's name).
    pub name: String,
    /// Its sha256 (an image's: the manifest's).
    pub sha256: Sha256Digest,
    /// Whether it is an OCI image.
    pub image: bool,
}

/// The job's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomSource {
    /// Where it came from (the clone URL, archive URL or local path URI).
    pub uri: String,
    /// The git commit, for git sources.
    pub git_commit: Option<String>,
    /// The archive's sha256, for archive and path sources.
    pub sha256: Option<Sha256Digest>,
}

/// The build image and what its package databases list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildImage {
    /// The reference the job named (digest-pinned).
    pub reference: String,
    /// Its manifest digest.
    pub manifest: Sha256Digest,
    /// What the runner read from its package databases.
    pub contents: ImageContents,
}

/// What an image's package databases say is installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageContents {
    /// From `/etc/os-release` (or `/usr/lib/os-release`).
    pub os: Option<OsRelease>,
    /// Every installed package.
    pub packages: Vec<OsPackage>,
    /// The in-image paths of the databases that were read.
    pub databases: Vec<String>,
    /// Databases present that could not be read, each with why.
    pub unsupported: Vec<String>,
}

/// The image's operating system, from os-release(5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID` (`debian`, `alpine`, `fedora`).
    pub id: String,
    /// `VERSION_ID` (`12`, `3.19.1`).
    pub version_id: Option<String>,
    /// `VERSION_CODENAME` (`bookworm`).
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
}

/// Which package manager's database listed a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PackageManager {
    /// Debian's dpkg (`/var/lib/dpkg/status`).
    Dpkg,
    /// Alpine's apk (`/lib/apk/db/installed`).
    Apk,
    /// RPM (`/var/lib/rpm/rpmdb.sqlite`).
    Rpm,
}

impl PackageManager {
    /// `dpkg`, `apk` or `rpm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dpkg => "dpkg",
            Self::Apk => "apk",
            Self::Rpm => "rpm",
        }
    }

    /// The manager named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "dpkg" => Some(Self::Dpkg),
            "apk" => Some(Self::Apk),
            "rpm" => Some(Self::Rpm),
            _ => None,
        }
    }

    /// The purl type of its packages.
    pub fn purl_type(self) -> &'static str {
        match self {
            Self::Dpkg => "deb",
            Self::Apk => "apk",
            Self::Rpm => "rpm",
        }
    }
}

/// One installed OS package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsPackage {
    /// The database it is listed in.
    pub manager: PackageManager,
    /// Its name.
    pub name: String,
    /// Its version, exactly as the database has it.
    pub version: String,
    /// Its architecture.
    pub architecture: Option<String>,
    /// The source package it was built from, when named.
    pub source_name: Option<String>,
    /// That source package's version, when it differs.
    pub source_version: Option<String>,
    /// Its licenses as declared (deduplicated, sorted); empty when none are.
    pub licenses: Vec<String>,
}

/// One `[[inputs]]` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomInput {
    /// Its name (`/inputs/<name>`).
    pub name: String,
    /// Where it was downloaded from.
    pub url: String,
    /// Its sha256.
    pub sha256: Sha256Digest,
}

/// One package file a `[[deps]]` lockfile pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomDependency {
    /// Its package URL.
    pub purl: String,
    /// `sha256` or `sha512`.
    pub algorithm: String,
    /// That digest, lowercase hex.
    pub hex: String,
    /// Where the runner fetched it.
    pub download_location: String,
}

/// A known vulnerability of one package, from the runner's OSV database.
#[derive(Debug, Clone, PartialEq)]
pub struct SbomVulnerability {
    /// The advisory id (`CVE-…`, `GHSA-…`, `DSA-…`).
    pub id: String,
    /// Other ids of the same advisory.
    pub aliases: Vec<String>,
    /// The affected package's purl (an OS package's or a dependency's).
    pub purl: String,
    /// `critical`, `high`, `medium`, `low` or `unknown`.
    pub severity: String,
    /// The CVSS base score, when known.
    pub score: Option<f64>,
    /// A one-line summary.
    pub summary: Option<String>,
    /// The first version that fixes it, when known.
    pub fixed_version: Option<String>,
}
