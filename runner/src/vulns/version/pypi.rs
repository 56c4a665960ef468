//! PyPI version ordering: PEP 440, the same sort key as `packaging.version`.
//!
//! Covered: epochs (`N!`), release segments (trailing zeros ignored), pre-releases
//! (`a|alpha|b|beta|c|rc|pre|preview`), post-releases (`.postN`, `-N`, `rev`, `r`),
//! dev releases, local versions (`+abc.1`), a leading `v` and the lenient separators
//! (`-`, `_`, `.`) PEP 440 normalizes. Not covered: legacy (non-PEP 440) versions,
//! which do not parse, so ranges over them cannot be evaluated.

use std::cmp::Ordering;

/// Pre-release part of the key; a bare dev release sorts before every pre-release.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PreKey {
    DevOnly,
    Pre(u8, u64),
    None,
}

/// Dev part of the key; no dev release sorts last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum DevKey {
    Dev(u64),
    None,
}

/// A local segment: strings sort before numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalSeg {
    Str(String),
    Num(u64),
}

/// A parsed PEP 440 version, held as its sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pep440Version {
    epoch: u64,
    release: Vec<u64>,
    pre: PreKey,
    post: Option<u64>,
    dev: DevKey,
    local: Option<Vec<LocalSeg>>,
}

/// Pre-release spellings, longer first so "preview" is not read as "pre" + "view".
const PRE_LABELS: [&str; 8] = ["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"];
/// Their ranks: alpha < beta < rc (`c`, `pre` and `preview` are spellings of `rc`).
const PRE_RANKS: [u8; 8] = [0, 1, 2, 2, 2, 0, 1, 2];

/// A cursor over the lowercased version text.
struct Cursor<'a> {
    s: &'a str,
}

impl Cursor<'_> {
    fn eat(&mut self, prefix: &str) -> bool {
        match self.s.strip_prefix(prefix) {
            Some(rest) => {
                self.s = rest;
                true
            }
            None => false,
        }
    }
    fn eat_sep(&mut self) -> bool {
        self.eat("-") || self.eat("_") || self.eat(".")
    }
    fn number(&mut self) -> Option<Option<u64>> {
        let end = self
            .s
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.s.len());
        if end == 0 {
            return Some(None);
        }
        let (digits, rest) = self.s.split_at(end);
        self.s = rest;
        digits.parse().ok().map(Some)
    }
    /// Tries `[sep]label[sep][N]` for one of `labels`, restoring on failure.
    fn labelled(&mut self, labels: &[&str]) -> Option<(usize, Option<u64>)> {
        let saved = self.s;
        self.eat_sep();
        if let Some(i) = labels.iter().position(|l| self.s.starts_with(l)) {
            self.s = &self.s[labels[i].len()..];
            let before_sep = self.s;
            self.eat_sep();
            match self.number() {
                Some(Some(n)) => return Some((i, Some(n))),
                Some(None) => {
                    self.s = before_sep;
                    return Some((i, None));
                }
                None => {}
            }
        }
        self.s = saved;
        None
    }
}

impl Pep440Version {
    /// Parses a PEP 440 version; `None` for anything else.
    pub fn parse(input: &str) -> Option<Self> {
        let lower = input.trim().to_ascii_lowercase();
        let mut c = Cursor { s: &lower };
        c.eat("v");
        let mut first = c.number()??;
        let epoch = if c.eat("!") {
            let e = first;
            first = c.number()??;
            e
        } else {
            0
        };
        let mut release = vec![first];
        loop {
            let saved = c.s;
            if c.eat(".")
                && let Some(Some(n)) = c.number()
            {
                release.push(n);
                continue;
            }
            c.s = saved;
            break;
        }
        let pre = c
            .labelled(&PRE_LABELS)
            .map(|(i, n)| (PRE_RANKS[i], n.unwrap_or(0)));
        let post = {
            let saved = c.s;
            if c.eat("-")
                && let Some(Some(n)) = c.number()
            {
                Some(n)
            } else {
                c.s = saved;
                c.labelled(&["post", "rev", "r"])
                    .map(|(_, n)| n.unwrap_or(0))
            }
        };
        let dev = c.labelled(&["dev"]).map(|(_, n)| n.unwrap_or(0));
        let local = if c.eat("+") {
            let segs: Option<Vec<LocalSeg>> =
                c.s.split(['-', '_', '.'])
                    .map(|seg| {
                        if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                            None
                        } else if seg.bytes().all(|b| b.is_ascii_digit()) {
                            seg.parse().ok().map(LocalSeg::Num)
                        } else {
                            Some(LocalSeg::Str(seg.to_owned()))
                        }
                    })
                    .collect();
            c.s = "";
            Some(segs?)
        } else {
            None
        };
        if !c.s.is_empty() {
            return None;
        }
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        let pre = match (pre, post, dev) {
            (Some((rank, n)), _, _) => PreKey::Pre(rank, n),
            (None, None, Some(_)) => PreKey::DevOnly,
            (None, _, _) => PreKey::None,
        };
        Some(Self {
            epoch,
            release,
            pre,
            post,
            dev: dev.map_or(DevKey::None, DevKey::Dev),
            local,
        })
    }
}

/// Compares two PyPI version strings; `None` when either is not PEP 440.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(Pep440Version::parse(a)?.cmp(&Pep440Version::parse(b)?))
}

/// PEP 503 name normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        if matches!(ch, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(ch.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep440_orderings() {
        let ordered = [
            "1.0.dev1",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local.1",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.0.1",
            "1.1.dev1",
            "2.0",
            "1!0.1",
        ];
        for pair in ordered.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Some(Ordering::Less), "{pair:?}");
            assert_eq!(
                compare(pair[1], pair[0]),
                Some(Ordering::Greater),
                "{pair:?}"
            );
        }
    }

    #[test]
    fn equal_spellings() {
        for (a, b) in [
            ("1.0", "1.0.0"),
            ("1.0rc1", "1.0-RC-1"),
            ("1.0c1", "1.0rc1"),
            ("1.0-1", "1.0.post1"),
            ("1.0.post", "1.0.post0"),
            ("v2.1alpha", "2.1a0"),
            ("1.0preview2", "1.0rc2"),
        ] {
            assert_eq!(compare(a, b), Some(Ordering::Equal), "{a} == {b}");
        }
    }

    #[test]
    fn refuses_legacy_versions() {
        for bad in ["", "foo", "1.0-beta-final", "1.0+", "1.0 2", "1..0"] {
            assert!(Pep440Version::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn names_normalize_per_pep503() {
        assert_eq!(normalize_name("Foo.Bar__baz-"), "foo-bar-baz-");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
    }
}
