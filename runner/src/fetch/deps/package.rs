//! A package a lockfile pins: ecosystem, name, version and the digests the lockfile allows.

use airlock_attest::Sha256Digest;
use airlock_job::Ecosystem;
use sha2::Digest as _;

use super::{DepsError, cargo, npm, pypi};

/// A digest a lockfile pins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PackageDigest {
    /// sha256 (cargo `checksum`, pip `--hash=sha256:`).
    Sha256(Sha256Digest),
    /// sha512 (npm `integrity`), 64 bytes.
    Sha512(Box<[u8; 64]>),
}

impl PackageDigest {
    /// The in-toto DigestSet algorithm name: `sha256` or `sha512`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Sha256(_) => "sha256",
            Self::Sha512(_) => "sha512",
        }
    }

    /// Lowercase hex.
    pub fn hex(&self) -> String {
        match self {
            Self::Sha256(d) => d.hex(),
            Self::Sha512(d) => hex::encode(&d[..]),
        }
    }

    /// `alg:hex`, for messages.
    pub fn prefixed(&self) -> String {
        format!("{}:{}", self.algorithm(), self.hex())
    }

    /// The digest of `bytes` with this digest's algorithm.
    pub fn of_same_kind(&self, bytes: &[u8]) -> Self {
        match self {
            Self::Sha256(_) => Self::Sha256(Sha256Digest::of(bytes)),
            Self::Sha512(_) => Self::Sha512(Box::new(sha2::Sha512::digest(bytes).into())),
        }
    }
}

/// One package of a lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name as the ecosystem spells it (`@scope/name` for npm; PEP 503-normalized for
    /// PyPI).
    pub name: String,
    /// Its exact version.
    pub version: String,
    /// The digests the lockfile allows, at least one. Cargo and npm pin one archive; a pip
    /// requirement lists one hash per distribution file of that version (wheels, sdist).
    pub pins: Vec<PackageDigest>,
}

impl Package {
    /// `name@version`, for messages.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The package URL (purl) naming this package: `pkg:cargo/fnv@1.0.7`,
    /// `pkg:npm/%40scope/name@1.2.3`, `pkg:pypi/name@1.0`.
    pub fn purl(&self) -> String {
        let (namespace, name) = match (self.ecosystem, self.name.split_once('/')) {
            (Ecosystem::Npm, Some((scope, name))) if scope.starts_with('@') => (Some(scope), name),
            _ => (None, self.name.as_str()),
        };
        // The parsers only produce names purls can hold; keep a readable form anyway.
        let fallback = || format!("pkg:{}/{}@{}", self.ecosystem, self.name, self.version);
        let Ok(mut purl) = packageurl::PackageUrl::new(self.ecosystem.as_str(), name) else {
            return fallback();
        };
        if let Some(ns) = namespace
            && purl.with_namespace(ns).is_err()
        {
            return fallback();
        }
        if purl.with_version(self.version.as_str()).is_err() {
            return fallback();
        }
        purl.to_string()
    }
}

/// The packages `text`, the lockfile `lockfile` of `ecosystem`, pins (every one, deduplicated,
/// in a stable order), or the first reason it cannot be used hermetically.
pub fn parse_lockfile(
    ecosystem: Ecosystem,
    lockfile: &str,
    text: &str,
) -> Result<Vec<Package>, DepsError> {
    let mut packages = match ecosystem {
        Ecosystem::Cargo => cargo::parse(lockfile, text)?,
        Ecosystem::Npm => npm::parse(lockfile, text)?,
        Ecosystem::Pypi => pypi::parse(lockfile, text)?,
    };
    packages.sort_by(|a, b| (&a.name, &a.version, &a.pins).cmp(&(&b.name, &b.version, &b.pins)));
    packages.dedup();
    Ok(packages)
}
