//! `airlock controller init`: a ready-to-run controller directory with fresh keys and tokens.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use airlock_attest::{KeyError, write_keypair};

/// The trust profiles `init` creates a signing key for, in this order.
pub const PROFILES: [&str; 3] = ["untrusted-pr", "trusted", "release"];

use crate::auth::digest::TokenDigest;

/// File name of the configuration inside the init directory.
pub const CONFIG_FILE: &str = "controller.toml";

/// What `init` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSummary {
    /// The controller URL clients and runners use: `http://ADDR`.
    pub url: String,
    /// `DIR/controller.toml`.
    pub config_path: PathBuf,
    /// One signing key per trust profile of [`PROFILES`], in that order.
    pub profile_keys: Vec<ProfileKey>,
    /// `DIR/runner.secret` (0600): the secret of the runner registration `default`, which
    /// runners exchange for short-lived runner tokens.
    pub runner_secret_path: PathBuf,
    /// `DIR/admin.token` (0600): the API token clients present.
    pub admin_token_path: PathBuf,
    /// `DIR/state`: database and blobs.
    pub state_dir: PathBuf,
    /// `DIR/token-keys`: the build-token (OIDC) signing keys, distinct from provenance keys.
    pub token_keys_dir: PathBuf,
    /// Whether `[oidc]` is enabled in the written configuration (only when the issuer URL
    /// qualifies: https, or http on a loopback address).
    pub oidc_enabled: bool,
}

/// The key pair of one trust profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileKey {
    /// The profile, e.g. `release`.
    pub profile: &'static str,
    /// `DIR/keys/<profile>.key` (PKCS#8 PEM, 0600).
    pub private_key_path: PathBuf,
    /// `DIR/keys/<profile>.pub` (SPKI PEM): what verifiers of this profile's builds trust.
    pub public_key_path: PathBuf,
}

/// Why `init` failed. Nothing is overwritten in any case.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The directory already holds a configuration.
    #[error(
        "{} already exists; refusing to overwrite it (pick another --dir or move it away)",
        path.display()
    )]
    Exists {
        /// The existing configuration file.
        path: PathBuf,
    },
    /// A file or directory could not be created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The signing key pair could not be generated or written.
    #[error("cannot create the provenance signing key: {0}")]
    Key(#[from] KeyError),
    /// The build-token key directory could not be created.
    #[error("cannot create the build-token keys: {0}")]
    TokenKeys(#[from] crate::oidc::IssuerError),
    /// The system random number generator failed.
    #[error("cannot generate a token: the system random number generator failed: {0}")]
    Random(getrandom::Error),
    /// The registration secret could not be generated.
    #[error(transparent)]
    Secret(#[from] crate::auth::secret::RandomError),
}

/// Creates `dir/controller.toml`, `dir/keys/<profile>.{key,pub}` for each of [`PROFILES`]
/// (ECDSA P-256), `dir/runner.secret` (the secret of the runner registration `default`),
/// `dir/admin.token`, `dir/state/` and `dir/token-keys/` (build-token keys; `[oidc]` is enabled
/// when the issuer `http://<listen>` is a loopback address, else left for the operator to
/// enable once `issuer` is the public https URL), for a controller listening on `listen`. Refuses to touch
/// a directory that already has a `controller.toml`.
pub fn init(dir: &Path, listen: SocketAddr) -> Result<InitSummary, InitError> {
    let config = dir.join(CONFIG_FILE);
    if config.symlink_metadata().is_ok() {
        return Err(InitError::Exists { path: config });
    }
    let keys = dir.join("keys");
    let state_dir = dir.join("state");
    for d in [dir, &keys, &state_dir] {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|source| InitError::Io {
                path: d.to_owned(),
                source,
            })?;
    }
    let mut profile_keys = Vec::new();
    for profile in PROFILES {
        let (private_key_path, public_key_path) = write_keypair(&keys, profile)?;
        profile_keys.push(ProfileKey {
            profile,
            private_key_path,
            public_key_path,
        });
    }

    let runner_secret_path = dir.join("runner.secret");
    let admin_token = dir.join("admin.token");
    let runner_secret =
        crate::auth::secret::Secret::generate(crate::auth::secret::REGISTRATION_SECRET_PREFIX)?;
    let admin_secret = new_token()?;
    write_secret(&runner_secret_path, runner_secret.expose())?;
    write_secret(&admin_token, &admin_secret)?;

    let url = format!("http://{listen}");
    let token_keys_dir = dir.join("token-keys");
    let oidc = crate::oidc::OidcConfig::new(&token_keys_dir);
    let oidc_enabled = crate::oidc::OidcSettings::new(&url).is_ok();
    // The key directory does not depend on the issuer: create it either way.
    let key_issuer = if oidc_enabled {
        url.as_str()
    } else {
        crate::config::LOCAL_ISSUER
    };
    crate::oidc::OidcIssuer::init(&oidc, key_issuer, &crate::clock::SystemClock)?;
    let mut text = config_text(
        listen,
        &url,
        &TokenDigest::of(&admin_secret),
        &runner_secret.digest(),
    );
    text.push_str(&oidc_text(oidc_enabled));
    write_new(&config, 0o644, text.as_bytes())?;
    Ok(InitSummary {
        url,
        config_path: config,
        profile_keys,
        runner_secret_path,
        admin_token_path: admin_token,
        state_dir,
        token_keys_dir,
        oidc_enabled,
    })
}

/// 32 random bytes as 64 lowercase hex digits.
fn new_token() -> Result<String, InitError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(InitError::Random)?;
    Ok(hex::encode(bytes))
}

/// Writes a token file, mode 0600 from the moment it exists: the token and a newline.
fn write_secret(path: &Path, token: &str) -> Result<(), InitError> {
    write_new(path, 0o600, format!("{token}\n").as_bytes())
}

fn write_new(path: &Path, mode: u32, contents: &[u8]) -> Result<(), InitError> {
    let io = |source| InitError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)
}

/// The `[oidc]` section: active, or commented out when the issuer is not usable for OIDC.
fn oidc_text(enabled: bool) -> String {
    let prefix = if enabled { "" } else { "# " };
    let note = if enabled {
        ""
    } else {
        "# Enable once `issuer` is this controller's public https:// URL.\n"
    };
    format!(
        "\n\
         # Build tokens (OIDC): ES256 keys distinct from the provenance keys; see docs/identity.md.\n\
         {note}\
         {prefix}[oidc]\n\
         {prefix}token_keys = \"token-keys\"\n\
         {prefix}max_token_lifetime_secs = 300\n"
    )
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn config_text(listen: SocketAddr, url: &str, api: &TokenDigest, runner: &TokenDigest) -> String {
    format!(
        "# airlock controller configuration (written by `airlock controller init`).\n\
         # Relative paths resolve against this file's directory.\n\
         \n\
         # gRPC listen address.\n\
         listen = {listen}\n\
         # Database (airlock.db) and blob store (blobs/) live here.\n\
         state_dir = \"state\"\n\
         # Base URL of this controller; builder ids are <issuer>/builders/<profile>.\n\
         # Set it to the public URL before signing provenance anyone else relies on.\n\
         issuer = {issuer}\n\
         # \"server\", or \"local\" for a workstation.\n\
         mode = \"server\"\n\
         # Largest accepted upload in bytes (10 GiB).\n\
         max_upload_bytes = {max}\n\
         \n\
         [signing]\n\
         # Public keys still published after a rotation (retired keys), SPKI PEM.\n\
         # verification_keys = [\"keys/release-2025.pub\"]\n\
         \n\
         # One PKCS#8 PEM key (ECDSA P-256 or Ed25519, mode 0600) per trust profile, so each\n\
         # builder id has its own key; verifiers of a profile's builds trust keys/<profile>.pub.\n\
         [signing.keys]\n\
         untrusted-pr = \"keys/untrusted-pr.key\"\n\
         trusted = \"keys/trusted.key\"\n\
         release = \"keys/release.key\"\n\
         \n\
         [auth]\n\
         # sha256 (hex) of admin.token and of runner.secret (the secret of the runner\n\
         # registration `default`); the secrets themselves are not stored. More runner\n\
         # registrations: `airlock controller registration create NAME --config FILE`.\n\
         api_token_sha256 = \"{api}\"\n\
         runner_secret_sha256 = \"{runner}\"\n",
        listen = toml_str(&listen.to_string()),
        issuer = toml_str(url),
        max = crate::config::DEFAULT_MAX_UPLOAD_BYTES,
        api = api.hex(),
        runner = runner.hex(),
    )
}

/// Reads a token file written by `init` (or by an operator): the first line, trimmed.
pub fn read_token_file(path: &Path) -> Result<String, InitError> {
    let text = fs::read_to_string(path).map_err(|source| InitError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ControllerConfig;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_leaves_oidc_commented_out_for_a_non_loopback_http_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctl");
        let s = init(&root, "0.0.0.0:7070".parse().unwrap()).unwrap();
        assert!(!s.oidc_enabled);
        assert!(s.token_keys_dir.is_dir());
        let c = ControllerConfig::load(&s.config_path).unwrap();
        assert_eq!(c.oidc, None);
        let text = fs::read_to_string(&s.config_path).unwrap();
        assert!(text.contains("# [oidc]"), "{text}");
    }

    #[test]
    fn init_writes_a_loadable_config_and_refuses_twice() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctl");
        let s = init(&root, "127.0.0.1:7070".parse().unwrap()).unwrap();
        assert_eq!(s.url, "http://127.0.0.1:7070");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let names: Vec<_> = s.profile_keys.iter().map(|k| k.profile).collect();
        assert_eq!(names, PROFILES);
        for k in &s.profile_keys {
            assert_eq!(mode(&k.private_key_path), 0o600);
            assert_eq!(
                k.private_key_path,
                root.join(format!("keys/{}.key", k.profile))
            );
        }
        assert_eq!(mode(&s.runner_secret_path), 0o600);
        assert_eq!(s.runner_secret_path, root.join("runner.secret"));
        assert_eq!(mode(&s.admin_token_path), 0o600);

        let c = ControllerConfig::load(&s.config_path).unwrap();
        assert_eq!(c.signing.key, None, "every profile has its own key");
        let mut keyids = std::collections::BTreeSet::new();
        for k in &s.profile_keys {
            assert_eq!(
                c.signing.key_for(k.profile),
                Some(k.private_key_path.as_path())
            );
            let key = airlock_attest::load_signing_key(&k.private_key_path).unwrap();
            let public = airlock_attest::load_verifying_key(&k.public_key_path).unwrap();
            assert_eq!(key.verifying_key(), &public);
            keyids.insert(public.keyid().to_owned());
        }
        assert_eq!(keyids.len(), PROFILES.len(), "distinct keys per profile");
        assert_eq!(c.state_dir, s.state_dir);
        assert_eq!(c.issuer, "http://127.0.0.1:7070");
        assert!(s.oidc_enabled);
        assert_eq!(
            c.oidc.as_ref().map(|o| o.token_keys.clone()),
            Some(root.join("token-keys"))
        );
        assert_eq!(s.token_keys_dir, root.join("token-keys"));
        assert!(s.token_keys_dir.join("token-keys.json").is_file());
        let admin = read_token_file(&s.admin_token_path).unwrap();
        let runner = read_token_file(&s.runner_secret_path).unwrap();
        assert_eq!(admin.len(), 64);
        assert!(runner.starts_with("airlock-reg_"), "a greppable secret");
        let text = fs::read_to_string(&s.config_path).unwrap();
        assert!(text.contains("runner_secret_sha256 = "), "{text}");
        assert!(!text.contains(&runner), "only the digest is written");
        assert!(c.auth.api_token_sha256.unwrap().matches(&admin));
        assert!(c.auth.runner_secret_sha256.unwrap().matches(&runner));

        let before = fs::read(&s.config_path).unwrap();
        let err = init(&root, "127.0.0.1:9".parse().unwrap()).unwrap_err();
        assert!(matches!(err, InitError::Exists { .. }), "{err}");
        assert_eq!(fs::read(&s.config_path).unwrap(), before);
    }
}
