//! The forge's REST API, as far as airlock uses it: read the job file at a commit (GitHub and
//! Forgejo `GET /repos/{o}/{r}/contents/{path}?ref=`, GitLab `GET
//! /projects/:id/repository/files/:path?ref=`) and post a commit status (GitHub and Forgejo
//! `POST /repos/{o}/{r}/statuses/{sha}`, GitLab `POST /projects/:id/statuses/:sha`).
//!
//! Blocking (ureq) calls, run on tokio's blocking pool by the callers. No redirects are
//! followed (they could carry the token to another host), and neither the token nor a
//! response body longer than a line reaches a log or an error.

use std::time::Duration;

use airlock_attest::GitCommit;
use airlock_job::ForgeKind;
use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::job_file::MAX_JOB_FILE_BYTES;
use crate::config::ForgeConfig;

/// What a path segment keeps unescaped (RFC 3986 unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest API response read (a contents response is the base64 of the job file).
const MAX_RESPONSE_BYTES: u64 = 4 * MAX_JOB_FILE_BYTES as u64;

/// Longest status description (GitHub's limit).
pub const MAX_DESCRIPTION: usize = 140;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForgeApiError {
    /// No answer (connection, TLS, timeout).
    #[error("{method} {url}: {message}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The URL (it never holds the token).
        url: String,
        /// The transport's message.
        message: String,
    },
    /// An answer other than success.
    #[error("{method} {url}: HTTP {status}{detail}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The first line of the body, if short.
        detail: String,
    },
    /// A success whose body is not what the API documents.
    #[error("{url}: unexpected response: {message}")]
    Body {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
}

impl ForgeApiError {
    /// True when trying again later may succeed (no answer, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            ForgeApiError::Transport { .. } => true,
            ForgeApiError::Status { status, .. } => *status >= 500 || *status == 429,
            ForgeApiError::Body { .. } => false,
        }
    }
}

/// The state of a commit status, in airlock's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    /// Queued or running.
    Pending,
    /// Succeeded.
    Success,
    /// The build failed or timed out.
    Failure,
    /// Cancelled, an infrastructure failure, or a job file that cannot run.
    Error,
}

impl StatusState {
    /// The forge's name for it. GitLab has no `error`: it gets `failed` (or `canceled`).
    fn wire(self, kind: ForgeKind, cancelled: bool) -> &'static str {
        match (kind, self) {
            (_, StatusState::Pending) => "pending",
            (_, StatusState::Success) => "success",
            (ForgeKind::Gitlab, StatusState::Failure) => "failed",
            (ForgeKind::Gitlab, StatusState::Error) if cancelled => "canceled",
            (ForgeKind::Gitlab, StatusState::Error) => "failed",
            (_, StatusState::Failure) => "failure",
            (_, StatusState::Error) => "error",
        }
    }
}

/// One commit status to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// The state.
    pub state: StatusState,
    /// True for a cancelled job (GitLab shows `canceled`).
    pub cancelled: bool,
    /// `airlock/<job name>`.
    pub context: String,
    /// A short human line.
    pub description: String,
    /// The job's page, if there is a job.
    pub target_url: Option<String>,
}

/// A forge's API with its token.
pub struct ForgeApi {
    kind: ForgeKind,
    root: String,
    token: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ForgeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeApi")
            .field("kind", &self.kind)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Contents {
    #[serde(default)]
    encoding: Option<String>,
    content: String,
}

impl ForgeApi {
    /// The API of `forge`, authenticating with `token`.
    pub fn new(forge: &ForgeConfig, token: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(20)))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            kind: forge.kind,
            root: forge.api_root().to_owned(),
            token: token.trim().to_owned(),
            agent,
        }
    }

    fn repo_path(&self, repository: &str) -> String {
        match self.kind {
            // GitLab takes the URL-encoded `group/project` path in place of the id.
            ForgeKind::Gitlab => format!(
                "{}/projects/{}",
                self.root,
                utf8_percent_encode(repository, SEGMENT)
            ),
            ForgeKind::Github | ForgeKind::Forgejo => {
                let segments: Vec<String> = repository
                    .split('/')
                    .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
                    .collect();
                format!("{}/repos/{}", self.root, segments.join("/"))
            }
        }
    }

    fn authorize<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match self.kind {
            ForgeKind::Github => req
                .header("Authorization", &format!("Bearer {}", self.token))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            ForgeKind::Forgejo => req
                .header("Authorization", &format!("token {}", self.token))
                .header("Accept", "application/json"),
            ForgeKind::Gitlab => req
                .header("PRIVATE-TOKEN", &self.token)
                .header("Accept", "application/json"),
        }
    }

    /// The bytes of `path` at `commit` in `repository`; `None` when the file does not exist.
    pub fn job_file(
        &self,
        repository: &str,
        path: &str,
        commit: &GitCommit,
    ) -> Result<Option<Vec<u8>>, ForgeApiError> {
        let url = match self.kind {
            ForgeKind::Gitlab => format!(
                "{}/repository/files/{}?ref={}",
                self.repo_path(repository),
                utf8_percent_encode(path, SEGMENT),
                commit.hex()
            ),
            ForgeKind::Github | ForgeKind::Forgejo => {
                let segments: Vec<String> = path
                    .split('/')
                    .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
                    .collect();
                format!(
                    "{}/contents/{}?ref={}",
                    self.repo_path(repository),
                    segments.join("/"),
                    commit.hex()
                )
            }
        };
        let transport = |e: ureq::Error| ForgeApiError::Transport {
            method: "GET",
            url: url.clone(),
            message: e.to_string(),
        };
        let mut resp = self
            .authorize(self.agent.get(&url))
            .call()
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(transport)?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(status_error("GET", &url, status, &body));
        }
        let contents: Contents =
            serde_json::from_slice(&body).map_err(|e| ForgeApiError::Body {
                url: url.clone(),
                message: format!("not a file contents object: {e}"),
            })?;
        if contents.encoding.as_deref().is_some_and(|e| e != "base64") {
            return Err(ForgeApiError::Body {
                url,
                message: "content is not base64 (is the file larger than the API serves?)".into(),
            });
        }
        let compact: String = contents
            .content
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(Some)
            .map_err(|e| ForgeApiError::Body {
                url,
                message: format!("content is not valid base64: {e}"),
            })
    }

    /// Posts `status` for `commit` of `repository`.
    pub fn post_status(
        &self,
        repository: &str,
        commit: &GitCommit,
        status: &CommitStatus,
    ) -> Result<(), ForgeApiError> {
        let url = format!("{}/statuses/{}", self.repo_path(repository), commit.hex());
        let description: String = status.description.chars().take(MAX_DESCRIPTION).collect();
        let state = status.state.wire(self.kind, status.cancelled);
        let mut body = serde_json::json!({
            "state": state,
            "description": description,
        });
        let name_key = match self.kind {
            ForgeKind::Gitlab => "name",
            ForgeKind::Github | ForgeKind::Forgejo => "context",
        };
        body[name_key] = status.context.clone().into();
        if let Some(target) = &status.target_url {
            body["target_url"] = target.clone().into();
        }
        let transport = |e: ureq::Error| ForgeApiError::Transport {
            method: "POST",
            url: url.clone(),
            message: e.to_string(),
        };
        let mut resp = self
            .authorize(self.agent.post(&url))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .map_err(transport)?;
        let code = resp.status().as_u16();
        let answer = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .unwrap_or_default();
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(status_error("POST", &url, code, &answer))
        }
    }
}

fn status_error(method: &'static str, url: &str, status: u16, body: &[u8]) -> ForgeApiError {
    let first = String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>();
    ForgeApiError::Status {
        method,
        url: url.to_owned(),
        status,
        detail: if first.is_empty() {
            String::new()
        } else {
            format!(": {first}")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(kind: ForgeKind) -> ForgeApi {
        let forge = ForgeConfig::example(kind, "https://forge.example/api/");
        ForgeApi::new(&forge, "secret-token\n")
    }

    #[test]
    fn paths_escape_each_segment() {
        assert_eq!(
            api(ForgeKind::Github).repo_path("org/my.app"),
            "https://forge.example/api/repos/org/my.app"
        );
        assert_eq!(
            api(ForgeKind::Gitlab).repo_path("group/sub/app"),
            "https://forge.example/api/projects/group%2Fsub%2Fapp"
        );
        assert_eq!(
            api(ForgeKind::Forgejo).repo_path("o/a b?"),
            "https://forge.example/api/repos/o/a%20b%3F"
        );
    }

    #[test]
    fn gitlab_has_no_error_state() {
        assert_eq!(StatusState::Error.wire(ForgeKind::Gitlab, false), "failed");
        assert_eq!(StatusState::Error.wire(ForgeKind::Gitlab, true), "canceled");
        assert_eq!(StatusState::Error.wire(ForgeKind::Github, true), "error");
        assert_eq!(
            StatusState::Failure.wire(ForgeKind::Forgejo, false),
            "failure"
        );
    }

    #[test]
    fn debug_hides_the_token() {
        assert!(!format!("{:?}", api(ForgeKind::Github)).contains("secret-token"));
    }
}
