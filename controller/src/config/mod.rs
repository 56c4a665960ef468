//! `controller.toml`: where the controller listens, keeps state, and finds its signing key and
//! token digests. Parsed strictly; every error names the file and the field.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod auth;
mod caches;
mod database_url;
mod forges;
mod job_signatures;
mod policy;
mod signing;
mod tls;
mod web;

pub use auth::{
    AuthConfig, ClientEntry, MAX_RUNNER_TOKEN_TTL_SECONDS, Role, RunnerRegistrationEntry,
};
pub use caches::{CachesConfig, DEFAULT_MAX_ARCHIVE_BYTES, DEFAULT_MAX_SCOPE_BYTES};
pub use database_url::DatabaseUrl;
pub use forges::{DEFAULT_MAX_PAYLOAD_BYTES, ForgeConfig, is_forge_name};
pub use job_signatures::JobSignaturesConfig;
pub use policy::{PolicyConfig, PolicyMode};
pub use signing::{SigningConfig, is_profile_name};
pub use tls::TlsConfig;
pub use web::{DEFAULT_SESSION_LIFETIME, WebConfig};

/// Default cap on a single upload (source archive or output file): 10 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 10 << 30;

/// The issuer `airlock run` uses for its embedded controller: builder ids then read
/// `https://localhost/builders/local/<profile>`, which no hosted controller ever claims.
pub const LOCAL_ISSUER: &str = "https://localhost";

/// Who runs the controller, which decides the builder ids it signs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A hosted controller: builder ids are `{issuer}/builders/{profile}`.
    #[default]
    Server,
    /// The embedded controller of `airlock run` on a workstation: builder ids are
    /// `{issuer}/builders/local/{profile}` (a workstation is not a hardened build platform).
    Local,
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// Socket address to listen on for gRPC, e.g. `"127.0.0.1:7070"`.
    pub listen: SocketAddr,
    /// Directory holding the database and blobs. Relative paths resolve against the directory
    /// of the configuration file.
    pub state_dir: PathBuf,
    /// SQLite database file; default `<state_dir>/airlock.db`. Relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<PathBuf>,
    /// PostgreSQL instead of SQLite: `postgres://user[:password]@host:port/db` (several
    /// controller replicas may share it; give them one shared `blob_dir` too). Prefer
    /// `database_url_file` so the password stays out of this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,
    /// A file (mode 0600) holding the PostgreSQL URL; relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url_file: Option<PathBuf>,
    /// PostgreSQL connections per controller. Default 16.
    #[serde(default = "default_pg_connections")]
    pub database_max_connections: u32,
    /// Blob store directory; default `<state_dir>/blobs`. Relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_dir: Option<PathBuf>,
    /// Largest accepted upload (a source archive or one output file), in bytes.
    /// Default 10 GiB (10737418240).
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// Base URL of this controller (`http://` or `https://`, no trailing `/`). Builder ids and
    /// invocation ids in provenance start with it.
    pub issuer: String,
    /// `"server"` (default) or `"local"`.
    #[serde(default)]
    pub mode: Mode,
    /// `[signing]`
    pub signing: SigningConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[scheduling]`: leases, retries, deadlines, fairness (all optional).
    #[serde(default)]
    pub scheduling: crate::scheduling::SchedulingConfig,
    /// `[oidc]`: the build-token issuer (optional; without it no build tokens are minted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<crate::oidc::OidcConfig>,
    /// `[tls]`: certificate files; without it the controller serves plain HTTP/2 (keep it on
    /// loopback or behind a TLS-terminating proxy then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// `[caches]`: build caches by trust domain (all optional; on by default).
    #[serde(default)]
    pub caches: CachesConfig,
    /// `[[forges]]`: forges whose webhooks queue jobs (`POST /webhooks/<name>`) and which
    /// receive commit statuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forges: Vec<ForgeConfig>,
    /// `[web]`: the job pages.
    #[serde(default)]
    pub web: WebConfig,
    /// `[policy]`: admission policies (optional; without it every authorized job is admitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyConfig>,
    /// `[job_signatures]`: who may sign job specs, and which profiles require it.
    #[serde(default)]
    pub job_signatures: JobSignaturesConfig,
}

fn default_pg_connections() -> u32 {
    16
}

fn default_max_upload() -> u64 {
    DEFAULT_MAX_UPLOAD_BYTES
}

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read the controller configuration: {source}", file.display())]
    Read {
        /// The configuration file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error(
        "{}{}: {}{message}",
        file.display(),
        line.map(|l| format!(":{l}")).unwrap_or_default(),
        field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default()
    )]
    Parse {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// Dotted path of the field at fault, when known (e.g. `auth.api_token_sha256`).
        field: Option<String>,
        /// The parser's message.
        message: String,
    },
    /// A field has a value the controller cannot use.
    #[error("{}: field `{field}`: {message}", file.display())]
    Field {
        /// The configuration file (empty for in-process configurations).
        file: PathBuf,
        /// The field at fault.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// True for `http://` or `https://` followed by a host without whitespace.
fn is_http_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
}

/// A [`ConfigError::Parse`] from a TOML error in `text`.
fn parse_error(file: &Path, text: &str, field: Option<String>, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    ConfigError::Parse {
        file: file.to_owned(),
        line,
        field: field.filter(|f| !f.is_empty() && f != "."),
        message: e.message().trim().to_owned(),
    }
}

impl ControllerConfig {
    /// Reads, parses and validates `path`; relative paths inside resolve against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        let de =
            toml::Deserializer::parse(&text).map_err(|e| parse_error(path, &text, None, &e))?;
        let mut config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            parse_error(path, &text, Some(field), e.inner())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_relative_paths(base);
        config.validate().map_err(|e| match e {
            ConfigError::Field { field, message, .. } => ConfigError::Field {
                file: path.to_owned(),
                field,
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// The configuration of the controller that `airlock run` embeds: listens on
    /// `127.0.0.1:0`, `mode = "local"`, issuer [`LOCAL_ISSUER`], state under `state_dir`,
    /// build tokens signed with keys in `<state_dir>/token-keys` (created on first open).
    /// The tokens are hashed here and not kept.
    pub fn local(
        state_dir: impl Into<PathBuf>,
        signing_key: impl Into<PathBuf>,
        api_token: &str,
        runner_token: &str,
    ) -> Self {
        let state_dir = state_dir.into();
        let state_dir_token_keys = state_dir.join("token-keys");
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            state_dir,
            database: None,
            database_url: None,
            database_url_file: None,
            database_max_connections: default_pg_connections(),
            blob_dir: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            issuer: LOCAL_ISSUER.to_owned(),
            mode: Mode::Local,
            signing: SigningConfig::single(signing_key),
            auth: AuthConfig::with_tokens(api_token, runner_token),
            scheduling: crate::scheduling::SchedulingConfig::default(),
            oidc: Some(crate::oidc::OidcConfig::new(state_dir_token_keys)),
            tls: None,
            caches: CachesConfig::default(),
            forges: Vec::new(),
            web: WebConfig::default(),
            policy: None,
            job_signatures: JobSignaturesConfig::default(),
        }
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.state_dir.join("airlock.db"))
    }

    /// The blob store directory.
    pub fn blob_dir_path(&self) -> PathBuf {
        self.blob_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("blobs"))
    }

    /// The issuer without a trailing `/`.
    pub fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// The base URL of the job pages (`[web] public_url`, else the issuer), without a
    /// trailing `/`.
    pub fn public_url(&self) -> &str {
        self.web
            .public_url
            .as_deref()
            .unwrap_or(&self.issuer)
            .trim_end_matches('/')
    }

    /// Checks values serde cannot (the issuer URL, a non-zero upload cap).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let field = |field, message: String| ConfigError::Field {
            file: PathBuf::new(),
            field,
            message,
        };
        if !is_http_url(self.issuer()) {
            return Err(field(
                "issuer",
                format!(
                    "`{}` is not an http(s) URL; write the controller's public base URL, \
                     e.g. \"https://airlock.example.com\"",
                    self.issuer
                ),
            ));
        }
        if self.max_upload_bytes == 0 {
            return Err(field(
                "max_upload_bytes",
                "must be at least 1 (bytes); omit it for the 10 GiB default".into(),
            ));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(field("state_dir", "is empty; name a directory".into()));
        }
        if self.database_url.is_some() && self.database_url_file.is_some() {
            return Err(field(
                "database_url",
                "set either database_url or database_url_file, not both".into(),
            ));
        }
        if let Some(url) = &self.database_url
            && !(url.expose().starts_with("postgres://")
                || url.expose().starts_with("postgresql://"))
        {
            return Err(field(
                "database_url",
                "must start with postgres:// (the value is not shown: it may hold a password)"
                    .into(),
            ));
        }
        if let Err((name, message)) = forges::check(&self.forges) {
            return Err(field(name, message));
        }
        if let Err((name, message)) = self.job_signatures.check() {
            return Err(field(name, message));
        }
        if let Err((name, message)) = self.web.check() {
            return Err(field(name, message));
        }
        if let Err((name, message)) = self.caches.check() {
            return Err(field(name, message));
        }
        if let Err((name, message)) = self.scheduling.check() {
            return Err(field(name, message));
        }
        if let Err((name, message)) = self.signing.check() {
            return Err(field(name, message));
        }
        if let Err((name, message)) = self.auth.check() {
            return Err(field(name, message));
        }
        if let Err((name, message)) = self.auth.check_runners() {
            return Err(field(name, message));
        }
        if let Some(oidc) = &self.oidc
            && let Err((name, message)) = oidc.check()
        {
            return Err(field(name, message));
        }
        Ok(())
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.state_dir);
        if let Some(p) = &mut self.database {
            resolve(p);
        }
        if let Some(p) = &mut self.blob_dir {
            resolve(p);
        }
        if let Some(p) = &mut self.database_url_file {
            resolve(p);
        }
        if let Some(p) = &mut self.caches.dir {
            resolve(p);
        }
        self.signing.resolve_relative_paths(base);
        if let Some(oidc) = &mut self.oidc {
            resolve(&mut oidc.token_keys);
        }
        for forge in &mut self.forges {
            forge.resolve_relative_paths(base);
        }
        if let Some(policy) = &mut self.policy {
            resolve(&mut policy.dir);
        }
        for key in &mut self.job_signatures.keys {
            resolve(key);
        }
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
            if let Some(ca) = &mut tls.runner_client_ca {
                resolve(ca);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::TokenDigest;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("controller.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn valid(extra: &str) -> String {
        let d = TokenDigest::of("x").hex();
        format!(
            "listen = \"127.0.0.1:7070\"\nstate_dir = \"state\"\nissuer = \"https://ci.example\"\n{extra}\n\
             [signing]\nkey = \"keys/provenance.key\"\n\
             [auth]\napi_token_sha256 = \"{d}\"\nrunner_token_sha256 = \"{d}\"\n"
        )
    }

    #[test]
    fn loads_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &valid(""));
        let c = ControllerConfig::load(&path).unwrap();
        assert_eq!(c.state_dir, dir.path().join("state"));
        assert_eq!(
            c.signing.key.as_deref(),
            Some(dir.path().join("keys/provenance.key").as_path())
        );
        assert_eq!(
            c.signing.key_for("release"),
            Some(dir.path().join("keys/provenance.key").as_path())
        );
        assert_eq!(c.database_path(), dir.path().join("state/airlock.db"));
        assert_eq!(c.blob_dir_path(), dir.path().join("state/blobs"));
        assert_eq!(c.mode, Mode::Server);
        assert_eq!(c.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);
    }

    #[test]
    fn oidc_token_keys_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!("{}\n[oidc]\ntoken_keys = \"token-keys\"\n", valid("")),
        );
        let c = ControllerConfig::load(&path).unwrap();
        assert_eq!(
            c.oidc,
            Some(crate::oidc::OidcConfig::new(dir.path().join("token-keys")))
        );
        let local = ControllerConfig::local("/tmp/s", "/tmp/k.key", "a", "r");
        assert_eq!(
            local.oidc.map(|o| o.token_keys),
            Some(PathBuf::from("/tmp/s/token-keys"))
        );
    }

    #[test]
    fn tls_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n[tls]\ncert = \"tls/server.pem\"\nkey = \"/abs/server.key\"\n\
             runner_client_ca = \"tls/runner-ca.pem\"\n",
            valid("")
        );
        let c = ControllerConfig::load(&write(dir.path(), &text)).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsConfig {
                cert: dir.path().join("tls/server.pem"),
                key: PathBuf::from("/abs/server.key"),
                runner_client_ca: Some(dir.path().join("tls/runner-ca.pem")),
            })
        );
    }

    #[test]
    fn errors_name_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &valid("bogus = 1"));
        let e = ControllerConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("controller.toml") && e.contains("bogus"), "{e}");

        let text = valid("").replace("api_token_sha256 = \"", "api_token_sha256 = \"zz");
        let path = write(dir.path(), &text);
        let e = ControllerConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("controller.toml:8: field `auth.api_token_sha256`: expected 64"),
            "{e}"
        );

        let text = valid("").replace("https://ci.example", "ci.example");
        let path = write(dir.path(), &text);
        let e = ControllerConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("controller.toml") && e.contains("`issuer`"),
            "{e}"
        );

        let e = ControllerConfig::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }

    #[test]
    fn per_profile_keys_and_published_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = TokenDigest::of("x").hex();
        let text = format!(
            "listen = \"127.0.0.1:7070\"\nstate_dir = \"s\"\nissuer = \"https://ci.example\"\n\
             [signing]\nverification_keys = [\"keys/old.pub\"]\n\
             [signing.keys]\nrelease = \"keys/release.key\"\nuntrusted-pr = \"/abs/pr.key\"\n\
             [auth]\napi_token_sha256 = \"{d}\"\nrunner_token_sha256 = \"{d}\"\n"
        );
        let c = ControllerConfig::load(&write(dir.path(), &text)).unwrap();
        assert_eq!(c.signing.key, None);
        assert_eq!(
            c.signing.key_for("release"),
            Some(dir.path().join("keys/release.key").as_path())
        );
        assert_eq!(
            c.signing.key_for("untrusted-pr"),
            Some(Path::new("/abs/pr.key"))
        );
        assert_eq!(c.signing.key_for("trusted"), None, "no default key");
        assert_eq!(
            c.signing.verification_keys,
            [dir.path().join("keys/old.pub")]
        );

        // No key at all, and a bad profile name, are refused with the field named.
        let none = text.replace(
            "[signing.keys]\nrelease = \"keys/release.key\"\nuntrusted-pr = \"/abs/pr.key\"\n",
            "",
        );
        let e = ControllerConfig::load(&write(dir.path(), &none))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`signing`") && e.contains("names no key"), "{e}");
        let bad = text.replace("release = ", "Release = ");
        let e = ControllerConfig::load(&write(dir.path(), &bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("signing.keys") && e.contains("`Release`"), "{e}");
    }

    #[test]
    fn clients_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = |t: &str| TokenDigest::of(t).hex();
        let client = |name: &str, token: &str, role: &str, profiles: &str| {
            format!(
                "[[auth.clients]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nrole = \"{role}\"\n{profiles}\n",
                d(token)
            )
        };
        let load = |clients: &str| {
            let text = format!("{}{clients}", valid(""));
            ControllerConfig::load(&write(dir.path(), &text))
        };
        let ok = load(&format!(
            "{}{}{}",
            client(
                "ci",
                "t1",
                "submit-trusted",
                "profiles = [\"untrusted-pr\"]"
            ),
            client("ops", "t2", "admin", "profiles = [\"release\"]"),
            client("dash", "t3", "read", "profiles = []"),
        ))
        .unwrap();
        assert_eq!(ok.auth.clients.len(), 3);
        assert_eq!(ok.auth.clients[0].role, Role::SubmitTrusted);

        let cases = [
            (
                format!(
                    "{}{}",
                    client("ci", "t1", "read", ""),
                    client("ci", "t2", "read", "")
                ),
                "configured twice",
            ),
            (
                client("admin", "t1", "read", ""),
                "`admin` is the client of api_token_sha256",
            ),
            (
                client("ci", "x", "read", ""),
                "same token as another client",
            ),
            (
                client("ci", "t1", "submit-trusted", "profiles = [\"release\"]"),
                "may only narrow",
            ),
            (
                client("ci", "t1", "read", "profiles = [\"untrusted-pr\"]"),
                "submits nothing",
            ),
            (client("ci bot", "t1", "read", ""), "is not a client name"),
            (
                client("ops", "t1", "admin", "profiles = [\"Rel\"]"),
                "not a profile name",
            ),
        ];
        for (clients, want) in cases {
            let e = load(&clients).unwrap_err().to_string();
            assert!(
                e.contains("controller.toml") && e.contains(want),
                "{want}: {e}"
            );
        }
        let e = load(&client("ci", "t1", "owner", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.clients") && e.contains("owner"), "{e}");

        // No client at all: the error says how to add one.
        let none = valid("").replace(&format!("api_token_sha256 = \"{}\"\n", d("x")), "");
        let e = ControllerConfig::load(&write(dir.path(), &none))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no job-API client")
                && e.contains("sha256sum")
                && e.contains("[[auth.clients]]"),
            "{e}"
        );
        let only_client = format!("{none}{}", client("ci", "t1", "submit-release", ""));
        ControllerConfig::load(&write(dir.path(), &only_client)).unwrap();
    }

    #[test]
    fn build_token_profiles_refuse_untrusted_pr_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let with = |profiles: &str| {
            format!(
                "{}\n[oidc]\ntoken_keys = \"token-keys\"\nbuild_token_profiles = {profiles}\n",
                valid("")
            )
        };
        let c = ControllerConfig::load(&write(dir.path(), &with("[\"release\"]"))).unwrap();
        assert_eq!(
            c.oidc.unwrap().build_token_profiles,
            vec!["release".to_owned()]
        );
        let e =
            ControllerConfig::load(&write(dir.path(), &with("[\"trusted\", \"untrusted-pr\"]")))
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("oidc.build_token_profiles") && e.contains("`untrusted-pr` may never"),
            "{e}"
        );
    }

    #[test]
    fn local_config_is_valid() {
        let c = ControllerConfig::local("/tmp/s", "/tmp/k.key", "a", "r");
        c.validate().unwrap();
        assert_eq!(c.mode, Mode::Local);
        assert!(c.auth.api_token_sha256.unwrap().matches("a"));
        assert!(c.auth.runner_secret_sha256.unwrap().matches("r"));
    }
}
