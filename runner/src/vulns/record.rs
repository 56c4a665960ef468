//! The OSV record as it is on disk (the fields the matcher reads), for serde.
//!
//! Unknown fields are ignored, as the OSV schema grows by adding fields; fields the
//! matcher needs are typed, so a wrong type is an error with its JSON path.

use serde::Deserialize;
use serde_json::Value;

/// One OSV record (`https://ossf.github.io/osv-schema/`).
#[derive(Debug, Clone, Deserialize)]
pub struct OsvRecord {
    /// `id`, e.g. `GHSA-xxxx-xxxx-xxxx`, `DSA-5532-1`.
    pub id: String,
    /// RFC 3339 time of the last change.
    #[serde(default)]
    pub modified: Option<String>,
    /// Set when the record was withdrawn: it then affects nothing.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other ids of the same vulnerability (CVE, GHSA, ...).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Longer description (its first line stands in for a missing summary).
    #[serde(default)]
    pub details: Option<String>,
    /// Record-wide severities.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// The affected packages.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// Database-specific data; GHSA puts `severity` here.
    #[serde(default)]
    pub database_specific: Option<Value>,
}

/// A `severity[]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct SeverityEntry {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector (CVSS) or label (`Ubuntu`).
    pub score: String,
}

/// An `affected[]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    /// Which package (absent in some records that only name GIT ranges).
    #[serde(default)]
    pub package: Option<Package>,
    /// Package-specific severities.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Explicitly affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Ecosystem-specific data (`severity` read when a string).
    #[serde(default)]
    pub ecosystem_specific: Option<Value>,
    /// Database-specific data (`severity` read when a string).
    #[serde(default)]
    pub database_specific: Option<Value>,
}

/// `affected[].package`.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    /// OSV ecosystem, e.g. `Debian:12`, `crates.io`.
    #[serde(default)]
    pub ecosystem: Option<String>,
    /// Package name in that ecosystem.
    #[serde(default)]
    pub name: Option<String>,
    /// A purl naming the package, used when ecosystem and name are absent.
    #[serde(default)]
    pub purl: Option<String>,
}

/// `affected[].ranges[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    /// `SEMVER`, `ECOSYSTEM` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The timeline of events.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event; the schema allows exactly one key per event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The vulnerability starts here (`"0"`: from the beginning).
    Introduced(String),
    /// First version without it.
    Fixed(String),
    /// Last version with it (inclusive).
    LastAffected(String),
    /// Upper bound of the range (`"*"`: none).
    Limit(String),
}

/// `severity` inside a `*_specific` object, when it is a string.
pub fn specific_severity(value: Option<&Value>) -> Option<&str> {
    value?.get("severity")?.as_str()
}
