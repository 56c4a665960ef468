//! `[auth]` of `controller.toml`: job-API clients and their roles, runner registrations, and
//! the lifetimes of runner and job tokens.

use serde::{Deserialize, Serialize};

use super::is_profile_name;
use crate::auth::digest::TokenDigest;

/// `[auth]`: who may call the controller. Only SHA-256 digests (lowercase hex) of secrets are
/// stored; the secrets themselves never are. See docs/identity.md.
///
/// ```toml
/// [auth]
/// runner_token_ttl_seconds = 600     # runner tokens live this long (at most 900)
/// job_token_grace_seconds = 300      # job tokens outlive the job's deadline by this much
///
/// [[auth.clients]]                    # job-API clients and the role each has
/// name = "release-bot"
/// token_sha256 = "<sha256 of the client's bearer token>"
/// role = "submit-release"
///
/// [[auth.runners]]                    # runner registrations (more: `airlock controller
/// name = "pool-a"                     # registration create`; revoke with `... revoke`)
/// secret_sha256 = "<sha256 of the registration secret>"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Digest of an API token with the `admin` role (the client named `admin`); what
    /// `controller init` writes for `admin.token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token_sha256: Option<TokenDigest>,
    /// Digest of the registration secret of the runner registration named `default`; what
    /// `controller init` writes for `runner.secret`. (`runner_token_sha256` is accepted as an
    /// older name.)
    #[serde(
        default,
        alias = "runner_token_sha256",
        skip_serializing_if = "Option::is_none"
    )]
    pub runner_secret_sha256: Option<TokenDigest>,
    /// Job-API clients: a name, the digest of the bearer token, a role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientEntry>,
    /// Runner registrations declared here (synced into the database at start-up; more can
    /// be created and any revoked with `airlock controller registration`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runners: Vec<RunnerRegistrationEntry>,
    /// Lifetime of a runner token, in seconds (default 600, at most 900).
    #[serde(default = "default_runner_token_ttl")]
    pub runner_token_ttl_seconds: u32,
    /// How long a job token stays valid after the job's deadline, in seconds (default 300):
    /// time to upload outputs and complete after a timeout.
    #[serde(default = "default_job_token_grace")]
    pub job_token_grace_seconds: u32,
}

/// The longest a runner token may live: 15 minutes.
pub const MAX_RUNNER_TOKEN_TTL_SECONDS: u32 = 900;

fn default_runner_token_ttl() -> u32 {
    600
}

fn default_job_token_grace() -> u32 {
    300
}

impl AuthConfig {
    /// Checks what serde cannot: some client exists, client names and tokens are unique, and
    /// each `profiles` list only narrows its role's default set.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.api_token_sha256.is_none() && self.clients.is_empty() {
            return Err((
                "auth",
                "no job-API client is configured, so nobody could submit or read jobs; add a \
                 client: create a token with `head -c32 /dev/urandom | base64 | tr -d '\\n' > \
                 client.token`, hash it with `sha256sum client.token`, and add \
                 [[auth.clients]] with name, token_sha256 and role (or set api_token_sha256 \
                 for an admin token)"
                    .into(),
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        let mut digests: Vec<TokenDigest> = Vec::new();
        if let Some(admin) = self.api_token_sha256 {
            names.push(crate::auth::clients::ADMIN_CLIENT);
            digests.push(admin);
        }
        for client in &self.clients {
            let name = client.name.as_str();
            let plausible = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !plausible {
                return Err((
                    "auth.clients.name",
                    format!(
                        "{name:?} is not a client name (1-64 of letters, digits, `-`, `_`, `.`)"
                    ),
                ));
            }
            if names.contains(&name) {
                let why = if name == crate::auth::clients::ADMIN_CLIENT {
                    " (`admin` is the client of api_token_sha256)"
                } else {
                    ""
                };
                return Err((
                    "auth.clients.name",
                    format!("client `{name}` is configured twice{why}; give each a unique name"),
                ));
            }
            if digests.iter().any(|d| d.ct_eq(&client.token_sha256)) {
                return Err((
                    "auth.clients.token_sha256",
                    format!(
                        "client `{name}` has the same token as another client; give each \
                         client its own token"
                    ),
                ));
            }
            names.push(name);
            digests.push(client.token_sha256);
            let Some(profiles) = &client.profiles else {
                continue;
            };
            let role = client.role.as_str();
            match client.role.default_profiles() {
                Some([]) if !profiles.is_empty() => {
                    return Err((
                        "auth.clients.profiles",
                        format!(
                            "client `{name}` has role `{role}`, which submits nothing; remove \
                             its profiles list or give it a submit role"
                        ),
                    ));
                }
                Some(defaults) => {
                    if let Some(extra) = profiles.iter().find(|p| !defaults.contains(&p.as_str())) {
                        return Err((
                            "auth.clients.profiles",
                            format!(
                                "client `{name}`: profiles may only narrow what role `{role}` \
                                 allows ({}), and `{extra}` is not in it; remove it or choose \
                                 a role that allows it",
                                defaults.join(", ")
                            ),
                        ));
                    }
                }
                None => {
                    if let Some(bad) = profiles.iter().find(|p| !is_profile_name(p)) {
                        return Err((
                            "auth.clients.profiles",
                            format!(
                                "client `{name}`: `{bad}` is not a profile name (lowercase \
                                 letters, digits, `-`)"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// An `[auth]` with an admin API token and a `default` runner registration (digests of
    /// `api_token` and `runner_secret`) and default lifetimes.
    pub fn with_tokens(api_token: &str, runner_secret: &str) -> Self {
        Self {
            api_token_sha256: Some(TokenDigest::of(api_token)),
            runner_secret_sha256: Some(TokenDigest::of(runner_secret)),
            clients: Vec::new(),
            runners: Vec::new(),
            runner_token_ttl_seconds: default_runner_token_ttl(),
            job_token_grace_seconds: default_job_token_grace(),
        }
    }
}

/// `[[auth.clients]]`: one job-API client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// A name for logs and errors (unique).
    pub name: String,
    /// SHA-256 of the client's bearer token.
    pub token_sha256: TokenDigest,
    /// What the client may do.
    pub role: Role,
    /// Profiles the client may submit to, narrowing (never widening beyond `admin`) the
    /// role's default set; see [`Role::default_profiles`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
}

/// A client's role: which calls it may make and which profiles it may submit to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read jobs, logs, outputs and provenance.
    Read,
    /// Read, and submit and cancel `untrusted-pr` jobs.
    SubmitUntrusted,
    /// Read, and submit and cancel `untrusted-pr` and `trusted` jobs.
    SubmitTrusted,
    /// Read, and submit and cancel `untrusted-pr`, `trusted` and `release` jobs.
    SubmitRelease,
    /// Everything, any profile.
    Admin,
}

impl Role {
    /// The profiles this role may submit to by default (`None`: any, for `admin`).
    pub fn default_profiles(self) -> Option<&'static [&'static str]> {
        match self {
            Role::Read => Some(&[]),
            Role::SubmitUntrusted => Some(&["untrusted-pr"]),
            Role::SubmitTrusted => Some(&["untrusted-pr", "trusted"]),
            Role::SubmitRelease => Some(&["untrusted-pr", "trusted", "release"]),
            Role::Admin => None,
        }
    }

    /// The name used in `controller.toml` (e.g. `submit-trusted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::SubmitUntrusted => "submit-untrusted",
            Role::SubmitTrusted => "submit-trusted",
            Role::SubmitRelease => "submit-release",
            Role::Admin => "admin",
        }
    }
}

/// `[[auth.runners]]`: one runner registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerRegistrationEntry {
    /// The registration's name (unique), recorded on each runner that registers with it.
    pub name: String,
    /// SHA-256 of the registration secret.
    pub secret_sha256: TokenDigest,
}
