//! An offline OSV vulnerability database and matcher, for the per-profile
//! vulnerability gate (`[sbom] deny_vulnerable = "HIGH"`).
//!
//! [`OsvDatabase::load`] reads a directory tree of OSV JSON records (e.g. the
//! unzipped per-ecosystem `all.zip` exports of osv.dev); [`OsvDatabase::affecting`]
//! answers, for one package URL, which records affect it; [`gate`] keeps the findings
//! at or above a threshold. Supported: Debian and Ubuntu (dpkg order, source
//! packages), Alpine (apk order), crates.io and npm (SemVer), PyPI (PEP 440); see
//! `query.rs` for the purl mapping and `range.rs` for range evaluation.
//!
//! Not supported: other ecosystems (`rpm`, Go, Maven, Ubuntu Pro, ...: loaded, never
//! matched), `GIT` ranges (only a record's `versions` list can match then), CVSS v2
//! vectors (the v3/v4 vectors or labels beside them count), files holding an array of
//! records, and event keys beyond the four the schema defines (a load error).

mod database;
mod ecosystem;
mod error;
mod query;
mod range;
mod record;
mod severity;
#[cfg(test)]
mod tests;
pub mod version;

use std::cmp::Ordering;
use std::path::Path;

pub use database::MAX_FILE_BYTES;
pub use error::OsvError;
pub use severity::{ParseSeverityError, Severity};

/// One record affecting one package.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The record id (`GHSA-…`, `DSA-…`, `RUSTSEC-…`).
    pub id: String,
    /// Other ids of the vulnerability (CVE, …).
    pub aliases: Vec<String>,
    /// The queried purl, as given.
    pub purl: String,
    /// The record's summary, or the first line of its details.
    pub summary: Option<String>,
    /// The highest severity the record gives for this package.
    pub severity: Severity,
    /// The highest CVSS base score among its CVSS vectors, when it has any.
    pub score: Option<f64>,
    /// The smallest `fixed` event above the package's version, if any.
    pub fixed_version: Option<String>,
    /// When the record last changed (RFC 3339).
    pub modified: Option<String>,
}

/// An in-memory OSV database, indexed by (ecosystem, package name).
pub struct OsvDatabase {
    loaded: database::Loaded,
}

// Tens of thousands of records: `Debug` (of a runner's config, say) shows the count only.
impl std::fmt::Debug for OsvDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsvDatabase")
            .field("records", &self.len())
            .finish_non_exhaustive()
    }
}

impl OsvDatabase {
    /// Loads every `*.json` file under `dir`, recursively, one record per file. Hidden
    /// entries (`.name`) and non-`.json` files are skipped; a symlink inside the tree,
    /// a file over [`MAX_FILE_BYTES`] or a file that is not an OSV record is an error
    /// naming the file (and, for a parse error, the JSON path).
    pub fn load(dir: &Path) -> Result<Self, OsvError> {
        database::load(dir).map(|loaded| Self { loaded })
    }

    /// How many records were loaded (withdrawn records excluded; a record of an
    /// ecosystem that is not indexed counts, though it matches nothing).
    pub fn len(&self) -> usize {
        self.loaded.records.len()
    }

    /// Whether no record was loaded.
    pub fn is_empty(&self) -> bool {
        self.loaded.records.is_empty()
    }

    /// Every known vulnerability affecting the package `purl`, most severe first;
    /// empty when none or when the purl's ecosystem is not indexed. An unparsable purl,
    /// one without a version, or an unknown `distro` qualifier is an error.
    pub fn affecting(&self, purl: &str) -> Result<Vec<Finding>, OsvError> {
        let Some(query) = query::parse(purl)? else {
            return Ok(Vec::new());
        };
        let Some(version) = query.version.as_deref() else {
            return Err(OsvError::purl(purl, "no version to compare"));
        };
        let scheme = query.family.scheme();
        let key = (query.family, query.name.clone());
        let Some(entries) = self.loaded.index.get(&key) else {
            return Ok(Vec::new());
        };
        let mut findings: Vec<(usize, Finding)> = Vec::new();
        for &(r, a) in entries {
            let record = &self.loaded.records[r];
            let affected = &record.affected[a];
            if let (Some(want), Some(have)) = (&query.release, &affected.release)
                && want != have
            {
                continue;
            }
            let eval = range::evaluate(scheme, version, &affected.ranges, &affected.versions);
            if !eval.affected {
                continue;
            }
            // Entries of one record are adjacent in the index: merge them.
            if findings.last().is_none_or(|(last, _)| *last != r) {
                findings.push((r, new_finding(record, purl)));
            }
            let Some((_, finding)) = findings.last_mut() else {
                continue;
            };
            finding.severity = finding.severity.max(affected.severity);
            finding.score = max_score(finding.score, affected.score);
            if let Some(fixed) = eval.fixed {
                let smaller = finding
                    .fixed_version
                    .as_deref()
                    .is_none_or(|have| scheme.compare(&fixed, have) == Some(Ordering::Less));
                if smaller {
                    finding.fixed_version = Some(fixed);
                }
            }
        }
        let mut findings: Vec<Finding> = findings.into_iter().map(|(_, f)| f).collect();
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
        Ok(findings)
    }
}

fn new_finding(record: &database::StoredRecord, purl: &str) -> Finding {
    Finding {
        id: record.id.clone(),
        aliases: record.aliases.clone(),
        purl: purl.to_owned(),
        summary: record.summary.clone(),
        severity: record.severity,
        score: record.score,
        fixed_version: None,
        modified: record.modified.clone(),
    }
}

fn max_score(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Findings at or above `threshold`; `include_unknown` decides whether findings
/// whose record gives no severity count (a fail-closed gate sets it).
pub fn gate(findings: &[Finding], threshold: Severity, include_unknown: bool) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| match f.severity {
            Severity::Unknown => include_unknown,
            known => known >= threshold,
        })
        .collect()
}
