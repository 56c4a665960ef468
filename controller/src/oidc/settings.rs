//! The issuer's tunables: issuer URL, token lifetimes, the key rotation lead time, and which
//! profiles' jobs may get build tokens.

use std::time::Duration;

/// The profile that never gets build tokens, whatever its profile file says.
pub const UNTRUSTED_PR_PROFILE: &str = "untrusted-pr";

/// Default and ceiling of a build token's default lifetime: 5 minutes, like GitHub's.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The longest `max_token_lifetime` a controller may configure: one hour.
pub const MAX_TOKEN_LIFETIME_CEILING: Duration = Duration::from_secs(3600);
/// How long relying parties may cache the JWKS (`Cache-Control: max-age`).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// Default time between publishing a new key and signing with it: one hour, far longer than
/// [`JWKS_MAX_AGE`], so every relying party has fetched the key before a token carries it.
pub const DEFAULT_ROTATION_LEAD_TIME: Duration = Duration::from_secs(3600);
/// The profiles whose jobs may get build tokens unless `[oidc] build_token_profiles` says
/// otherwise.
pub const DEFAULT_BUILD_TOKEN_PROFILES: &[&str] = &["trusted", "release"];

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
    /// `build_token_profiles` names `untrusted-pr` or something that is not a profile name.
    #[error(
        "build_token_profiles: `{profile}` {}",
        if profile == UNTRUSTED_PR_PROFILE {
            "may never get build tokens (its jobs run code nobody reviewed); remove it"
        } else {
            "is not a profile name (lowercase letters, digits, `-`)"
        }
    )]
    BuildTokenProfile {
        /// The profile named.
        profile: String,
    },
}

/// Checks a `build_token_profiles` list: profile names, never `untrusted-pr`.
pub fn check_build_token_profiles(profiles: &[String]) -> Result<(), SettingsError> {
    match profiles
        .iter()
        .find(|p| *p == UNTRUSTED_PR_PROFILE || !crate::config::is_profile_name(p))
    {
        Some(profile) => Err(SettingsError::BuildTokenProfile {
            profile: profile.clone(),
        }),
        None => Ok(()),
    }
}

/// Validated issuer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    issuer: String,
    max_token_lifetime: Duration,
    rotation_lead_time: Duration,
    build_token_profiles: Vec<String>,
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
            build_token_profiles: DEFAULT_BUILD_TOKEN_PROFILES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        })
    }

    /// These settings with `profiles` as the ones whose jobs may get build tokens.
    pub fn with_build_token_profiles(mut self, profiles: &[String]) -> Result<Self, SettingsError> {
        check_build_token_profiles(profiles)?;
        self.build_token_profiles = profiles.to_vec();
        Ok(self)
    }

    /// Whether jobs of `profile` may get build tokens (never `untrusted-pr`).
    pub fn allows_build_tokens(&self, profile: &str) -> bool {
        profile != UNTRUSTED_PR_PROFILE && self.build_token_profiles.iter().any(|p| p == profile)
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
    fn build_tokens_default_to_trusted_and_release_and_never_untrusted_pr() {
        let s = OidcSettings::new("https://ci.example").unwrap();
        assert!(s.allows_build_tokens("trusted") && s.allows_build_tokens("release"));
        assert!(!s.allows_build_tokens("untrusted-pr") && !s.allows_build_tokens("nightly"));
        let s = s
            .with_build_token_profiles(&["nightly".to_owned()])
            .unwrap();
        assert!(s.allows_build_tokens("nightly") && !s.allows_build_tokens("trusted"));
        for bad in ["untrusted-pr", "Release", ""] {
            let e = OidcSettings::new("https://ci.example")
                .unwrap()
                .with_build_token_profiles(&[bad.to_owned()])
                .unwrap_err();
            assert!(e.to_string().contains("build_token_profiles"), "{e}");
        }
        let e = check_build_token_profiles(&["untrusted-pr".to_owned()]).unwrap_err();
        assert!(e.to_string().contains("may never get build tokens"), "{e}");
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
