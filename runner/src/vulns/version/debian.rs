//! Debian (and Ubuntu) version ordering: dpkg's algorithm from deb-version(5).
//!
//! `[epoch:]upstream[-revision]`; epochs compare numerically, then upstream and
//! revision with dpkg's `verrevcmp`: alternating non-digit and digit runs, where in
//! non-digit runs `~` sorts before everything (even the end), letters before
//! non-letters, and digit runs compare numerically.

use std::cmp::Ordering;

/// A parsed Debian version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianVersion {
    epoch: u64,
    upstream: String,
    revision: String,
}

impl DebianVersion {
    /// Parses `[epoch:]upstream[-revision]`; `None` for what dpkg would refuse
    /// (empty upstream, non-numeric epoch, characters outside the allowed set).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.parse().ok()?, rest)
            }
            Some(_) => return None,
            None => (0, s),
        };
        // The revision is after the last hyphen; the upstream part may hold more hyphens.
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        let upstream_ok = |b: u8| b.is_ascii_alphanumeric() || b".+~-:".contains(&b);
        let revision_ok = |b: u8| b.is_ascii_alphanumeric() || b".+~".contains(&b);
        if upstream.is_empty()
            || !upstream.bytes().all(upstream_ok)
            || !revision.bytes().all(revision_ok)
            || rest.ends_with('-')
        {
            return None;
        }
        Some(Self {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

impl Ord for DebianVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for DebianVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// dpkg's character weight in a non-digit run; `None` (the end) weighs 0.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` on one part (upstream or revision).
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let is_digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !is_digit(a, i)) || (j < b.len() && !is_digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit(a, i) && is_digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit(a, i) {
            return Ordering::Greater;
        }
        if is_digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        DebianVersion::parse(a)
            .unwrap()
            .cmp(&DebianVersion::parse(b).unwrap())
    }

    #[test]
    fn dpkg_documented_orderings() {
        // deb-version(5): "~~" < "~~a" < "~" < "" < "a".
        for (a, b) in [
            ("1.0~~", "1.0~~a"),
            ("1.0~~a", "1.0~"),
            ("1.0~", "1.0"),
            ("1.0", "1.0a"),
            ("1.0~rc1", "1.0"),
            ("2.0", "1:0.9"),
            ("2.36-9+deb12u4", "2.36-9+deb12u10"),
            ("1.2.3", "1.2.10"),
            ("1.0-1", "1.0-1.1"),
            ("1.0+dfsg-1", "1.0.1-1"),
            ("3.0.11-1~deb12u2", "3.0.11-1"),
            ("1.0a", "1.0+"),
            ("1.0-1", "1.0-1+b1"),
            ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
        ] {
            assert_eq!(cmp(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(cmp(b, a), Ordering::Greater, "{b} > {a}");
        }
    }

    #[test]
    fn equal_spellings() {
        assert_eq!(cmp("0:1.0", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1.01", "1.1"), Ordering::Equal);
        assert_eq!(cmp("1.0-0", "1.0"), Ordering::Equal);
    }

    #[test]
    fn refuses_what_dpkg_refuses() {
        for bad in ["", "a:1.0", ":1.0", "1.0_1", "1.0-", "1.0 beta"] {
            assert!(DebianVersion::parse(bad).is_none(), "{bad:?}");
        }
    }
}
