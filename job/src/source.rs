//! The `[source]` table: exactly one of a local path, a git commit, or an archive.

use airlock_attest::{GitCommit, Sha256Digest};
use serde::{Deserialize, Serialize};

/// Where the job's source tree comes from. Everything is pinned by digest by
/// the time a job is submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSource", into = "RawSource")]
pub enum SourceSpec {
    /// A local directory. The client packs it into a canonical tar, uploads it and
    /// records the tar's sha256 here before submitting.
    Path {
        /// Directory (relative to the job file in a file; absolute once submitted).
        path: String,
        /// sha256 of the canonical tar of the directory; required once submitted.
        sha256: Option<Sha256Digest>,
    },
    /// A git repository at a full commit id.
    Git {
        /// Clone URL.
        url: String,
        /// Full 40-hex commit id.
        commit: GitCommit,
        /// The branch or tag the client resolved to `commit` at submit time, recorded as
        /// asked (`ref` in the job file); the runner always checks out `commit`.
        git_ref: Option<String>,
    },
    /// A tar archive at a URL, pinned by sha256.
    Archive {
        /// Download URL.
        url: String,
        /// sha256 of the archive bytes.
        sha256: Sha256Digest,
    },
}

impl SourceSpec {
    /// A URI naming the source, as recorded in provenance.
    pub fn uri(&self) -> String {
        match self {
            SourceSpec::Path { path, .. } => format!("file://{path}"),
            SourceSpec::Git { url, .. } => format!("git+{url}"),
            SourceSpec::Archive { url, .. } => url.clone(),
        }
    }
}

/// True for a branch or tag name (`main`, `v1.2`, `refs/tags/v1`) that cannot be read as an
/// option or a revision expression.
pub fn is_git_ref(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && !r.starts_with('-')
        && !r.starts_with('/')
        && !r.ends_with('/')
        && !r.ends_with(".lock")
        && !r.contains("..")
        && !r.contains("//")
        && !r.contains("@{")
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+'))
}

/// The TOML/JSON shape of `[source]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    git: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    archive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

const SOURCE_HINT: &str = "\nhint: use exactly one of: `path = \"DIR\"`, `git = URL` with `commit = \"<40 hex>\"`, or `archive = URL` with `sha256 = \"<64 hex>\"`";

impl TryFrom<RawSource> for SourceSpec {
    type Error = String;

    fn try_from(raw: RawSource) -> Result<Self, Self::Error> {
        let sha256 = raw
            .sha256
            .as_deref()
            .map(|s| {
                Sha256Digest::from_hex(s.strip_prefix("sha256:").unwrap_or(s))
                    .map_err(|e| format!("sha256 `{s}` is not 64 lowercase hex digits ({e})"))
            })
            .transpose()?;
        match (raw.path, raw.git, raw.archive) {
            (Some(path), None, None) => {
                if raw.commit.is_some() || raw.git_ref.is_some() {
                    return Err(format!(
                        "`commit` and `ref` only go with `git`{SOURCE_HINT}"
                    ));
                }
                if path.is_empty() {
                    return Err(
                        "`path` is empty; write `path = \".\"` for the job file's directory".into(),
                    );
                }
                Ok(SourceSpec::Path { path, sha256 })
            }
            (None, Some(url), None) => {
                let commit = raw.commit.ok_or_else(|| {
                    "`git` needs `commit = \"<40 hex>\"`: a full commit id (a `ref = \"BRANCH or TAG\"` \
                     is resolved to one by `airlock run`/`airlock submit`)"
                        .to_string()
                })?;
                if let Some(r) = &raw.git_ref
                    && !is_git_ref(r)
                {
                    return Err(format!("ref `{r}` is not a branch or tag name git accepts"));
                }
                let commit = GitCommit::from_hex(&commit).map_err(|e| {
                    format!("commit `{commit}` is not a full 40-hex commit id ({e}); resolve refs before submitting")
                })?;
                if sha256.is_some() {
                    return Err(format!("`sha256` does not go with `git`{SOURCE_HINT}"));
                }
                Ok(SourceSpec::Git {
                    url,
                    commit,
                    git_ref: raw.git_ref,
                })
            }
            (None, None, Some(url)) => {
                if raw.commit.is_some() || raw.git_ref.is_some() {
                    return Err(format!(
                        "`commit` and `ref` only go with `git`{SOURCE_HINT}"
                    ));
                }
                let sha256 =
                    sha256.ok_or_else(|| "`archive` needs `sha256 = \"<64 hex>\"`".to_string())?;
                Ok(SourceSpec::Archive { url, sha256 })
            }
            _ => Err(format!("the source is ambiguous or missing{SOURCE_HINT}")),
        }
    }
}

impl From<SourceSpec> for RawSource {
    fn from(s: SourceSpec) -> Self {
        match s {
            SourceSpec::Path { path, sha256 } => RawSource {
                path: Some(path),
                sha256: sha256.map(|d| d.hex()),
                ..Default::default()
            },
            SourceSpec::Git {
                url,
                commit,
                git_ref,
            } => RawSource {
                git: Some(url),
                commit: Some(commit.to_string()),
                git_ref,
                ..Default::default()
            },
            SourceSpec::Archive { url, sha256 } => RawSource {
                archive: Some(url),
                sha256: Some(sha256.hex()),
                ..Default::default()
            },
        }
    }
}
