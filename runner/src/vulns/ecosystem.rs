//! The indexed OSV ecosystems: names on the record side, releases, version schemes.
//!
//! Indexed: `Debian[:N]`, `Ubuntu:YY.MM[:LTS]`, `Alpine:vX.Y`, `crates.io`, `npm`,
//! `PyPI`. Every other ecosystem (Go, Maven, Red Hat, `Ubuntu:Pro:*`, ...) is not
//! indexed: its records are loaded and counted but match no purl.

use super::version::{Scheme, pypi};

/// An indexed ecosystem, without its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `Debian`, `Debian:12`: source packages.
    Debian,
    /// `Ubuntu:22.04:LTS`: source packages.
    Ubuntu,
    /// `Alpine:v3.19`: origin packages.
    Alpine,
    /// `crates.io`.
    CratesIo,
    /// `npm`.
    Npm,
    /// `PyPI`.
    PyPI,
}

impl Family {
    /// The version order the ecosystem's `ECOSYSTEM` ranges use.
    pub fn scheme(self) -> Scheme {
        match self {
            Self::Debian | Self::Ubuntu => Scheme::Debian,
            Self::Alpine => Scheme::Apk,
            Self::CratesIo | Self::Npm => Scheme::SemVer,
            Self::PyPI => Scheme::Pep440,
        }
    }

    /// The name as the index keys it (PEP 503 for PyPI, as written otherwise).
    pub fn normalize_name(self, name: &str) -> String {
        match self {
            Self::PyPI => pypi::normalize_name(name),
            _ => name.to_owned(),
        }
    }

    /// Reads an OSV ecosystem string: the family and release (`None` when the record
    /// names no release, which then matches every release). `None` when not indexed.
    pub fn from_osv(ecosystem: &str) -> Option<(Self, Option<String>)> {
        let (base, release) = match ecosystem.split_once(':') {
            Some((b, r)) => (b, Some(r)),
            None => (ecosystem, None),
        };
        let family = match base {
            "Debian" => Self::Debian,
            "Ubuntu" => Self::Ubuntu,
            "Alpine" => Self::Alpine,
            "crates.io" => Self::CratesIo,
            "npm" => Self::Npm,
            "PyPI" => Self::PyPI,
            _ => return None,
        };
        let release = match (family, release) {
            (_, None) => None,
            // ESM (Pro) fixes are a separate channel a plain image does not get.
            (Self::Ubuntu, Some(r)) if r.starts_with("Pro:") => return None,
            (Self::Ubuntu, Some(r)) => Some(r.strip_suffix(":LTS").unwrap_or(r).to_owned()),
            (Self::Debian | Self::Alpine, Some(r)) => Some(r.to_owned()),
            // Language ecosystems have no releases; a suffix names another registry.
            (_, Some(_)) => return None,
        };
        Some((family, release))
    }

    /// The release a purl's `distro` qualifier names, in the record's spelling:
    /// `debian-12`, `12`, `bookworm` → `12`; `ubuntu-22.04`, `jammy` → `22.04`;
    /// `alpine-3.19.1`, `3.19` → `v3.19`. `None` when it names none of these.
    pub fn release_from_distro(self, distro: &str) -> Option<String> {
        let d = distro.trim().to_ascii_lowercase();
        match self {
            Self::Debian => {
                let d = d.strip_prefix("debian-").unwrap_or(&d);
                const CODENAMES: [(&str, &str); 7] = [
                    ("stretch", "9"),
                    ("buster", "10"),
                    ("bullseye", "11"),
                    ("bookworm", "12"),
                    ("trixie", "13"),
                    ("forky", "14"),
                    ("sid", "sid"),
                ];
                if let Some((_, n)) = CODENAMES.iter().find(|(c, _)| *c == d) {
                    return Some((*n).to_owned());
                }
                let major = d.split('.').next()?;
                numeric(major).then(|| major.to_owned())
            }
            Self::Ubuntu => {
                let d = d.strip_prefix("ubuntu-").unwrap_or(&d);
                const CODENAMES: [(&str, &str); 5] = [
                    ("xenial", "16.04"),
                    ("bionic", "18.04"),
                    ("focal", "20.04"),
                    ("jammy", "22.04"),
                    ("noble", "24.04"),
                ];
                if let Some((_, n)) = CODENAMES.iter().find(|(c, _)| *c == d) {
                    return Some((*n).to_owned());
                }
                let mut parts = d.split('.');
                let (yy, mm) = (parts.next()?, parts.next()?);
                (numeric(yy) && numeric(mm)).then(|| format!("{yy}.{mm}"))
            }
            Self::Alpine => {
                let d = d.strip_prefix("alpine-").unwrap_or(&d);
                if d == "edge" {
                    return Some("edge".to_owned());
                }
                let d = d.strip_prefix('v').unwrap_or(d);
                let mut parts = d.split('.');
                let (major, minor) = (parts.next()?, parts.next()?);
                (numeric(major) && numeric(minor)).then(|| format!("v{major}.{minor}"))
            }
            Self::CratesIo | Self::Npm | Self::PyPI => None,
        }
    }
}

fn numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osv_ecosystem_strings() {
        let some = |f, r: &str| Some((f, Some(r.to_owned())));
        assert_eq!(Family::from_osv("Debian:12"), some(Family::Debian, "12"));
        assert_eq!(Family::from_osv("Debian"), Some((Family::Debian, None)));
        assert_eq!(
            Family::from_osv("Ubuntu:22.04:LTS"),
            some(Family::Ubuntu, "22.04")
        );
        assert_eq!(Family::from_osv("Ubuntu:Pro:18.04:LTS"), None);
        assert_eq!(
            Family::from_osv("Alpine:v3.19"),
            some(Family::Alpine, "v3.19")
        );
        assert_eq!(Family::from_osv("PyPI"), Some((Family::PyPI, None)));
        assert_eq!(Family::from_osv("Go"), None);
        assert_eq!(Family::from_osv("Maven"), None);
    }

    #[test]
    fn distro_qualifiers() {
        let d = |f: Family, s| f.release_from_distro(s);
        assert_eq!(d(Family::Debian, "debian-12"), Some("12".into()));
        assert_eq!(d(Family::Debian, "debian-12.5"), Some("12".into()));
        assert_eq!(d(Family::Debian, "bookworm"), Some("12".into()));
        assert_eq!(d(Family::Debian, "windows"), None);
        assert_eq!(d(Family::Ubuntu, "ubuntu-22.04"), Some("22.04".into()));
        assert_eq!(d(Family::Ubuntu, "jammy"), Some("22.04".into()));
        assert_eq!(d(Family::Alpine, "alpine-3.19.1"), Some("v3.19".into()));
        assert_eq!(d(Family::Alpine, "3.20"), Some("v3.20".into()));
        assert_eq!(d(Family::Alpine, "alpine"), None);
    }
}
