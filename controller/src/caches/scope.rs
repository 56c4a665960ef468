//! The trust-domain rule of build caches, as a pure function of the job's profile and the
//! operator's policy. A cache belongs to a scope (project, trust domain, name) and is keyed
//! by a digest of the files its job names; a job restores from an ordered list of lookups
//! (its exact key first, then the newest cache of the scope) and saves into one scope.
//!
//! The property everything else rests on: no `untrusted-pr` job ever writes a scope that a
//! `trusted` or `release` job reads, and a `release` job reads only the release domain (and
//! only when the operator enables release caches at all).

use airlock_attest::Sha256Digest;
use airlock_job::{JobSpec, SourceSpec};

/// Who may write a cache, and so whose builds may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrustDomain {
    /// Written by `trusted` jobs (the project's own branches).
    Trusted,
    /// Written by `untrusted-pr` jobs; never read by a trusted or release job.
    Untrusted,
    /// Written and read by `release` jobs only, when enabled.
    Release,
}

impl TrustDomain {
    /// The domain a job of `profile` writes, if the profile is known.
    pub fn of_profile(profile: &str) -> Option<Self> {
        match profile {
            "trusted" => Some(Self::Trusted),
            "untrusted-pr" => Some(Self::Untrusted),
            "release" => Some(Self::Release),
            _ => None,
        }
    }

    /// The domain named `text` (its [`TrustDomain::as_str`]).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Trusted, Self::Untrusted, Self::Release]
            .into_iter()
            .find(|d| d.as_str() == text)
    }

    /// Its name in the database and in provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trusted => "trusted",
            Self::Untrusted => "untrusted",
            Self::Release => "release",
        }
    }
}

/// The operator's choices (`[caches]` in controller.toml).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePolicy {
    /// `untrusted-pr` jobs may also read the trusted domain's caches (read-only: a warm
    /// start for pull requests). Off by default.
    pub untrusted_reads_trusted: bool,
    /// `release` jobs use caches of their own domain. Off by default: a release build
    /// starts clean.
    pub release_caches: bool,
}

/// A cache's scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The project: the git repository's URL, else the job's name.
    pub project: String,
    /// Whose builds wrote it.
    pub domain: TrustDomain,
    /// The cache's name in the job file.
    pub name: String,
}

/// One place to look for a cache to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Where.
    pub scope: Scope,
    /// Exactly this key, or (`None`) the newest cache of the scope whatever its key.
    pub key: Option<Sha256Digest>,
}

/// What a job may do with one of its caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePlan {
    /// Lookups in order; the first that finds a cache is restored. Empty: start clean.
    pub restore: Vec<Lookup>,
    /// Where a successful job saves it, under its key; `None`: not saved.
    pub save: Option<(Scope, Sha256Digest)>,
}

/// The project a job's caches belong to: its git repository, else its name (an archive's
/// URL changes with every release, a path source has no name of its own).
pub fn project_of(spec: &JobSpec) -> String {
    match &spec.source {
        SourceSpec::Git { .. } => spec.source.uri(),
        SourceSpec::Path { .. } | SourceSpec::Archive { .. } => format!("name:{}", spec.job.name),
    }
}

/// The plan for the cache `name` (keyed by `key`) of a job of `profile` in `project`.
pub fn plan(
    policy: CachePolicy,
    profile: &str,
    project: &str,
    name: &str,
    key: Sha256Digest,
) -> CachePlan {
    let scope = |domain| Scope {
        project: project.to_owned(),
        domain,
        name: name.to_owned(),
    };
    let exact_then_newest = |domain| {
        [
            Lookup {
                scope: scope(domain),
                key: Some(key),
            },
            Lookup {
                scope: scope(domain),
                key: None,
            },
        ]
    };
    let none = CachePlan {
        restore: Vec::new(),
        save: None,
    };
    match TrustDomain::of_profile(profile) {
        Some(TrustDomain::Trusted) => CachePlan {
            restore: exact_then_newest(TrustDomain::Trusted).to_vec(),
            save: Some((scope(TrustDomain::Trusted), key)),
        },
        Some(TrustDomain::Untrusted) => {
            let mut restore = exact_then_newest(TrustDomain::Untrusted).to_vec();
            if policy.untrusted_reads_trusted {
                restore.extend(exact_then_newest(TrustDomain::Trusted));
            }
            CachePlan {
                restore,
                save: Some((scope(TrustDomain::Untrusted), key)),
            }
        }
        Some(TrustDomain::Release) if policy.release_caches => CachePlan {
            restore: exact_then_newest(TrustDomain::Release).to_vec(),
            save: Some((scope(TrustDomain::Release), key)),
        },
        Some(TrustDomain::Release) | None => none,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILES: [&str; 4] = ["trusted", "untrusted-pr", "release", "unknown"];

    fn policies() -> Vec<CachePolicy> {
        let mut v = Vec::new();
        for untrusted_reads_trusted in [false, true] {
            for release_caches in [false, true] {
                v.push(CachePolicy {
                    untrusted_reads_trusted,
                    release_caches,
                });
            }
        }
        v
    }

    fn key() -> Sha256Digest {
        Sha256Digest::of(b"Cargo.lock")
    }

    #[test]
    fn an_untrusted_write_never_reaches_a_trusted_or_release_read() {
        for policy in policies() {
            let untrusted = plan(policy, "untrusted-pr", "p", "target", key());
            let (written, _) = untrusted.save.expect("untrusted jobs save their own");
            assert_eq!(written.domain, TrustDomain::Untrusted);
            for profile in ["trusted", "release"] {
                let reader = plan(policy, profile, "p", "target", key());
                assert!(
                    reader.restore.iter().all(|l| l.scope != written),
                    "{profile} reads what untrusted-pr wrote under {policy:?}"
                );
                assert!(
                    reader
                        .restore
                        .iter()
                        .all(|l| l.scope.domain != TrustDomain::Untrusted),
                    "{profile} reads the untrusted domain under {policy:?}"
                );
            }
        }
    }

    #[test]
    fn release_starts_clean_unless_enabled_and_then_reads_only_release() {
        for policy in policies() {
            let p = plan(policy, "release", "p", "target", key());
            if policy.release_caches {
                assert!(
                    p.restore
                        .iter()
                        .all(|l| l.scope.domain == TrustDomain::Release)
                );
                assert_eq!(p.save.map(|(s, _)| s.domain), Some(TrustDomain::Release));
            } else {
                assert_eq!(
                    p,
                    CachePlan {
                        restore: vec![],
                        save: None
                    }
                );
            }
        }
    }

    #[test]
    fn exact_key_first_then_newest_and_trusted_fallback_only_when_allowed() {
        let p = plan(CachePolicy::default(), "trusted", "p", "target", key());
        assert_eq!(p.restore.len(), 2);
        assert_eq!(p.restore[0].key, Some(key()));
        assert_eq!(p.restore[1].key, None);
        let strict = plan(CachePolicy::default(), "untrusted-pr", "p", "target", key());
        assert!(
            strict
                .restore
                .iter()
                .all(|l| l.scope.domain == TrustDomain::Untrusted)
        );
        let warm = plan(
            CachePolicy {
                untrusted_reads_trusted: true,
                release_caches: false,
            },
            "untrusted-pr",
            "p",
            "target",
            key(),
        );
        let domains: Vec<TrustDomain> = warm.restore.iter().map(|l| l.scope.domain).collect();
        assert_eq!(
            domains,
            [
                TrustDomain::Untrusted,
                TrustDomain::Untrusted,
                TrustDomain::Trusted,
                TrustDomain::Trusted
            ]
        );
        for profile in PROFILES {
            let p = plan(CachePolicy::default(), profile, "p", "target", key());
            assert!(
                p.restore
                    .iter()
                    .all(|l| l.scope.project == "p" && l.scope.name == "target")
            );
        }
        assert_eq!(
            plan(CachePolicy::default(), "unknown", "p", "t", key()).save,
            None
        );
    }
}
