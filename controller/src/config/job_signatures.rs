//! `[job_signatures]` of `controller.toml`: keys that sign job specs (`airlock submit --sign`)
//! and the profiles whose API submissions must carry such a signature.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[job_signatures]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSignaturesConfig {
    /// SPKI PEM public keys whose signatures are accepted; relative to the config file.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Profiles whose API submissions must be signed by one of `keys` (e.g. `["release"]`).
    #[serde(default)]
    pub required_for: Vec<String>,
}

impl JobSignaturesConfig {
    /// Checks what serde cannot: `(field, message)` on error.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.required_for.is_empty() && self.keys.is_empty() {
            return Err((
                "job_signatures.keys",
                format!(
                    "required_for names {:?} but no key is configured: no submission could \
                     ever be admitted; add the signers' public keys",
                    self.required_for
                ),
            ));
        }
        for profile in &self.required_for {
            if !airlock_job::PROFILES.contains(&profile.as_str()) {
                return Err((
                    "job_signatures.required_for",
                    format!(
                        "unknown profile `{profile}`; use one of: {}",
                        airlock_job::PROFILES.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
