//! Web sessions: the `airlock_session` cookie and who it logs in.
//!
//! A login creates a random session id (32 bytes from the system RNG, base64url behind a
//! greppable prefix) that only the cookie holds; the store keeps its sha256, the client's
//! name, a random CSRF token and the expiry (`[web] session_lifetime`). Looking sessions up
//! and starting them is in `access`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

use crate::auth::clients::AuthenticatedClient;
use crate::auth::digest::TokenDigest;
use crate::auth::secret::Secret;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "airlock_session";

/// Prefix of a session id (a leaked cookie is easy to find in logs).
pub(crate) const ID_PREFIX: &str = "airlock-ws_";

/// Length of a session id: the prefix and 32 bytes in unpadded base64url.
const ID_LEN: usize = ID_PREFIX.len() + 43;

/// A logged-in visitor.
#[derive(Clone)]
pub(crate) struct Session {
    /// The client, as `[auth]` configures it now.
    pub(crate) client: Arc<AuthenticatedClient>,
    /// sha256 of the session id (the store's key).
    pub(crate) id_sha256: TokenDigest,
    /// The token the session's forms carry.
    pub(crate) csrf_token: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("client", &self.client.name)
            .finish_non_exhaustive()
    }
}

/// The session id the request's cookies carry, if one looks like a session id.
pub(crate) fn cookie_session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"'))
        .find(|value| is_session_id(value))
}

fn is_session_id(value: &str) -> bool {
    value.len() == ID_LEN
        && value.starts_with(ID_PREFIX)
        && value[ID_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `Set-Cookie` value that stores session `id` for `lifetime`.
pub(crate) fn set_cookie(id: &Secret, lifetime: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={}; Max-Age={}; Path=/; HttpOnly; SameSite=Strict{}",
        id.expose(),
        lifetime.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let id = Secret::generate(ID_PREFIX).unwrap();
        let id = id.expose();
        assert_eq!(id.len(), ID_LEN);
        let h = with_cookies(&[&format!("theme=dark; {COOKIE_NAME}={id}; other=1")]);
        assert_eq!(cookie_session_id(&h), Some(id));
        let h = with_cookies(&["a=b", &format!("{COOKIE_NAME}={id}")]);
        assert_eq!(cookie_session_id(&h), Some(id));
        // Malformed values are not session ids.
        for bad in [
            format!("{COOKIE_NAME}="),
            format!("{COOKIE_NAME}=airlock-ws_short"),
            format!("{COOKIE_NAME}={}", id.replace('_', "!")),
            format!("{COOKIE_NAME}x={id}"),
            format!("{COOKIE_NAME}={id}extra"),
        ] {
            assert_eq!(cookie_session_id(&with_cookies(&[&bad])), None, "{bad}");
        }
        // A malformed one does not hide a good one after it.
        let h = with_cookies(&[&format!("{COOKIE_NAME}=junk; {COOKIE_NAME}={id}")]);
        assert_eq!(cookie_session_id(&h), Some(id));
        assert_eq!(cookie_session_id(&HeaderMap::new()), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let id = Secret::generate(ID_PREFIX).unwrap();
        let plain = set_cookie(&id, Duration::from_secs(3600), false);
        assert!(plain.starts_with(&format!("{COOKIE_NAME}={}", id.expose())));
        for part in ["Max-Age=3600", "Path=/", "HttpOnly", "SameSite=Strict"] {
            assert!(plain.contains(part), "{plain}");
        }
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(set_cookie(&id, Duration::from_secs(1), true).ends_with("; Secure"));
        let cleared = clear_cookie(true);
        assert!(cleared.starts_with(&format!("{COOKIE_NAME}=;")) && cleared.contains("Max-Age=0"));
    }

    #[test]
    fn a_session_shows_no_secret_in_debug() {
        let session = Session {
            client: Arc::new(AuthenticatedClient::new(
                "ci",
                crate::config::Role::Read,
                None,
            )),
            id_sha256: TokenDigest::of("the-id"),
            csrf_token: "the-csrf-token".into(),
        };
        let shown = format!("{session:?}");
        assert!(shown.contains("ci"), "{shown}");
        assert!(
            !shown.contains("the-csrf-token") && !shown.contains(&TokenDigest::of("the-id").hex()),
            "{shown}"
        );
    }
}
