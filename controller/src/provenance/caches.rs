//! The build caches of a job in its provenance: each restored cache is a resolved
//! dependency (a cache is an input: what a build restores can change what it builds), each
//! saved one a byproduct, and the internal parameters list every declared cache with
//! whether it was restored, so a job that restored none says so.

use std::collections::BTreeMap;

use airlock_attest::{ResourceDescriptor, Sha256Digest};
use serde_json::{Map, Value, json};

use crate::caches::TrustDomain;

/// One cache archive a job restored or saved, as the controller checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheUse {
    /// The `[[caches]]` name.
    pub name: String,
    /// Who wrote it (restored) or writes it (saved).
    pub domain: TrustDomain,
    /// Its scope's project.
    pub project: String,
    /// Its key.
    pub key: Sha256Digest,
    /// The archive's sha256.
    pub archive: Sha256Digest,
    /// The archive's size in bytes.
    pub size: u64,
}

/// What a job did with its caches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheReport {
    /// Every `[[caches]]` name, in job-file order.
    pub declared: Vec<String>,
    /// What was restored before the first step.
    pub restored: Vec<CacheUse>,
    /// What was saved after the steps succeeded.
    pub saved: Vec<CacheUse>,
}

impl CacheUse {
    /// Its resource descriptor: `cache/<name>`, the archive's digest, and its scope.
    pub fn descriptor(&self) -> ResourceDescriptor {
        ResourceDescriptor {
            name: Some(format!("cache/{}", self.name)),
            digest: BTreeMap::from([("sha256".to_owned(), self.archive.hex())]),
            media_type: Some("application/x-tar".to_owned()),
            annotations: Some(Map::from_iter([
                ("domain".to_owned(), json!(self.domain.as_str())),
                ("project".to_owned(), json!(self.project)),
                ("key".to_owned(), json!(self.key.prefixed())),
                ("size".to_owned(), json!(self.size)),
            ])),
            ..Default::default()
        }
    }
}

impl CacheReport {
    /// `internalParameters.caches`: each declared cache and where it was restored from
    /// (`null`: it started empty).
    pub fn internal_parameter(&self) -> Value {
        Value::Array(
            self.declared
                .iter()
                .map(|name| {
                    let restored = self.restored.iter().find(|r| &r.name == name);
                    json!({
                        "name": name,
                        "restoredFrom": restored.map(|r| r.domain.as_str()),
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_cache_names_its_domain_and_an_unrestored_one_says_null() {
        let used = CacheUse {
            name: "target".into(),
            domain: TrustDomain::Trusted,
            project: "git+https://example.com/r.git".into(),
            key: Sha256Digest::of(b"k"),
            archive: Sha256Digest::of(b"a"),
            size: 10,
        };
        let report = CacheReport {
            declared: vec!["target".into(), "npm".into()],
            restored: vec![used.clone()],
            saved: vec![],
        };
        assert_eq!(
            report.internal_parameter(),
            json!([
                {"name": "target", "restoredFrom": "trusted"},
                {"name": "npm", "restoredFrom": null},
            ])
        );
        let d = used.descriptor();
        assert_eq!(d.name.as_deref(), Some("cache/target"));
        assert_eq!(d.digest["sha256"], Sha256Digest::of(b"a").hex());
        assert_eq!(
            d.annotations.expect("annotations")["domain"],
            json!("trusted")
        );
    }
}
