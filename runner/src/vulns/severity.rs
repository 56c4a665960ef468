//! Severity levels, and the severity (and CVSS base score) of one record for one package.

use std::fmt;
use std::str::FromStr;

use super::record::{Affected, OsvRecord, SeverityEntry, specific_severity};

/// A vulnerability's severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The record gives no severity the matcher understands.
    Unknown,
    /// CVSS 0.1–3.9.
    Low,
    /// CVSS 4.0–6.9 (GHSA's `MODERATE`).
    Medium,
    /// CVSS 7.0–8.9.
    High,
    /// CVSS 9.0–10.0.
    Critical,
}

/// A severity name that is not one of `UNKNOWN|LOW|MEDIUM|MODERATE|HIGH|CRITICAL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected LOW, MEDIUM, HIGH or CRITICAL)")]
pub struct ParseSeverityError(pub String);

impl FromStr for Severity {
    type Err = ParseSeverityError;

    /// Case-insensitive; `MODERATE` is `Medium`; `UNKNOWN` is accepted so that
    /// `Display` round-trips.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "UNKNOWN" => Ok(Self::Unknown),
            "LOW" => Ok(Self::Low),
            "MEDIUM" | "MODERATE" => Ok(Self::Medium),
            "HIGH" => Ok(Self::High),
            "CRITICAL" => Ok(Self::Critical),
            _ => Err(ParseSeverityError(s.to_owned())),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "UNKNOWN",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        })
    }
}

impl Severity {
    /// The CVSS qualitative rating of a base score (0.0 is "None": `Unknown` here).
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Unknown,
        }
    }

    /// A label as databases write it: the `FromStr` names plus Ubuntu's `negligible`
    /// and Red Hat's `important`; anything else (e.g. `untriaged`) is `Unknown`.
    fn from_label(label: &str) -> Self {
        match label.trim().to_ascii_uppercase().as_str() {
            "NEGLIGIBLE" => Self::Low,
            "IMPORTANT" => Self::High,
            other => other.parse().unwrap_or(Self::Unknown),
        }
    }
}

/// The CVSS base score of a `CVSS:3.x/...` or `CVSS:4.0/...` vector; `None` when the
/// `cvss` crate cannot read it (CVSS v2 is not enabled: OSV sources give v3 beside it).
pub fn cvss_base_score(vector: &str) -> Option<f64> {
    let cvss: cvss::Cvss = vector.trim().parse().ok()?;
    let score = cvss.score();
    score.is_finite().then_some(score)
}

/// Severity and highest CVSS score found in some `severity[]` entries.
fn from_entries(entries: &[SeverityEntry]) -> (Severity, Option<f64>) {
    let mut severity = Severity::Unknown;
    let mut best: Option<f64> = None;
    for entry in entries {
        match entry.kind.as_str() {
            "CVSS_V3" | "CVSS_V4" => {
                if let Some(score) = cvss_base_score(&entry.score) {
                    severity = severity.max(Severity::from_score(score));
                    best = Some(best.map_or(score, |b| b.max(score)));
                }
            }
            // Ubuntu's records carry a priority label, not a vector.
            "Ubuntu" => severity = severity.max(Severity::from_label(&entry.score)),
            _ => {}
        }
    }
    (severity, best)
}

/// The severity of a record as a whole: its `severity[]` and
/// `database_specific.severity`.
pub fn record_severity(record: &OsvRecord) -> (Severity, Option<f64>) {
    let (severity, score) = from_entries(&record.severity);
    let label = specific_severity(record.database_specific.as_ref()).map(Severity::from_label);
    (severity.max(label.unwrap_or(Severity::Unknown)), score)
}

/// What one `affected[]` entry adds: its `severity[]`, and
/// `ecosystem_specific.severity` / `database_specific.severity` when strings.
pub fn affected_severity(affected: &Affected) -> (Severity, Option<f64>) {
    let (mut severity, score) = from_entries(&affected.severity);
    for value in [&affected.ecosystem_specific, &affected.database_specific] {
        if let Some(label) = specific_severity(value.as_ref()) {
            severity = severity.max(Severity::from_label(label));
        }
    }
    (severity, score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        assert_eq!("high".parse(), Ok(Severity::High));
        assert_eq!("Moderate".parse(), Ok(Severity::Medium));
        assert_eq!(" CRITICAL ".parse(), Ok(Severity::Critical));
        assert!("severe".parse::<Severity>().is_err());
        for s in [Severity::Unknown, Severity::Low, Severity::Critical] {
            assert_eq!(s.to_string().parse(), Ok(s));
        }
        assert!(Severity::Unknown < Severity::Low && Severity::High < Severity::Critical);
    }

    #[test]
    fn cvss_ratings() {
        assert_eq!(Severity::from_score(0.0), Severity::Unknown);
        assert_eq!(Severity::from_score(3.9), Severity::Low);
        assert_eq!(Severity::from_score(4.0), Severity::Medium);
        assert_eq!(Severity::from_score(7.0), Severity::High);
        assert_eq!(Severity::from_score(8.9), Severity::High);
        assert_eq!(Severity::from_score(9.0), Severity::Critical);
    }

    #[test]
    fn base_score_from_vectors() {
        let v3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
        assert_eq!(cvss_base_score(v3), Some(9.8));
        let elliptic = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N";
        assert_eq!(cvss_base_score(elliptic), Some(6.8));
        let v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
        assert_eq!(cvss_base_score(v4), Some(9.3));
        assert_eq!(cvss_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P"), None);
        assert_eq!(cvss_base_score("garbage"), None);
    }

    #[test]
    fn labels() {
        assert_eq!(Severity::from_label("negligible"), Severity::Low);
        assert_eq!(Severity::from_label("untriaged"), Severity::Unknown);
        assert_eq!(Severity::from_label("MODERATE"), Severity::Medium);
    }
}
