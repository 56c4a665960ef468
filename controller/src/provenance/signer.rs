//! Signs provenance statements with the controller's keys: the "sign" stage after the pure
//! "format" stage of [`crate::provenance::statement`] and before the store.
//!
//! Each trust profile signs with its own key (see [`crate::config::SigningConfig`]), so a
//! verifier that trusts the (key, `builder.id`) pair of `release` is not fooled by provenance
//! from an `untrusted-pr` build. Key files are loaded at startup, so a bad key stops the
//! controller before it accepts work, and read again for every signature: a key file that was
//! removed, corrupted, made group/world-accessible or swapped for another key since startup
//! fails that job (INFRA_FAILED) instead of being signed with a copy kept in memory. Nothing
//! is ever stored unsigned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_attest::{
    BundleError, DsseError, KeyError, SignError, SigningKey, Statement, VerifyingKey,
    load_signing_key, load_verifying_key, sign_statement,
};

use crate::config::SigningConfig;
use airlock_attest::sbom::{SbomDocuments, SbomError};

use crate::store::{StoredProvenance, StoredSbom, StoredTrace};

/// Why a statement could not be signed or encoded, or the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// A signing key could not be loaded (missing, unreadable, group/world-accessible, not
    /// PKCS#8 P-256 or Ed25519).
    #[error("cannot load the provenance signing key: {0}")]
    Key(#[from] KeyError),
    /// A published verification key could not be loaded.
    #[error("cannot load verification key {}: {source}", path.display())]
    VerificationKey {
        /// The public key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// The job's profile has no key and there is no default key.
    #[error(
        "no signing key for profile `{profile}`: add it under [signing.keys] in \
         controller.toml (or set [signing] key)"
    )]
    NoKeyForProfile {
        /// The job's profile.
        profile: String,
    },
    /// The key file now holds a different key than at startup.
    #[error(
        "the signing key file {} changed since the controller started (keyid {expected} then, \
         {found} now); restart the controller to rotate keys so the published verification \
         keys stay in step",
        path.display()
    )]
    KeyChanged {
        /// The key file.
        path: PathBuf,
        /// Keyid at startup.
        expected: String,
        /// Keyid now.
        found: String,
    },
    /// The statement was refused or the signature failed.
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
    /// The envelope could not be encoded.
    #[error("cannot encode the DSSE envelope: {0}")]
    Envelope(#[from] DsseError),
    /// The trace statement could not be signed.
    #[error("cannot sign the runtime trace: {0}")]
    Trace(#[from] airlock_attest::trace::TraceError),
    /// The SBOM statement could not be signed.
    #[error("cannot sign the SBOM: {0}")]
    Sbom(#[from] SbomError),
    /// The Sigstore bundle could not be built.
    #[error("cannot build the Sigstore bundle: {0}")]
    Bundle(#[from] BundleError),
}

/// Where one signing key comes from.
#[derive(Debug, Clone)]
enum KeySource {
    /// A key file, re-read for each signature; `keyid` is what it held at startup.
    File { path: PathBuf, keyid: String },
    /// A key held in memory (tests, golden files); boxed, as keys are large.
    Memory(Box<SigningKey>),
}

impl KeySource {
    fn load(path: &Path) -> Result<(Self, VerifyingKey), SignerError> {
        let key = load_signing_key(path)?;
        let source = Self::File {
            path: path.to_owned(),
            keyid: key.keyid().to_owned(),
        };
        Ok((source, key.verifying_key().clone()))
    }

    /// The key to sign with now.
    fn current(&self) -> Result<SigningKey, SignerError> {
        match self {
            Self::Memory(key) => Ok(SigningKey::clone(key)),
            Self::File { path, keyid } => {
                let key = load_signing_key(path)?;
                if key.keyid() != keyid {
                    return Err(SignerError::KeyChanged {
                        path: path.clone(),
                        expected: keyid.clone(),
                        found: key.keyid().to_owned(),
                    });
                }
                Ok(key)
            }
        }
    }
}

/// The public half of a signing key, as published for verifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// The profile it signs for; `None` for the default key or a retired/extra key.
    pub profile: Option<String>,
    /// Whether it signs now (false: a retired or upcoming key from `verification_keys`).
    pub active: bool,
    /// The key.
    pub key: VerifyingKey,
}

/// The controller's provenance signer.
#[derive(Debug, Clone)]
pub struct Signer {
    default: Option<KeySource>,
    profiles: BTreeMap<String, KeySource>,
    published: Vec<PublishedKey>,
}

impl Signer {
    /// Loads every key `config` names (refusing any that group or others can access) and
    /// the published verification keys.
    pub fn load(config: &SigningConfig) -> Result<Self, SignerError> {
        let mut published = Vec::new();
        let default = match &config.key {
            Some(path) => {
                let (source, key) = KeySource::load(path)?;
                published.push(PublishedKey {
                    profile: None,
                    active: true,
                    key,
                });
                Some(source)
            }
            None => None,
        };
        let mut profiles = BTreeMap::new();
        for (profile, path) in &config.keys {
            let (source, key) = KeySource::load(path)?;
            published.push(PublishedKey {
                profile: Some(profile.clone()),
                active: true,
                key,
            });
            profiles.insert(profile.clone(), source);
        }
        for path in &config.verification_keys {
            let key = load_verifying_key(path).map_err(|source| SignerError::VerificationKey {
                path: path.clone(),
                source,
            })?;
            published.push(PublishedKey {
                profile: None,
                active: false,
                key,
            });
        }
        Ok(Self {
            default,
            profiles,
            published,
        })
    }

    /// A signer that signs every profile with one in-memory key.
    pub fn new(key: SigningKey) -> Result<Self, SignerError> {
        let published = vec![PublishedKey {
            profile: None,
            active: true,
            key: key.verifying_key().clone(),
        }];
        Ok(Self {
            default: Some(KeySource::Memory(Box::new(key))),
            profiles: BTreeMap::new(),
            published,
        })
    }

    /// Every public key verifiers may need: the current signing keys, then the retired and
    /// upcoming ones of `verification_keys` (for rotation).
    pub fn published_keys(&self) -> &[PublishedKey] {
        &self.published
    }

    /// The keyids of the current signing keys, for logs (`profile=keyid`, `*` = default).
    pub fn describe(&self) -> String {
        self.published
            .iter()
            .filter(|p| p.active)
            .map(|p| format!("{}={}", p.profile.as_deref().unwrap_or("*"), p.key.keyid()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The key `profile` signs with now.
    fn key_for(&self, profile: &str) -> Result<SigningKey, SignerError> {
        let source = self
            .profiles
            .get(profile)
            .or(self.default.as_ref())
            .ok_or_else(|| SignerError::NoKeyForProfile {
                profile: profile.to_owned(),
            })?;
        source.current()
    }

    /// Signs the SBOM statement of a job of `profile` with the key its provenance is signed
    /// with, and keeps both documents beside it.
    pub fn sign_sbom(
        &self,
        profile: &str,
        documents: &SbomDocuments,
    ) -> Result<StoredSbom, SignerError> {
        let key = self.key_for(profile)?;
        let (envelope, _body) = documents.statement.sign(&key)?;
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Ok(StoredSbom {
            spdx_json: text(&documents.spdx_json),
            cyclonedx_json: text(&documents.cyclonedx_json),
            envelope_json: envelope.to_json_line()?,
            keyid: key.keyid().to_owned(),
            public_key_pem: key.verifying_key().to_spki_pem()?,
        })
    }

    /// Signs the runtime trace statement of a job of `profile` with its provenance key.
    pub fn sign_trace(
        &self,
        profile: &str,
        statement: &airlock_attest::trace::TraceStatement,
        hermeticity: String,
    ) -> Result<StoredTrace, SignerError> {
        let key = self.key_for(profile)?;
        let (envelope, _body) = statement.sign(&key)?;
        Ok(StoredTrace {
            envelope_json: envelope.to_json_line()?,
            hermeticity,
        })
    }

    /// Signs `statement` (the provenance of a job of `profile`) into a DSSE envelope line and a
    /// Sigstore bundle, with that profile's key.
    pub fn sign(
        &self,
        profile: &str,
        statement: &Statement,
    ) -> Result<StoredProvenance, SignerError> {
        let key = self.key_for(profile)?;
        let (envelope, _body) = sign_statement(statement, &key)?;
        let envelope_json = envelope.to_json_line()?;
        let bundle_json = airlock_attest::Bundle::from_envelope(&envelope)?.to_json()?;
        Ok(StoredProvenance {
            envelope_json,
            bundle_json,
            keyid: key.keyid().to_owned(),
            public_key_pem: key.verifying_key().to_spki_pem()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_attest::{KeyAlgorithm, write_keypair, write_keypair_with};
    use std::os::unix::fs::PermissionsExt;

    fn statement() -> Statement {
        let text = include_str!("../../tests/golden/provenance-v1.statement.json");
        Statement::from_json(text.trim_end().as_bytes()).unwrap()
    }

    #[test]
    fn each_profile_signs_with_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (release, release_pub) =
            write_keypair_with(d, "release", KeyAlgorithm::Ed25519).unwrap();
        let (pr, pr_pub) = write_keypair(d, "untrusted-pr").unwrap();
        let (old, old_pub) = write_keypair(d, "old").unwrap();
        std::fs::remove_file(old).unwrap();
        let config = SigningConfig {
            key: None,
            keys: BTreeMap::from([
                ("release".to_owned(), release.clone()),
                ("untrusted-pr".to_owned(), pr),
            ]),
            verification_keys: vec![old_pub.clone()],
        };
        let signer = Signer::load(&config).unwrap();
        let release_key = load_verifying_key(&release_pub).unwrap();
        let pr_key = load_verifying_key(&pr_pub).unwrap();

        let signed = signer.sign("release", &statement()).unwrap();
        assert_eq!(signed.keyid, release_key.keyid());
        assert_eq!(signed.public_key_pem, release_key.to_spki_pem().unwrap());
        let signed = signer.sign("untrusted-pr", &statement()).unwrap();
        assert_eq!(signed.keyid, pr_key.keyid());
        let err = signer.sign("trusted", &statement()).unwrap_err();
        assert!(matches!(err, SignerError::NoKeyForProfile { .. }), "{err}");

        let published: Vec<_> = signer
            .published_keys()
            .iter()
            .map(|p| (p.profile.as_deref(), p.active, p.key.keyid().to_owned()))
            .collect();
        let old_key = load_verifying_key(&old_pub).unwrap();
        assert_eq!(
            published,
            [
                (Some("release"), true, release_key.keyid().to_owned()),
                (Some("untrusted-pr"), true, pr_key.keyid().to_owned()),
                (None, false, old_key.keyid().to_owned()),
            ]
        );

        // A key file that became world-readable, was replaced, or was removed since startup
        // fails the signature rather than signing with a stale in-memory copy.
        std::fs::set_permissions(&release, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = signer.sign("release", &statement()).unwrap_err();
        assert!(
            matches!(err, SignerError::Key(KeyError::InsecurePermissions { .. })),
            "{err}"
        );
        std::fs::remove_file(&release).unwrap();
        std::fs::remove_file(&release_pub).unwrap();
        write_keypair_with(d, "release", KeyAlgorithm::Ed25519).unwrap();
        let err = signer.sign("release", &statement()).unwrap_err();
        assert!(matches!(err, SignerError::KeyChanged { .. }), "{err}");
        std::fs::remove_file(&release).unwrap();
        let err = signer.sign("release", &statement()).unwrap_err();
        assert!(
            matches!(err, SignerError::Key(KeyError::Io { .. })),
            "{err}"
        );
        std::fs::write(&release, "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
        std::fs::set_permissions(&release, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = signer.sign("release", &statement()).unwrap_err();
        assert!(matches!(err, SignerError::Key(_)), "{err}");
    }

    #[test]
    fn the_default_key_covers_profiles_without_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = write_keypair(dir.path(), "provenance").unwrap();
        let signer = Signer::load(&SigningConfig::single(key)).unwrap();
        let expected = load_verifying_key(&public).unwrap();
        for profile in ["untrusted-pr", "trusted", "release"] {
            assert_eq!(
                signer.sign(profile, &statement()).unwrap().keyid,
                expected.keyid()
            );
        }
        assert_eq!(signer.describe(), format!("*={}", expected.keyid()));
    }

    #[test]
    fn a_world_readable_key_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = write_keypair(dir.path(), "release").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
        let config = SigningConfig {
            key: None,
            keys: BTreeMap::from([("release".to_owned(), key)]),
            verification_keys: vec![],
        };
        let err = Signer::load(&config).unwrap_err();
        assert!(
            matches!(err, SignerError::Key(KeyError::InsecurePermissions { .. })),
            "{err}"
        );
    }
}
