//! Where a build token's `sub`, `repository`, `ref` and `sha` come from: the job's source as
//! the control plane pinned and verified it at submission, never free-form job fields.
//!
//! | source | `repository` | `ref` (`ref_type`) | `sub` |
//! |---|---|---|---|
//! | git, branch verified by the control plane | the git URL | `refs/heads/B` (`branch`) | `repo:<repository>:ref:refs/heads/B` |
//! | git, tag verified by the control plane | the git URL | `refs/tags/T` (`tag`) | `repo:<repository>:ref:refs/tags/T` |
//! | git, pull request | the git URL | `refs/pull/N/head` (`pull_request`) | `repo:<repository>:pull_request` |
//! | git, a commit with no verified ref | the git URL | the commit id (`commit`) | `repo:<repository>:commit:<sha>` |
//! | local path (`airlock run`) | `file://<dir>` | `local` (`local`) | `repo:<repository>:ref:local` |
//!
//! The forms never collide: a ref has no `:` (git forbids it, and it is checked here), so the
//! text after the last `:` is a ref for branch, tag and local builds, the commit id for commit
//! builds and the literal `pull_request` for pull requests. A pull request therefore never
//! matches a trust policy written for a branch, whatever its head branch is called.
//! Archive sources carry no repository identity and get no tokens.

use std::fmt;

use airlock_job::SourceSpec;

/// The longest repository string accepted.
const MAX_REPOSITORY_LEN: usize = 512;
/// The longest branch or tag name accepted.
const MAX_REF_LEN: usize = 255;

/// Why a source cannot be named in a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Archive sources have no repository identity.
    #[error("archive sources carry no repository identity; build tokens need a git or path source")]
    NoRepository,
    /// The repository string is empty, too long, or has whitespace or control characters.
    #[error(
        "the source repository cannot be named in a token (empty, too long, or has whitespace or control characters)"
    )]
    Repository,
    /// A path source was not yet pinned (no sha256) or is not absolute.
    #[error("the path source is not pinned (absolute path and sha256) as a submitted job's is")]
    UnpinnedPath,
    /// A branch or tag name is not a valid, colon-free git ref name.
    #[error(
        "the verified ref is not a valid git ref name (no ':', '..', whitespace or control characters)"
    )]
    RefName,
    /// A verified ref was given for a source that is not a git repository.
    #[error("only git sources have branches, tags and pull requests")]
    RefWithoutGit,
}

/// The ref a build runs for, as verified by the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    /// A branch, by short name (`main`).
    Branch(String),
    /// A tag, by short name (`v1.2.0`).
    Tag(String),
    /// A pull (merge) request, by number.
    PullRequest {
        /// The pull request number.
        number: u64,
    },
    /// A git commit with no verified ref.
    Commit,
    /// A local directory (`airlock run`).
    Local,
}

/// A job's source as named in build token claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity {
    repository: String,
    source_ref: SourceRef,
    sha: String,
}

impl SourceIdentity {
    /// The identity of a submitted job's pinned source: a git source is named by its URL and
    /// commit (a [`SourceRef::Commit`] until [`with_verified_ref`](Self::with_verified_ref)),
    /// a path source by `file://<dir>`, ref `local` and its tree's sha256.
    pub fn from_source(source: &SourceSpec) -> Result<Self, SubjectError> {
        let identity = match source {
            // `git_ref` (the job file's `ref`) is deliberately ignored: it records what the
            // client says it resolved, which the control plane has not verified, so it must
            // not reach `sub`. A verified ref comes through `with_verified_ref`.
            SourceSpec::Git { url, commit, .. } => Self {
                repository: url.clone(),
                source_ref: SourceRef::Commit,
                sha: commit.hex(),
            },
            SourceSpec::Path { path, sha256 } => {
                let Some(sha256) = sha256 else {
                    return Err(SubjectError::UnpinnedPath);
                };
                if !path.starts_with('/') {
                    return Err(SubjectError::UnpinnedPath);
                }
                Self {
                    repository: format!("file://{path}"),
                    source_ref: SourceRef::Local,
                    sha: sha256.hex(),
                }
            }
            SourceSpec::Archive { .. } => return Err(SubjectError::NoRepository),
        };
        if !is_printable(&identity.repository, MAX_REPOSITORY_LEN) {
            return Err(SubjectError::Repository);
        }
        Ok(identity)
    }

    /// The same source, with the branch, tag or pull request the control plane verified the
    /// commit belongs to (e.g. from a signed forge webhook). Only for git sources.
    pub fn with_verified_ref(mut self, source_ref: SourceRef) -> Result<Self, SubjectError> {
        if self.source_ref != SourceRef::Commit {
            return Err(SubjectError::RefWithoutGit);
        }
        match &source_ref {
            SourceRef::Branch(name) | SourceRef::Tag(name) if !is_ref_name(name) => {
                return Err(SubjectError::RefName);
            }
            SourceRef::Local => return Err(SubjectError::RefWithoutGit),
            _ => {}
        }
        self.source_ref = source_ref;
        Ok(self)
    }

    /// The `repository` claim.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The `sha` claim: the commit id, or for a path source its tree's sha256.
    pub fn sha(&self) -> &str {
        &self.sha
    }

    /// The verified ref.
    pub fn source_ref(&self) -> &SourceRef {
        &self.source_ref
    }

    /// The `ref` claim.
    pub fn ref_claim(&self) -> String {
        match &self.source_ref {
            SourceRef::Branch(b) => format!("refs/heads/{b}"),
            SourceRef::Tag(t) => format!("refs/tags/{t}"),
            SourceRef::PullRequest { number } => format!("refs/pull/{number}/head"),
            SourceRef::Commit => self.sha.clone(),
            SourceRef::Local => "local".to_owned(),
        }
    }

    /// The `ref_type` claim: `branch`, `tag`, `pull_request`, `commit` or `local`.
    pub fn ref_type(&self) -> &'static str {
        match self.source_ref {
            SourceRef::Branch(_) => "branch",
            SourceRef::Tag(_) => "tag",
            SourceRef::PullRequest { .. } => "pull_request",
            SourceRef::Commit => "commit",
            SourceRef::Local => "local",
        }
    }

    /// The `sub` claim (see the module table).
    pub fn subject(&self) -> String {
        let repo = &self.repository;
        match &self.source_ref {
            SourceRef::PullRequest { .. } => format!("repo:{repo}:pull_request"),
            SourceRef::Commit => format!("repo:{repo}:commit:{}", self.sha),
            _ => format!("repo:{repo}:ref:{}", self.ref_claim()),
        }
    }
}

impl fmt::Display for SourceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject())
    }
}

fn is_printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A branch or tag short name acceptable to `git check-ref-format` and free of `:`.
fn is_ref_name(name: &str) -> bool {
    is_printable(name, MAX_REF_LEN)
        && !name.starts_with(['/', '-', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name
            .chars()
            .any(|c| matches!(c, ':' | '?' | '*' | '[' | '\\' | '^' | '~'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_attest::{GitCommit, Sha256Digest};

    const URL: &str = "https://git.example.com/org/app.git";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn git() -> SourceIdentity {
        SourceIdentity::from_source(&SourceSpec::Git {
            url: URL.to_owned(),
            commit: GitCommit::from_hex(SHA).unwrap(),
            git_ref: None,
        })
        .unwrap()
    }

    #[test]
    fn the_clients_unverified_ref_never_reaches_the_subject() {
        let claimed = SourceIdentity::from_source(&SourceSpec::Git {
            url: URL.to_owned(),
            commit: GitCommit::from_hex(SHA).unwrap(),
            git_ref: Some("main".to_owned()),
        })
        .unwrap();
        assert_eq!(claimed.subject(), format!("repo:{URL}:commit:{SHA}"));
        assert_eq!(claimed.ref_type(), "commit");
    }

    #[test]
    fn branch_tag_and_pull_request_subjects() {
        let branch = git()
            .with_verified_ref(SourceRef::Branch("main".into()))
            .unwrap();
        assert_eq!(branch.subject(), format!("repo:{URL}:ref:refs/heads/main"));
        assert_eq!(branch.ref_claim(), "refs/heads/main");
        let tag = git()
            .with_verified_ref(SourceRef::Tag("v1.0".into()))
            .unwrap();
        assert_eq!(tag.subject(), format!("repo:{URL}:ref:refs/tags/v1.0"));
        let pr = git()
            .with_verified_ref(SourceRef::PullRequest { number: 7 })
            .unwrap();
        assert_eq!(pr.subject(), format!("repo:{URL}:pull_request"));
        assert_eq!(pr.ref_type(), "pull_request");
        assert_eq!(git().subject(), format!("repo:{URL}:commit:{SHA}"));
        assert_eq!(git().sha(), SHA);
    }

    #[test]
    fn a_pull_request_never_matches_a_branch_subject() {
        let pr = git()
            .with_verified_ref(SourceRef::PullRequest { number: 1 })
            .unwrap();
        // A head branch named like a policy target cannot smuggle itself into the subject,
        // and branch names with ':' (which could forge the suffix) are refused.
        for name in [
            "main",
            "pull_request",
            "x:pull_request",
            "main:ref:refs/heads/main",
        ] {
            if let Ok(branch) = git().with_verified_ref(SourceRef::Branch(name.into())) {
                assert_ne!(branch.subject(), pr.subject(), "{name}");
                assert!(!branch.subject().ends_with(":pull_request"));
            } else {
                assert!(name.contains(':'), "{name} refused");
            }
        }
    }

    #[test]
    fn distinct_identities_never_share_a_subject() {
        // Repositories and refs chosen to look like each other's suffixes.
        let repos = [
            URL,
            "https://git.example.com/org/app.git:ref:refs/heads/main",
            "https://git.example.com/org/app.git:pull_request",
            "https://git.example.com/org/app.git:commit",
            "file:///src/app",
            "file:///src/app:ref:local",
        ];
        let refs = || {
            vec![
                SourceRef::Commit,
                SourceRef::Branch("main".into()),
                SourceRef::Branch("pull_request".into()),
                SourceRef::Branch("local".into()),
                SourceRef::Tag("main".into()),
                SourceRef::Tag("v1".into()),
                SourceRef::PullRequest { number: 1 },
                SourceRef::PullRequest { number: 2 },
            ]
        };
        let mut seen = std::collections::HashMap::new();
        for repo in repos {
            let base = SourceIdentity::from_source(&SourceSpec::Git {
                url: repo.to_owned(),
                commit: GitCommit::from_hex(SHA).unwrap(),
                git_ref: None,
            })
            .unwrap();
            for r in refs() {
                let id = base
                    .clone()
                    .with_verified_ref(r.clone())
                    .unwrap_or(base.clone());
                let key = (id.repository().to_owned(), id.ref_claim(), id.ref_type());
                if let Some(other) = seen.insert(id.subject(), key.clone()) {
                    // The same subject is fine only for the same identity, or for two pull
                    // requests of one repository (the PR form deliberately omits the number).
                    assert!(
                        other == key
                            || (other.2 == "pull_request"
                                && key.2 == "pull_request"
                                && other.0 == key.0),
                        "{} is shared by {other:?} and {key:?}",
                        id.subject()
                    );
                }
            }
        }
    }

    #[test]
    fn bad_ref_names_are_refused() {
        for bad in [
            "", "a:b", "a..b", "-x", "a b", "a\nb", "a.lock", "/a", "a/", "a@{1}",
        ] {
            assert_eq!(
                git().with_verified_ref(SourceRef::Branch(bad.into())),
                Err(SubjectError::RefName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn path_sources_are_local_and_archives_have_no_identity() {
        let digest = Sha256Digest::of(b"tree");
        let local = SourceIdentity::from_source(&SourceSpec::Path {
            path: "/src/app".into(),
            sha256: Some(digest),
        })
        .unwrap();
        assert_eq!(local.subject(), "repo:file:///src/app:ref:local");
        assert_eq!(local.sha(), digest.hex());
        assert_eq!(
            local
                .clone()
                .with_verified_ref(SourceRef::Branch("main".into())),
            Err(SubjectError::RefWithoutGit)
        );
        assert_eq!(
            SourceIdentity::from_source(&SourceSpec::Path {
                path: "/src/app".into(),
                sha256: None
            }),
            Err(SubjectError::UnpinnedPath)
        );
        assert_eq!(
            SourceIdentity::from_source(&SourceSpec::Archive {
                url: "https://x/a.tar".into(),
                sha256: digest
            }),
            Err(SubjectError::NoRepository)
        );
        assert_eq!(
            SourceIdentity::from_source(&SourceSpec::Git {
                url: "https://x/a b".into(),
                commit: GitCommit::from_hex(SHA).unwrap(),
                git_ref: None,
            }),
            Err(SubjectError::Repository)
        );
    }
}
