//! `[signing]` of `controller.toml`: which key signs each trust profile's provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[signing]`: the provenance signing keys, one per trust profile.
///
/// SLSA decides trust by the (key, `builder.id`) pair, so each profile (`untrusted-pr`,
/// `trusted`, `release`) should have its own key: a key that signs untrusted pull requests
/// then cannot vouch for a release. Keys are PKCS#8 PEM (ECDSA P-256 or Ed25519), mode 0600
/// or stricter. Relative paths resolve against the config file.
///
/// ```toml
/// [signing]
/// key = "keys/provenance.key"            # optional: profiles without their own key
/// verification_keys = ["keys/old.pub"]   # optional: retired keys still published
/// [signing.keys]
/// untrusted-pr = "keys/untrusted-pr.key"
/// release = "keys/release.key"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The key for profiles that have no entry in `keys` (the single-key form). A job whose
    /// profile has neither fails at signing time as an infrastructure error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Profile name -> that profile's private key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, PathBuf>,
    /// SPKI PEM public keys published besides those of the current signing keys: retired
    /// keys (so provenance they signed stays verifiable) and keys about to be rotated in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_keys: Vec<PathBuf>,
}

impl SigningConfig {
    /// One key for every profile (the embedded controller of `airlock run`).
    pub fn single(key: impl Into<PathBuf>) -> Self {
        Self {
            key: Some(key.into()),
            keys: BTreeMap::new(),
            verification_keys: Vec::new(),
        }
    }

    /// The private key file that signs for `profile`, if any.
    pub fn key_for(&self, profile: &str) -> Option<&Path> {
        self.keys
            .get(profile)
            .or(self.key.as_ref())
            .map(PathBuf::as_path)
    }

    /// Checks what serde cannot: some key is named, and profile names are plausible.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.key.is_none() && self.keys.is_empty() {
            return Err((
                "signing",
                "names no key; set `key = \"keys/provenance.key\"` or one key per profile \
                 under [signing.keys]"
                    .into(),
            ));
        }
        for profile in self.keys.keys() {
            if !is_profile_name(profile) {
                return Err((
                    "signing.keys",
                    format!("`{profile}` is not a profile name (lowercase letters, digits, `-`)"),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.key {
            resolve(p);
        }
        self.keys.values_mut().for_each(resolve);
        self.verification_keys.iter_mut().for_each(resolve);
    }
}

/// Whether `name` is a plausible profile name: lowercase letters, digits and `-`.
pub fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
