//! `airlock controller rotate-token-key`: rotating the token key directory from outside the
//! controller, safely while it runs.
//!
//! One rotation, under an exclusive lock on the directory (so two rotations never interleave):
//! prune keys whose publication window has ended, add a new key published now that signs only
//! after the rotation lead time, and retire the current key at that instant. Every write is a
//! new file or an atomic rename of `token-keys.json`, written after the key files it names, so
//! a controller re-reading the directory (see [`super::reload`]) sees the old ring or the new
//! one, never half of one.

use std::fmt;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::issuer::{IssuerError, OidcConfig};
use super::key_dir::{KeyDir, KeyDirError};
use crate::clock::Clock;

/// Name of the lock file inside the key directory.
const LOCK_FILE: &str = ".rotate.lock";

/// A key that a rotation retired: when it stops signing and stops being published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiringKey {
    /// Its kid.
    pub kid: String,
    /// From this instant (unix seconds) it signs nothing.
    pub stops_signing: u64,
    /// Whether it signed at all: a key rotated out again before its lead time passed never
    /// signs.
    pub ever_signs: bool,
    /// From this instant (unix seconds) it is no longer in the JWKS.
    pub unpublished_at: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationSummary {
    /// The new key's kid.
    pub new_kid: String,
    /// When the new key entered the JWKS (unix seconds): now.
    pub published_at: u64,
    /// When the new key starts signing (unix seconds): after the rotation lead time.
    pub signs_from: u64,
    /// Keys still published that no longer sign or will stop when the new key starts.
    pub retiring: Vec<RetiringKey>,
    /// Keys removed because their publication window had ended.
    pub pruned: Vec<String>,
}

/// Rotates the token key directory of `config` at `clock`'s time: prunes keys past their
/// publication window, then adds a new ES256 key (published now, signing after the lead time)
/// and retires the current one when it starts. `issuer` is the controller's issuer URL.
pub fn rotate_token_key(
    config: &OidcConfig,
    issuer: &str,
    clock: &dyn Clock,
) -> Result<RotationSummary, IssuerError> {
    let settings = config.settings(issuer)?;
    let key_dir = KeyDir::new(
        &config.token_keys,
        settings.rotation_lead_time(),
        settings.max_token_lifetime(),
    );
    let _lock = lock(&key_dir)?;
    let mut ring = key_dir.load()?;
    let now = clock.now();
    let pruned = key_dir.prune(&mut ring, now)?;
    let new_kid = key_dir.rotate(&mut ring, now)?;
    let max = settings.max_token_lifetime().as_secs();
    let now_s = unix(now);
    let mut summary = RotationSummary {
        new_kid: new_kid.clone(),
        published_at: now_s,
        signs_from: now_s,
        retiring: Vec::new(),
        pruned,
    };
    for key in ring.keys() {
        let schedule = key.schedule();
        if key.kid() == new_kid {
            summary.published_at = schedule.published_at;
            summary.signs_from = schedule.signs_from;
        } else if let Some(retired) = schedule.retired_at {
            summary.retiring.push(RetiringKey {
                kid: key.kid().to_owned(),
                stops_signing: retired,
                ever_signs: schedule.signs_from < retired,
                unpublished_at: retired.saturating_add(max),
            });
        }
    }
    Ok(summary)
}

/// Takes the directory's rotation lock (released when the file is dropped).
fn lock(key_dir: &KeyDir) -> Result<fs::File, KeyDirError> {
    let path = key_dir.path().join(LOCK_FILE);
    let io = |source| KeyDirError::Io {
        path: path.clone(),
        source,
    };
    let file = fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

impl fmt::Display for RotationSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "new token key:  {}", self.new_kid)?;
        writeln!(
            f,
            "published:      {} (in the JWKS now)",
            rfc3339(self.published_at)
        )?;
        writeln!(f, "signs from:     {}", rfc3339(self.signs_from))?;
        for key in &self.retiring {
            let signs = if key.ever_signs {
                format!("signs until {}", rfc3339(key.stops_signing))
            } else {
                "never signs (rotated out before its lead time passed)".to_owned()
            };
            writeln!(
                f,
                "old key:        {} {signs}, published until {}",
                key.kid,
                rfc3339(key.unpublished_at)
            )?;
        }
        for kid in &self.pruned {
            writeln!(
                f,
                "removed:        {kid} (its publication window had ended)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::oidc::OidcIssuer;

    const ISSUER: &str = "https://ci.example";
    const T0_MS: u64 = 1_800_000_000_000;

    #[test]
    fn rotation_publishes_now_signs_after_the_lead_time_and_prunes_expired_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let config = OidcConfig::new(tmp.path().join("token-keys"));
        let clock = ManualClock::at_unix_ms(T0_MS);
        let first = OidcIssuer::init(&config, ISSUER, &clock).unwrap();
        let t0 = T0_MS / 1000;

        clock.advance(Duration::from_secs(60));
        let r = rotate_token_key(&config, ISSUER, &clock).unwrap();
        assert_eq!(r.published_at, t0 + 60);
        assert_eq!(r.signs_from, t0 + 60 + 3600, "after the default lead time");
        assert_eq!(
            r.retiring,
            vec![RetiringKey {
                kid: first.clone(),
                stops_signing: t0 + 60 + 3600,
                ever_signs: true,
                unpublished_at: t0 + 60 + 3600 + 300,
            }]
        );
        assert!(r.pruned.is_empty());
        let text = r.to_string();
        assert!(text.contains(&r.new_kid) && text.contains(&first), "{text}");

        // Once the first key's tokens have all expired, the next rotation removes it.
        clock.advance(Duration::from_secs(3600 + 300));
        let second = r.new_kid;
        let r = rotate_token_key(&config, ISSUER, &clock).unwrap();
        assert_eq!(r.pruned, vec![first.clone()]);
        assert!(!config.token_keys.join(format!("{first}.key")).exists());
        assert_eq!(r.retiring.len(), 1);
        assert_eq!(r.retiring[0].kid, second);

        // Rotating again within the lead time supersedes the key not yet signing.
        let third = r.new_kid;
        let r = rotate_token_key(&config, ISSUER, &clock).unwrap();
        let superseded = r.retiring.iter().find(|k| k.kid == third).unwrap();
        assert!(!superseded.ever_signs);
        assert!(r.to_string().contains("never signs"), "{r}");
    }

    #[test]
    fn rotation_without_a_key_directory_fails_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let config = OidcConfig::new(tmp.path().join("missing"));
        let e = rotate_token_key(&config, ISSUER, &ManualClock::at_unix_ms(T0_MS)).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
