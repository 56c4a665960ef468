//! The issuer's tunables: issuer URL, token lifetimes and the key rotation lead time.

use std::time::Duration;

/// Default and ceiling of a build token's default lifetime: 5 minutes, like GitHub's.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The longest `max_token_lifetime` a controller may configure: one hour.
pub const MAX_TOKEN_LIFETIME_CEILING: Duration = Duration::from_secs(3600);
/// How long relying parties may cache the JWKS (`Cache-Control: max-age`).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// Default time between publishing a new key and signing with it: one hour, far longer than
/// [`JWKS_MAX_AGE`], so every relying party has fetched the key before a token carries it.
pub const DEFAULT_ROTATION_LEAD_TIME: Duration = Duration::from_secs(3600);

/// Why issuer settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The issuer is not an absolute `https://` (or loopback `http://`) URL without query,
    /// fragment or trailing slash.
    #[error(
        "issuer {issuer:?} must be an absolute https:// URL (http:// only for loopback) with no \
         query, fragment or trailing '/'"
    )]
    Issuer {
        /// The issuer given.
        issuer: String,
    },
    /// `max_token_lifetime` is zero or above [`MAX_TOKEN_LIFETIME_CEILING`].
    #[error("max_token_lifetime must be between 1 s and {} s, not {} s", MAX_TOKEN_LIFETIME_CEILING.as_secs(), .0.as_secs())]
    MaxLifetime(Duration),
    /// The rotation lead time does not exceed how long relying parties cache the JWKS.
    #[error(
        "rotation_lead_time ({} s) must exceed the JWKS cache lifetime ({} s), or relying \
         parties could see a token before its key",
        .0.as_secs(), JWKS_MAX_AGE.as_secs()
    )]
    LeadTime(Duration),
}

/// Validated issuer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    issuer: String,
    max_token_lifetime: Duration,
    rotation_lead_time: Duration,
}

impl OidcSettings {
    /// Settings with the default lifetimes for `issuer`.
    pub fn new(issuer: &str) -> Result<Self, SettingsError> {
        Self::with_limits(
            issuer,
            DEFAULT_MAX_TOKEN_LIFETIME,
            DEFAULT_ROTATION_LEAD_TIME,
        )
    }

    /// Settings with explicit limits, validated.
    pub fn with_limits(
        issuer: &str,
        max_token_lifetime: Duration,
        rotation_lead_time: Duration,
    ) -> Result<Self, SettingsError> {
        if !issuer_is_valid(issuer) {
            return Err(SettingsError::Issuer {
                issuer: issuer.to_owned(),
            });
        }
        if max_token_lifetime.as_secs() == 0 || max_token_lifetime > MAX_TOKEN_LIFETIME_CEILING {
            return Err(SettingsError::MaxLifetime(max_token_lifetime));
        }
        if rotation_lead_time <= JWKS_MAX_AGE {
            return Err(SettingsError::LeadTime(rotation_lead_time));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            max_token_lifetime,
            rotation_lead_time,
        })
    }

    /// The issuer URL: the `iss` of every token and the base of the discovery URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The longest lifetime a token may be minted with.
    pub fn max_token_lifetime(&self) -> Duration {
        self.max_token_lifetime
    }

    /// The lifetime of a token whose request names none: 5 minutes, or the maximum if lower.
    pub fn default_token_lifetime(&self) -> Duration {
        self.max_token_lifetime.min(DEFAULT_MAX_TOKEN_LIFETIME)
    }

    /// Time between publishing a key and signing with it.
    pub fn rotation_lead_time(&self) -> Duration {
        self.rotation_lead_time
    }
}

/// An absolute https URL (or http on a loopback host), no query, fragment or trailing slash.
fn issuer_is_valid(issuer: &str) -> bool {
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        let loopback = ["127.0.0.1", "localhost", "[::1]"].iter().any(|host| {
            rest.strip_prefix(host)
                .is_some_and(|after| after.is_empty() || after.starts_with([':', '/']))
        });
        if !loopback {
            return false;
        }
        rest
    } else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    !host.is_empty()
        && !issuer.ends_with('/')
        && !issuer
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '"' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_be_https_or_loopback_http() {
        assert!(OidcSettings::new("https://ci.example").is_ok());
        assert!(OidcSettings::new("https://ci.example/airlock").is_ok());
        assert!(OidcSettings::new("http://127.0.0.1:7070").is_ok());
        assert!(OidcSettings::new("http://[::1]:7070").is_ok());
        for bad in [
            "ci.example",
            "http://ci.example",
            "https://",
            "https://ci.example/",
            "https://ci.example?x=1",
            "https://ci.example#f",
            "https://ci example",
        ] {
            assert!(
                matches!(OidcSettings::new(bad), Err(SettingsError::Issuer { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn lifetimes_are_bounded_and_default_to_five_minutes() {
        let s = OidcSettings::new("https://ci.example").unwrap();
        assert_eq!(s.default_token_lifetime(), Duration::from_secs(300));
        let short = OidcSettings::with_limits(
            "https://ci.example",
            Duration::from_secs(60),
            DEFAULT_ROTATION_LEAD_TIME,
        )
        .unwrap();
        assert_eq!(short.default_token_lifetime(), Duration::from_secs(60));
        assert_eq!(
            OidcSettings::with_limits(
                "https://ci.example",
                Duration::ZERO,
                DEFAULT_ROTATION_LEAD_TIME
            ),
            Err(SettingsError::MaxLifetime(Duration::ZERO))
        );
        assert!(matches!(
            OidcSettings::with_limits(
                "https://ci.example",
                Duration::from_secs(3601),
                DEFAULT_ROTATION_LEAD_TIME
            ),
            Err(SettingsError::MaxLifetime(_))
        ));
        assert!(matches!(
            OidcSettings::with_limits("https://ci.example", Duration::from_secs(300), JWKS_MAX_AGE),
            Err(SettingsError::LeadTime(_))
        ));
    }
}
