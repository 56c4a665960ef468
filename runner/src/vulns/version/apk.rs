//! Alpine (apk-tools) version ordering.
//!
//! `N[.N]*[letter][_suffix[N]]*[~hash][-rN]`, compared as apk-tools (and Gentoo,
//! whose scheme it follows) do: numeric components (after the first, a component
//! with a leading zero compares as a decimal fraction), then the optional letter,
//! then suffixes where `_alpha < _beta < _pre < _rc <` (none) `< _cvs < _svn < _git
//! < _hg < _p`, then the `-rN` package revision. The `~hash` part is ignored.

use std::cmp::Ordering;

/// Suffixes in order; those before `FIRST_POST` sort before the bare version.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const FIRST_POST: usize = 4;

/// A parsed apk version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkVersion {
    /// Digit strings, leading zeros kept (they matter after the first component).
    components: Vec<String>,
    letter: Option<u8>,
    /// (index into `SUFFIXES`, number).
    suffixes: Vec<(usize, u64)>,
    revision: u64,
}

impl ApkVersion {
    /// Parses an apk version; `None` when it does not follow the grammar above.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (s, revision) = match s.rsplit_once("-r") {
            Some((v, r)) => (v, parse_num(r)?),
            None => (s, 0),
        };
        let s = match s.split_once('~') {
            Some((v, hash)) if !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()) => v,
            Some(_) => return None,
            None => s,
        };
        let (main, suffix_part) = match s.split_once('_') {
            Some((m, rest)) => (m, Some(rest)),
            None => (s, None),
        };
        let (numbers, letter) = match main.as_bytes().last() {
            Some(&c) if c.is_ascii_lowercase() => (&main[..main.len() - 1], Some(c)),
            _ => (main, None),
        };
        let components: Vec<String> = numbers.split('.').map(str::to_owned).collect();
        if components
            .iter()
            .any(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let mut suffixes = Vec::new();
        for part in suffix_part.into_iter().flat_map(|p| p.split('_')) {
            let digits_at = part
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(part.len());
            let (name, num) = part.split_at(digits_at);
            let kind = SUFFIXES.iter().position(|s| *s == name)?;
            let num = if num.is_empty() { 0 } else { parse_num(num)? };
            suffixes.push((kind, num));
        }
        Some(Self {
            components,
            letter,
            suffixes,
            revision,
        })
    }
}

fn parse_num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Compares two numeric components; `first` compares plainly as a number.
fn cmp_component(a: &str, b: &str, first: bool) -> Ordering {
    if !first && (a.starts_with('0') || b.starts_with('0')) {
        // Gentoo/apk: "1.01" < "1.1" and "1.010" == "1.01": a decimal fraction.
        return a.trim_end_matches('0').cmp(b.trim_end_matches('0'));
    }
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        for (i, (a, b)) in self.components.iter().zip(&other.components).enumerate() {
            let ord = cmp_component(a, b, i == 0);
            if ord != Ordering::Equal {
                return ord;
            }
        }
        // More components is newer: 1.2 < 1.2.1.
        let ord = self
            .components
            .len()
            .cmp(&other.components.len())
            .then_with(|| self.letter.cmp(&other.letter));
        if ord != Ordering::Equal {
            return ord;
        }
        for (a, b) in self.suffixes.iter().zip(&other.suffixes) {
            let ord = a.cmp(b);
            if ord != Ordering::Equal {
                return ord;
            }
        }
        let common = self.suffixes.len().min(other.suffixes.len());
        // An extra suffix makes a version older when it is a pre-release one.
        let extra = |v: &Self| {
            v.suffixes.get(common).map_or(Ordering::Equal, |(kind, _)| {
                if *kind < FIRST_POST {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            })
        };
        extra(self)
            .then_with(|| extra(other).reverse())
            .then_with(|| self.revision.cmp(&other.revision))
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        ApkVersion::parse(a)
            .unwrap()
            .cmp(&ApkVersion::parse(b).unwrap())
    }

    #[test]
    fn apk_orderings() {
        for (a, b) in [
            ("1.2.4-r2", "1.2.4-r10"),
            ("1.0_rc1", "1.0"),
            ("1.0_alpha", "1.0_beta2"),
            ("1.0_beta2", "1.0_beta10"),
            ("1.0_pre1", "1.0_rc1"),
            ("1.0", "1.0_p1"),
            ("1.0_git20240101", "1.0_p1"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0b"),
            ("1.2", "1.2.1"),
            ("1.9", "1.10"),
            ("1.01", "1.1"),
            ("3.1.4-r5", "3.1.4_p1-r0"),
            ("1.0_rc1-r9", "1.0-r0"),
            ("9.9", "10.0"),
        ] {
            assert_eq!(cmp(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(cmp(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(cmp("1.0-r0", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1.0~abc123-r1", "1.0-r1"), Ordering::Equal);
    }

    #[test]
    fn refuses_non_apk_versions() {
        for bad in ["", "1..2", "a1", "1.0_foo", "1.0-rx", "1.0~xyz", "1.0-1"] {
            assert!(ApkVersion::parse(bad).is_none(), "{bad:?}");
        }
    }
}
