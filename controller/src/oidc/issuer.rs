//! The issuer as the controller runs it: `[oidc]` in `controller.toml`, the token key
//! directory loaded into a shared ring, and the minter, verifier and HTTP routes built on it.
//!
//! Wiring: `ControllerConfig::oidc` (paths resolved against the config file like the others);
//! `Controller::open_with` calls [`OidcIssuer::open`] with `config.issuer()` and the injected
//! clock and ids (a local-mode controller first creates a missing key directory), checks
//! [`OidcIssuer::ensure_distinct_from`] against every provenance keyid, serves
//! [`OidcIssuer::http`] and hands [`OidcIssuer::minter`] to the scheduler for
//! `RunnerService.MintBuildToken`; `airlock controller init` calls [`OidcIssuer::init`] on
//! `<dir>/token-keys`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::http::OidcHttp;
use super::key_dir::{KeyDir, KeyDirError};
use super::keys::{KeyRing, KeyRingError};
use super::mint::Minter;
use super::reload::RingReloader;
use super::settings::{
    DEFAULT_BUILD_TOKEN_PROFILES, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_ROTATION_LEAD_TIME,
    OidcSettings, SettingsError,
};
use super::verify::Verifier;
use crate::clock::{Clock, IdGen};

/// `[oidc]` in `controller.toml`.
///
/// ```toml
/// [oidc]
/// token_keys = "token-keys"          # directory; relative to the config file
/// max_token_lifetime_secs = 300      # optional; the longest lifetime a step may ask for
/// rotation_lead_time_secs = 3600     # optional; publish-to-sign delay of a new key
/// build_token_profiles = ["trusted", "release"]  # optional; never "untrusted-pr"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The token key directory (see [`KeyDir`]).
    pub token_keys: PathBuf,
    /// The longest token lifetime, in seconds (1-3600). Default 300.
    #[serde(default = "default_max_lifetime")]
    pub max_token_lifetime_secs: u64,
    /// Seconds between publishing a new key and signing with it (above 300). Default 3600.
    #[serde(default = "default_lead_time")]
    pub rotation_lead_time_secs: u64,
    /// Profiles whose jobs may get build tokens (default `["trusted", "release"]`; never
    /// `untrusted-pr`).
    #[serde(
        default = "default_build_token_profiles",
        skip_serializing_if = "is_default_build_token_profiles"
    )]
    pub build_token_profiles: Vec<String>,
}

fn default_build_token_profiles() -> Vec<String> {
    DEFAULT_BUILD_TOKEN_PROFILES
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

fn is_default_build_token_profiles(profiles: &[String]) -> bool {
    profiles == default_build_token_profiles().as_slice()
}

fn default_max_lifetime() -> u64 {
    DEFAULT_MAX_TOKEN_LIFETIME.as_secs()
}

fn default_lead_time() -> u64 {
    DEFAULT_ROTATION_LEAD_TIME.as_secs()
}

impl OidcConfig {
    /// `[oidc]` with default limits and keys in `token_keys`.
    pub fn new(token_keys: impl Into<PathBuf>) -> Self {
        Self {
            token_keys: token_keys.into(),
            max_token_lifetime_secs: default_max_lifetime(),
            rotation_lead_time_secs: default_lead_time(),
            build_token_profiles: default_build_token_profiles(),
        }
    }

    /// Checks what serde cannot and the controller's config validation reports with the
    /// field: `build_token_profiles` never names `untrusted-pr`.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        super::settings::check_build_token_profiles(&self.build_token_profiles)
            .map_err(|e| ("oidc.build_token_profiles", e.to_string()))
    }

    /// The validated settings for `issuer`.
    pub fn settings(&self, issuer: &str) -> Result<OidcSettings, SettingsError> {
        OidcSettings::with_limits(
            issuer,
            Duration::from_secs(self.max_token_lifetime_secs),
            Duration::from_secs(self.rotation_lead_time_secs),
        )?
        .with_build_token_profiles(&self.build_token_profiles)
    }

    fn key_dir(&self, settings: &OidcSettings) -> KeyDir {
        KeyDir::new(
            &self.token_keys,
            settings.rotation_lead_time(),
            settings.max_token_lifetime(),
        )
    }
}

/// Why the issuer could not start or rotate.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// `[oidc]` or the issuer URL is invalid.
    #[error("[oidc]: {0}")]
    Settings(#[from] SettingsError),
    /// The token key directory could not be read or written.
    #[error("[oidc] token_keys: {0}")]
    Keys(#[from] KeyDirError),
    /// The ring breaks a rule (e.g. a token key is also a provenance key).
    #[error("[oidc] token_keys: {0}")]
    Ring(#[from] KeyRingError),
    /// No token key may sign now (all retired, or the next one is not due yet).
    #[error(
        "[oidc] token_keys {}: no key may sign now; rotate in a new key \
         (tokens cannot be minted until its lead time has passed)",
        dir.display()
    )]
    NoSigningKey {
        /// The key directory.
        dir: PathBuf,
    },
}

/// The running issuer: settings, the shared key ring and its directory.
#[derive(Clone)]
pub struct OidcIssuer {
    settings: OidcSettings,
    ring: Arc<RwLock<KeyRing>>,
    key_dir: KeyDir,
    reload: Arc<RingReloader>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
}

impl OidcIssuer {
    /// Creates the token key directory with its first key (for `airlock controller init`).
    pub fn init(
        config: &OidcConfig,
        issuer: &str,
        clock: &dyn Clock,
    ) -> Result<String, IssuerError> {
        let settings = config.settings(issuer)?;
        let ring = config.key_dir(&settings).create(clock.now())?;
        let kid = ring
            .signing_key(clock.now())
            .map(|k| k.kid().to_owned())
            .ok_or_else(|| IssuerError::NoSigningKey {
                dir: config.token_keys.clone(),
            })?;
        Ok(kid)
    }

    /// Loads the token keys and refuses to start if none may sign now (fail closed).
    pub fn open(
        config: &OidcConfig,
        issuer: &str,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
    ) -> Result<Self, IssuerError> {
        let settings = config.settings(issuer)?;
        let key_dir = config.key_dir(&settings);
        let ring = key_dir.load()?;
        if ring.signing_key(clock.now()).is_none() {
            return Err(IssuerError::NoSigningKey {
                dir: config.token_keys.clone(),
            });
        }
        let ring = Arc::new(RwLock::new(ring));
        // Another process (`airlock controller rotate-token-key`) may rotate the directory
        // while this controller runs; the routes, minter and verifier pick that up.
        let reload = Arc::new(RingReloader::new(key_dir.clone(), ring.clone()));
        Ok(Self {
            settings,
            ring,
            key_dir,
            reload,
            clock,
            ids,
        })
    }

    /// Fails if a token key is one of the provenance keys.
    pub fn ensure_distinct_from<'a>(
        &self,
        provenance_keyids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), IssuerError> {
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        for keyid in provenance_keyids {
            ring.ensure_distinct_from(keyid)?;
        }
        Ok(())
    }

    /// The issuer settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The key directory.
    pub fn key_dir(&self) -> &Path {
        self.key_dir.path()
    }

    /// The discovery and JWKS routes.
    pub fn http(&self) -> OidcHttp {
        OidcHttp::new(
            self.settings.issuer(),
            self.ring.clone(),
            self.clock.clone(),
        )
        .with_reload(self.reload.clone())
    }

    /// A minter signing with the ring's current key.
    pub fn minter(&self) -> Minter {
        Minter::new(
            self.settings.clone(),
            self.ring.clone(),
            self.clock.clone(),
            self.ids.clone(),
        )
        .with_reload(self.reload.clone())
    }

    /// A verifier for tokens of this issuer.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.settings.clone(), self.ring.clone(), self.clock.clone())
            .with_reload(self.reload.clone())
    }

    /// Rotates in a new key (published now, signing after the lead time), prunes keys whose
    /// tokens have all expired, and saves the directory; the routes, minter and verifier see
    /// the change at once. Returns the new kid.
    pub fn rotate(&self) -> Result<String, IssuerError> {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        self.key_dir.prune(&mut ring, now)?;
        Ok(self.key_dir.rotate(&mut ring, now)?)
    }
}

impl fmt::Debug for OidcIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcIssuer")
            .field("issuer", &self.settings.issuer())
            .field("key_dir", &self.key_dir.path())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SequentialIds};
    use crate::oidc::discovery::JWKS_PATH;
    use crate::oidc::jwks::JwkSet;

    const ISSUER: &str = "https://ci.example";

    #[test]
    fn config_parses_with_defaults_and_refuses_unknown_fields() {
        let c: OidcConfig = toml::from_str("token_keys = \"token-keys\"").unwrap();
        assert_eq!(c, OidcConfig::new("token-keys"));
        assert_eq!(
            c.settings(ISSUER).unwrap().max_token_lifetime().as_secs(),
            300
        );
        assert!(toml::from_str::<OidcConfig>("token_keys = \"k\"\nlifetime = 1").is_err());
        let long = OidcConfig {
            max_token_lifetime_secs: 7200,
            ..OidcConfig::new("k")
        };
        assert!(matches!(
            long.settings(ISSUER),
            Err(SettingsError::MaxLifetime(_))
        ));
    }

    #[test]
    fn init_open_rotate_and_serve() {
        let tmp = tempfile::tempdir().unwrap();
        let config = OidcConfig::new(tmp.path().join("token-keys"));
        let clock = Arc::new(ManualClock::at_unix_ms(1_800_000_000_000));
        let first = OidcIssuer::init(&config, ISSUER, clock.as_ref()).unwrap();
        assert!(matches!(
            OidcIssuer::init(&config, ISSUER, clock.as_ref()),
            Err(IssuerError::Keys(KeyDirError::Exists { .. }))
        ));

        let issuer = OidcIssuer::open(
            &config,
            ISSUER,
            clock.clone(),
            Arc::new(SequentialIds::default()),
        )
        .unwrap();
        issuer
            .ensure_distinct_from(["0".repeat(64).as_str()])
            .unwrap();
        assert!(matches!(
            issuer.ensure_distinct_from([first.as_str()]),
            Err(IssuerError::Ring(KeyRingError::SharedWithProvenance { .. }))
        ));
        let second = issuer.rotate().unwrap();
        let jwks: JwkSet =
            serde_json::from_slice(&issuer.http().handle(JWKS_PATH).unwrap().body).unwrap();
        let kids: Vec<_> = jwks.keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, vec![first.clone(), second.clone()]);

        // A restart sees the rotation.
        let reopened = OidcIssuer::open(
            &config,
            ISSUER,
            clock.clone(),
            Arc::new(SequentialIds::default()),
        )
        .unwrap();
        assert_eq!(reopened.ring.read().unwrap().keys().len(), 2);
        assert!(format!("{reopened:?}").contains("token-keys"));
    }

    #[test]
    fn open_fails_closed_without_a_key_directory_or_a_signing_key() {
        let tmp = tempfile::tempdir().unwrap();
        let config = OidcConfig::new(tmp.path().join("missing"));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix_ms(1_800_000_000_000));
        assert!(matches!(
            OidcIssuer::open(
                &config,
                ISSUER,
                clock.clone(),
                Arc::new(SequentialIds::default())
            ),
            Err(IssuerError::Keys(KeyDirError::Io { .. }))
        ));

        // Keys created in the future (a clock that jumped back) sign nothing now.
        let config = OidcConfig::new(tmp.path().join("token-keys"));
        let later = ManualClock::at_unix_ms(1_900_000_000_000);
        OidcIssuer::init(&config, ISSUER, &later).unwrap();
        assert!(matches!(
            OidcIssuer::open(&config, ISSUER, clock, Arc::new(SequentialIds::default())),
            Err(IssuerError::NoSigningKey { .. })
        ));
    }
}
