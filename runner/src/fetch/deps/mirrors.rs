//! Where each ecosystem's packages come from: one mirror per ecosystem, set by the operator
//! (`--mirror cargo=URL`). There is no built-in default: which outside server a hermetic
//! build trusts for its bytes is the operator's choice, made once, explicitly.

use std::collections::BTreeMap;
use std::fmt;

use airlock_job::Ecosystem;

use crate::fetch::http::HttpUrl;

/// A mirror's base URL, without a trailing `/`.
#[derive(Clone, PartialEq, Eq)]
pub struct MirrorUrl(String);

impl MirrorUrl {
    /// Parses an `http(s)://` base URL without credentials (they would reach logs and
    /// provenance), query or fragment.
    pub fn parse(url: &str) -> Result<Self, String> {
        let trimmed = url.trim_end_matches('/');
        let parsed = HttpUrl::parse(trimmed).map_err(|e| e.to_string())?;
        if trimmed.contains('?') || trimmed.contains('#') {
            return Err(format!("{url}: a mirror URL has no query or fragment"));
        }
        Ok(Self(parsed.as_str().trim_end_matches('/').to_owned()))
    }

    /// The base URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `base/<path>` (`path` already escaped).
    pub fn join(&self, path: &str) -> String {
        format!("{}/{}", self.0, path.trim_start_matches('/'))
    }
}

impl fmt::Debug for MirrorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MirrorUrl({})", self.0)
    }
}

impl fmt::Display for MirrorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configured mirrors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors(BTreeMap<Ecosystem, MirrorUrl>);

impl Mirrors {
    /// Parses `--mirror` values, each `ECOSYSTEM=URL`; an ecosystem given twice is an error.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for value in values {
            let (name, url) = value.split_once('=').ok_or_else(|| {
                format!("--mirror {value}: expected ECOSYSTEM=URL, e.g. cargo=https://mirror.example/crates")
            })?;
            let ecosystem = Ecosystem::parse(name.trim()).ok_or_else(|| {
                format!(
                    "--mirror {value}: unknown ecosystem `{name}`; use one of: {}",
                    Ecosystem::ALL.map(|e| e.as_str()).join(", ")
                )
            })?;
            let url = MirrorUrl::parse(url.trim()).map_err(|e| format!("--mirror {value}: {e}"))?;
            if map.insert(ecosystem, url).is_some() {
                return Err(format!("--mirror: {ecosystem} is given twice"));
            }
        }
        Ok(Self(map))
    }

    /// The mirror of `ecosystem`, if configured.
    pub fn get(&self, ecosystem: Ecosystem) -> Option<&MirrorUrl> {
        self.0.get(&ecosystem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_mirror_per_ecosystem() {
        let m = Mirrors::parse([
            "cargo=http://127.0.0.1:8080/crates/",
            "npm=http://[::1]:9/npm",
        ])
        .expect("parse");
        assert_eq!(
            m.get(Ecosystem::Cargo).map(MirrorUrl::as_str),
            Some("http://127.0.0.1:8080/crates")
        );
        assert_eq!(
            m.get(Ecosystem::Cargo)
                .map(|u| u.join("serde/1.0.0/download")),
            Some("http://127.0.0.1:8080/crates/serde/1.0.0/download".to_owned())
        );
        assert!(m.get(Ecosystem::Pypi).is_none());
        for bad in [
            "cargo",
            "maven=http://127.0.0.1/",
            "cargo=ftp://127.0.0.1/",
            "cargo=http://user:pw@127.0.0.1/",
            "cargo=http://127.0.0.1/?x=1",
        ] {
            assert!(Mirrors::parse([bad]).is_err(), "{bad}");
        }
        assert!(Mirrors::parse(["cargo=http://127.0.0.1/", "cargo=http://127.0.0.2/"]).is_err());
    }
}
