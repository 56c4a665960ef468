//! `airlock controller init`: a ready-to-run controller directory with fresh keys and tokens.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use airlock_attest::{KeyError, write_keypair};

use crate::auth::TokenDigest;

/// File name of the configuration inside the init directory.
pub const CONFIG_FILE: &str = "controller.toml";

/// What `init` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSummary {
    /// The controller URL clients and runners use: `http://ADDR`.
    pub url: String,
    /// `DIR/controller.toml`.
    pub config_path: PathBuf,
    /// `DIR/keys/provenance.key` (PKCS#8 PEM, 0600).
    pub signing_key_path: PathBuf,
    /// `DIR/keys/provenance.pub` (SPKI PEM): what verifiers trust.
    pub public_key_path: PathBuf,
    /// `DIR/runner.token` (0600): the secret runners present.
    pub runner_token_path: PathBuf,
    /// `DIR/admin.token` (0600): the API token clients present.
    pub admin_token_path: PathBuf,
    /// `DIR/state`: database and blobs.
    pub state_dir: PathBuf,
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
    /// The system random number generator failed.
    #[error("cannot generate a token: the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Creates `dir/controller.toml`, `dir/keys/provenance.{key,pub}`, `dir/runner.token`,
/// `dir/admin.token` and `dir/state/`, for a controller listening on `listen`. Refuses to touch
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
    let (signing_key, public_key) = write_keypair(&keys, "provenance")?;

    let runner_token = dir.join("runner.token");
    let admin_token = dir.join("admin.token");
    let runner_secret = new_token()?;
    let admin_secret = new_token()?;
    write_secret(&runner_token, &runner_secret)?;
    write_secret(&admin_token, &admin_secret)?;

    let url = format!("http://{listen}");
    let text = config_text(
        listen,
        &url,
        &TokenDigest::of(&admin_secret),
        &TokenDigest::of(&runner_secret),
    );
    write_new(&config, 0o644, text.as_bytes())?;
    Ok(InitSummary {
        url,
        config_path: config,
        signing_key_path: signing_key,
        public_key_path: public_key,
        runner_token_path: runner_token,
        admin_token_path: admin_token,
        state_dir,
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
         # PKCS#8 PEM ECDSA P-256 key, mode 0600; verifiers trust keys/provenance.pub.\n\
         key = \"keys/provenance.key\"\n\
         \n\
         [auth]\n\
         # sha256 (hex) of the tokens in admin.token and runner.token; the tokens are not stored.\n\
         api_token_sha256 = \"{api}\"\n\
         runner_token_sha256 = \"{runner}\"\n",
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
    fn init_writes_a_loadable_config_and_refuses_twice() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctl");
        let s = init(&root, "127.0.0.1:7070".parse().unwrap()).unwrap();
        assert_eq!(s.url, "http://127.0.0.1:7070");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&s.signing_key_path), 0o600);
        assert_eq!(mode(&s.runner_token_path), 0o600);
        assert_eq!(mode(&s.admin_token_path), 0o600);

        let c = ControllerConfig::load(&s.config_path).unwrap();
        assert_eq!(c.signing.key, s.signing_key_path);
        assert_eq!(c.state_dir, s.state_dir);
        assert_eq!(c.issuer, "http://127.0.0.1:7070");
        let admin = read_token_file(&s.admin_token_path).unwrap();
        let runner = read_token_file(&s.runner_token_path).unwrap();
        assert_eq!(admin.len(), 64);
        assert_ne!(admin, runner);
        assert!(c.auth.api_token_sha256.matches(&admin));
        assert!(c.auth.runner_token_sha256.matches(&runner));
        airlock_attest::load_signing_key(&c.signing.key).unwrap();

        let before = fs::read(&s.config_path).unwrap();
        let err = init(&root, "127.0.0.1:9".parse().unwrap()).unwrap_err();
        assert!(matches!(err, InitError::Exists { .. }), "{err}");
        assert_eq!(fs::read(&s.config_path).unwrap(), before);
    }
}
