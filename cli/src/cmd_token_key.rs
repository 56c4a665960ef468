//! `airlock controller rotate-token-key`: adds a new build-token signing key to the
//! controller's token key directory (published now, signing after the rotation lead time) and
//! removes keys whose publication window has ended. Safe while the controller runs: it
//! re-reads the directory at its next JWKS request or mint.

use std::path::Path;

use airlock_controller::oidc::{IssuerError, rotate_token_key};
use airlock_controller::{ControllerConfig, SystemClock};

use crate::exit::{Exit, Failure, OrExit, infra, usage};

/// Runs `controller rotate-token-key --config FILE`.
pub fn rotate(config_path: &Path) -> Result<Exit, Failure> {
    let config = ControllerConfig::load(config_path).usage()?;
    let Some(oidc) = &config.oidc else {
        return Err(usage(format!(
            "{}: has no [oidc] section, so this controller has no token keys to rotate; add \
             [oidc] with token_keys = \"token-keys\" (see docs/identity.md)",
            config_path.display()
        )));
    };
    let summary = match rotate_token_key(oidc, config.issuer(), &SystemClock) {
        Ok(summary) => summary,
        Err(e @ IssuerError::Settings(_)) => {
            return Err(usage(format!("{}: {e}", config_path.display())));
        }
        Err(e) => return Err(infra(e)),
    };
    print!("{summary}");
    println!(
        "a running controller publishes the new key at its next JWKS request; no restart needed"
    );
    Ok(Exit::Ok)
}
