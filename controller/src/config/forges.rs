//! `[[forges]]` of `controller.toml`: forges whose webhooks queue jobs and which receive
//! commit statuses.

use std::path::PathBuf;

use airlock_job::ForgeKind;
use serde::{Deserialize, Serialize};

/// Default cap on a webhook body: 5 MiB (a push of many commits is a few hundred KiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 5 << 20;

/// One forge: where its webhooks arrive (`POST /webhooks/<name>`), how they are
/// authenticated, and where statuses and job files are read from and posted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConfig {
    /// `github`, `gitlab` or `forgejo` (Forgejo and Gitea).
    pub kind: ForgeKind,
    /// The webhook URL's last segment: `[a-z0-9-]`, 1-32 characters.
    pub name: String,
    /// File holding the webhook secret (HMAC-SHA256 key for GitHub/Forgejo, the
    /// `X-Gitlab-Token` value for GitLab); mode 0600 or stricter.
    pub webhook_secret_file: PathBuf,
    /// The forge's API root: `https://api.github.com`, `https://forge.example/api/v1`,
    /// `https://gitlab.example/api/v4`.
    pub api_url: String,
    /// File holding the API token for statuses and the contents API; mode 0600 or stricter.
    pub token_file: PathBuf,
    /// Path of the job file in the repository (default `airlock.toml`).
    #[serde(default = "default_job_file")]
    pub job_file: String,
    /// Repositories (`owner/name`) whose webhooks are accepted; empty = any the secret signs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Repositories whose tag pushes may run as `release`. No other event ever does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_repositories: Vec<String>,
    /// Largest accepted webhook body, in bytes (default 5 MiB).
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: u64,
}

fn default_job_file() -> String {
    "airlock.toml".to_owned()
}

fn default_max_payload() -> u64 {
    DEFAULT_MAX_PAYLOAD_BYTES
}

/// True for a forge name usable in a URL path segment.
pub fn is_forge_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks `forges`: `(field, message)` on error.
pub fn check(forges: &[ForgeConfig]) -> Result<(), (&'static str, String)> {
    for (i, forge) in forges.iter().enumerate() {
        if !is_forge_name(&forge.name) {
            return Err((
                "forges.name",
                format!(
                    "forges[{i}]: `{}` is not a forge name; use 1-32 of [a-z0-9-] (it is the \
                     last segment of the webhook URL)",
                    forge.name
                ),
            ));
        }
        if forges[..i].iter().any(|f| f.name == forge.name) {
            return Err((
                "forges.name",
                format!("forges[{i}]: the name `{}` is used twice", forge.name),
            ));
        }
        if !super::is_http_url(forge.api_root()) {
            return Err((
                "forges.api_url",
                format!(
                    "forges[{i}] ({}): `{}` is not an http(s) URL; write the API root, e.g. \
                     https://api.github.com, https://forge.example/api/v1 or \
                     https://gitlab.example/api/v4",
                    forge.name, forge.api_url
                ),
            ));
        }
        if !airlock_job::is_clean_relative(&forge.job_file) {
            return Err((
                "forges.job_file",
                format!(
                    "forges[{i}] ({}): `{}` is not a relative path inside the repository",
                    forge.name, forge.job_file
                ),
            ));
        }
        if forge.max_payload_bytes < 1024 {
            return Err((
                "forges.max_payload_bytes",
                format!(
                    "forges[{i}] ({}): {} bytes is too small for any webhook; omit it for 5 MiB",
                    forge.name, forge.max_payload_bytes
                ),
            ));
        }
        for repo in forge.repositories.iter().chain(&forge.release_repositories) {
            if repo.is_empty() || repo.contains(char::is_whitespace) || !repo.contains('/') {
                return Err((
                    "forges.repositories",
                    format!(
                        "forges[{i}] ({}): `{repo}` is not a repository name; write `owner/name`",
                        forge.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl ForgeConfig {
    /// The API root without a trailing `/`.
    pub fn api_root(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }

    /// Resolves relative secret paths against `base` (the configuration file's directory).
    pub(super) fn resolve_relative_paths(&mut self, base: &std::path::Path) {
        for p in [&mut self.webhook_secret_file, &mut self.token_file] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

#[cfg(test)]
impl ForgeConfig {
    /// A forge entry for unit tests.
    pub fn example(kind: ForgeKind, api_url: &str) -> Self {
        Self {
            kind,
            name: "gh".into(),
            webhook_secret_file: "secret".into(),
            api_url: api_url.into(),
            token_file: "token".into(),
            job_file: default_job_file(),
            repositories: Vec::new(),
            release_repositories: Vec::new(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }
}
