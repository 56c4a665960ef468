//! Version orders of the indexed ecosystems, behind one `Scheme::compare`.
//!
//! A version that does not parse in its scheme yields `None`: callers treat a range
//! they cannot order as not matching (see `range.rs`).

mod apk;
mod debian;
pub mod pypi;

use std::cmp::Ordering;

pub use apk::ApkVersion;
pub use debian::DebianVersion;
pub use pypi::Pep440Version;

/// A version ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// dpkg ordering (Debian, Ubuntu).
    Debian,
    /// apk-tools ordering (Alpine).
    Apk,
    /// SemVer 2.0 precedence (crates.io, npm, and every `SEMVER` range).
    SemVer,
    /// PEP 440 (PyPI).
    Pep440,
}

/// A version parsed in one scheme; only versions of the same scheme compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// See [`DebianVersion`].
    Debian(DebianVersion),
    /// See [`ApkVersion`].
    Apk(ApkVersion),
    /// A SemVer version (compared by precedence: build metadata ignored).
    SemVer(semver::Version),
    /// See [`Pep440Version`].
    Pep440(Pep440Version),
}

impl Scheme {
    /// Parses `s` in this scheme; `None` when it is not a version of it.
    pub fn parse(self, s: &str) -> Option<Version> {
        match self {
            Self::Debian => DebianVersion::parse(s).map(Version::Debian),
            Self::Apk => ApkVersion::parse(s).map(Version::Apk),
            Self::SemVer => parse_semver(s).map(Version::SemVer),
            Self::Pep440 => Pep440Version::parse(s).map(Version::Pep440),
        }
    }

    /// Orders two version strings; `None` when either does not parse.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        self.parse(a)?.compare(&self.parse(b)?)
    }
}

impl Version {
    /// Orders two versions of the same scheme; `None` across schemes.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Debian(a), Self::Debian(b)) => Some(a.cmp(b)),
            (Self::Apk(a), Self::Apk(b)) => Some(a.cmp(b)),
            (Self::SemVer(a), Self::SemVer(b)) => Some(a.cmp_precedence(b)),
            (Self::Pep440(a), Self::Pep440(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// SemVer, leniently: a leading `v` or `=` and a missing minor or patch (`1.2`) are
/// accepted, since some advisories (and npm lockfiles) write them.
fn parse_semver(s: &str) -> Option<semver::Version> {
    let s = s.trim();
    let s = s.strip_prefix(['v', '=']).unwrap_or(s);
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_precedence_ignores_build_metadata() {
        let s = Scheme::SemVer;
        assert_eq!(s.compare("1.0.0+a", "1.0.0+b"), Some(Ordering::Equal));
        assert_eq!(s.compare("1.0.0-rc.1", "1.0.0"), Some(Ordering::Less));
        assert_eq!(s.compare("v1.2", "1.2.0"), Some(Ordering::Equal));
        assert_eq!(s.compare("1.10.0", "1.9.0"), Some(Ordering::Greater));
        assert_eq!(s.compare("1.0.0", "not-a-version"), None);
    }

    #[test]
    fn schemes_do_not_mix() {
        let deb = Scheme::Debian.parse("1.0").unwrap();
        let apk = Scheme::Apk.parse("1.0").unwrap();
        assert_eq!(deb.compare(&apk), None);
    }
}
