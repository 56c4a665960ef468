//! Whether a version is in an `affected[]` entry: its `versions` list and its ranges,
//! evaluated as the OSV schema's "Evaluation" pseudocode says.
//!
//! `ECOSYSTEM` ranges use the ecosystem's order, `SEMVER` ranges SemVer, `GIT` (and
//! unknown) ranges are ignored. A range in which the queried version or an event's
//! version does not parse cannot be evaluated and does not match: the record then
//! affects the version only through its explicit `versions` list.

use std::cmp::Ordering;

use super::record::{Event, Range};
use super::version::{Scheme, Version};

/// The outcome for one `affected[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The version is affected.
    pub affected: bool,
    /// The smallest `fixed` event above the version, in any evaluable range.
    pub fixed: Option<String>,
}

/// An event's version: `introduced: "0"` is below, `limit: "*"` above every version.
#[derive(Debug)]
enum Bound {
    Min,
    At(Version),
    Max,
}

impl Bound {
    fn cmp_version(&self, v: &Version) -> Option<Ordering> {
        match self {
            Self::Min => Some(Ordering::Less),
            Self::At(b) => b.compare(v),
            Self::Max => Some(Ordering::Greater),
        }
    }
    fn cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Min, Self::Min) | (Self::Max, Self::Max) => Some(Ordering::Equal),
            (Self::Min, _) | (_, Self::Max) => Some(Ordering::Less),
            (_, Self::Min) | (Self::Max, _) => Some(Ordering::Greater),
            (Self::At(a), Self::At(b)) => a.compare(b),
        }
    }
}

/// Evaluates `version` against one entry. `scheme` is the ecosystem's order.
pub fn evaluate(
    scheme: Scheme,
    version: &str,
    ranges: &[Range],
    versions: &[String],
) -> Evaluation {
    let listed = versions.iter().any(|listed| {
        listed == version || scheme.compare(listed, version) == Some(Ordering::Equal)
    });
    let mut affected = listed;
    let mut fixed: Option<(Version, &str)> = None;
    for range in ranges {
        let range_scheme = match range.kind.as_str() {
            "ECOSYSTEM" => scheme,
            "SEMVER" => Scheme::SemVer,
            _ => continue,
        };
        let Some(v) = range_scheme.parse(version) else {
            continue;
        };
        let Some(events) = parse_events(range_scheme, &range.events) else {
            continue;
        };
        affected |= in_range(&v, &events) == Some(true);
        for (event, bound) in &events {
            if let (Event::Fixed(text), Bound::At(f)) = (event, bound)
                && f.compare(&v) == Some(Ordering::Greater)
                && fixed
                    .as_ref()
                    .is_none_or(|(best, _)| f.compare(best) == Some(Ordering::Less))
            {
                fixed = Some((f.clone(), text.as_str()));
            }
        }
    }
    Evaluation {
        affected,
        fixed: fixed.map(|(_, text)| text.to_owned()),
    }
}

/// Parses every event's version, sorted by it; `None` when one does not parse.
fn parse_events(scheme: Scheme, events: &[Event]) -> Option<Vec<(&Event, Bound)>> {
    let mut parsed = Vec::with_capacity(events.len());
    for event in events {
        let bound = match event {
            Event::Introduced(v) if v == "0" => Bound::Min,
            Event::Limit(v) if v.contains('*') => Bound::Max,
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => {
                Bound::At(scheme.parse(v)?)
            }
        };
        parsed.push((event, bound));
    }
    // Versions of one scheme always compare, so `Equal` never hides a failure.
    parsed.sort_by(|a, b| a.1.cmp(&b.1).unwrap_or(Ordering::Equal));
    Some(parsed)
}

/// The pseudocode's `BeforeLimits` and event walk, over sorted events.
fn in_range(v: &Version, events: &[(&Event, Bound)]) -> Option<bool> {
    let mut limits = events
        .iter()
        .filter(|(e, _)| matches!(e, Event::Limit(_)))
        .peekable();
    if limits.peek().is_some() && !limits.any(|(_, l)| l.cmp_version(v) == Some(Ordering::Greater))
    {
        return Some(false);
    }
    let mut vulnerable = false;
    for (event, bound) in events {
        let ord = bound.cmp_version(v)?; // bound vs v
        match event {
            Event::Introduced(_) if ord != Ordering::Greater => vulnerable = true,
            Event::Fixed(_) if ord != Ordering::Greater => vulnerable = false,
            Event::LastAffected(_) if ord == Ordering::Less => vulnerable = false,
            _ => {}
        }
    }
    Some(vulnerable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(kind: &str, events: &[(&str, &str)]) -> Range {
        let events = events
            .iter()
            .map(|(k, v)| match *k {
                "introduced" => Event::Introduced((*v).into()),
                "fixed" => Event::Fixed((*v).into()),
                "last_affected" => Event::LastAffected((*v).into()),
                _ => Event::Limit((*v).into()),
            })
            .collect();
        Range {
            kind: kind.into(),
            events,
        }
    }

    fn hit(scheme: Scheme, v: &str, ranges: &[Range]) -> bool {
        evaluate(scheme, v, ranges, &[]).affected
    }

    #[test]
    fn introduced_fixed_boundaries() {
        let r = [range(
            "ECOSYSTEM",
            &[("introduced", "1.0.0"), ("fixed", "1.0.2")],
        )];
        assert!(!hit(Scheme::SemVer, "0.9.9", &r));
        assert!(hit(Scheme::SemVer, "1.0.0", &r), "introduced is inclusive");
        assert!(hit(Scheme::SemVer, "1.0.1", &r));
        assert!(!hit(Scheme::SemVer, "1.0.2", &r), "fixed is exclusive");
        let zero = [range("SEMVER", &[("introduced", "0"), ("fixed", "2.0.0")])];
        assert!(hit(Scheme::Pep440, "0.0.1", &zero));
        let eval = evaluate(Scheme::SemVer, "1.0.1", &r, &[]);
        assert_eq!(eval.fixed.as_deref(), Some("1.0.2"));
    }

    #[test]
    fn last_affected_is_inclusive() {
        let r = [range(
            "ECOSYSTEM",
            &[("introduced", "0"), ("last_affected", "2.1.214")],
        )];
        assert!(hit(Scheme::SemVer, "2.1.214", &r));
        assert!(!hit(Scheme::SemVer, "2.1.215", &r));
    }

    #[test]
    fn multiple_ranges_and_unsorted_events() {
        let r = [range(
            "SEMVER",
            &[
                ("fixed", "3.2.5"),
                ("introduced", "3.0.0"),
                ("fixed", "1.0.2"),
                ("introduced", "1.0.0"),
            ],
        )];
        for (v, want) in [
            ("0.1.0", false),
            ("1.0.1", true),
            ("2.0.0", false),
            ("3.1.0", true),
            ("3.2.5", false),
        ] {
            assert_eq!(hit(Scheme::SemVer, v, &r), want, "{v}");
        }
        assert_eq!(
            evaluate(Scheme::SemVer, "0.1.0", &r, &[]).fixed.as_deref(),
            Some("1.0.2")
        );
        let two = [
            range("ECOSYSTEM", &[("introduced", "1.0"), ("fixed", "1.1")]),
            range("ECOSYSTEM", &[("introduced", "2.0"), ("fixed", "2.1")]),
        ];
        assert!(hit(Scheme::Pep440, "2.0.5", &two));
        assert!(!hit(Scheme::Pep440, "1.5", &two));
    }

    #[test]
    fn limits_git_and_unparsable() {
        let limited = [range("SEMVER", &[("introduced", "0"), ("limit", "2.0.0")])];
        assert!(hit(Scheme::SemVer, "1.9.0", &limited));
        assert!(!hit(Scheme::SemVer, "2.0.0", &limited));
        let star = [range("SEMVER", &[("introduced", "1.0.0"), ("limit", "*")])];
        assert!(hit(Scheme::SemVer, "9.0.0", &star));
        let git = [range("GIT", &[("introduced", "0")])];
        assert!(!hit(Scheme::SemVer, "1.0.0", &git));
        let bad = [range(
            "ECOSYSTEM",
            &[("introduced", "0"), ("fixed", "not a version")],
        )];
        assert!(!hit(Scheme::Debian, "1.0-1", &bad));
        let listed = ["1.0-1".to_owned()];
        assert!(evaluate(Scheme::Debian, "1.0-1", &bad, &listed).affected);
        assert!(evaluate(Scheme::Debian, "0:1.0-1", &[], &listed).affected);
    }

    #[test]
    fn debian_fix_boundary() {
        let r = [range(
            "ECOSYSTEM",
            &[("introduced", "0"), ("fixed", "3.0.11-1~deb12u2")],
        )];
        assert!(hit(Scheme::Debian, "3.0.11-1~deb12u1", &r));
        assert!(!hit(Scheme::Debian, "3.0.11-1~deb12u2", &r));
        assert!(!hit(Scheme::Debian, "3.0.13-1~deb12u1", &r));
    }
}
