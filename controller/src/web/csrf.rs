//! Cross-site request forgery checks for every state-changing POST (login, logout, cancel).
//!
//! 1. Same origin: the browser's `Origin` must be this controller's (the public URL's origin,
//!    or the listener's own scheme, https with `[tls]` and http without, with the request's
//!    `Host`: the controller reached directly under another name; the session cookie is
//!    host-scoped, so a page on another host that reaches this one carries no session), and a
//!    `Sec-Fetch-Site` header, if sent, must say `same-origin`. A request with neither header
//!    is refused: every browser sends `Origin` on a POST, and nothing else needs these forms.
//! 2. Logged-in actions also carry the session's CSRF token in a hidden form field, compared
//!    in constant time.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use subtle::ConstantTimeEq as _;

/// Why a state-changing request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// `Origin` names another site.
    #[error(
        "the request comes from another origin ({0}); forms are accepted only from this \
         controller's own pages"
    )]
    ForeignOrigin(String),
    /// `Sec-Fetch-Site` says another site sent it.
    #[error("the browser says the request comes from another site (Sec-Fetch-Site: {0})")]
    CrossSite(String),
    /// Neither header: not a form of these pages.
    #[error(
        "the request carries neither Origin nor Sec-Fetch-Site; submit the form from this \
         controller's pages"
    )]
    NoOrigin,
    /// The form's CSRF token is missing or not the session's.
    #[error("the form's CSRF token is missing or wrong; reload the page and try again")]
    BadToken,
}

/// `scheme://host[:port]` of `url`, lowercase, without a default port: what browsers send
/// as `Origin` for pages under `url`.
pub(crate) fn origin_of(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").unwrap_or(("http", lower.as_str()));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = match (scheme, authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host,
        _ => authority,
    };
    format!("{scheme}://{authority}")
}

/// The origins a same-origin request may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origins {
    /// The public URL's origin (see [`origin_of`]).
    pub(crate) public: String,
    /// The scheme the listener itself serves: `https` when the controller terminates TLS.
    pub(crate) direct_scheme: &'static str,
}

impl Origins {
    /// The origins of a controller whose pages live at `public_url`, listening with or
    /// without TLS.
    pub(crate) fn new(public_url: &str, tls: bool) -> Self {
        Self {
            public: origin_of(public_url),
            direct_scheme: if tls { "https" } else { "http" },
        }
    }

    /// Checks that the request comes from a page of this controller.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), CsrfError> {
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = String::from_utf8_lossy(site.as_bytes()).into_owned();
            if site != "same-origin" {
                return Err(CsrfError::CrossSite(site));
            }
        }
        let Some(origin) = headers.get(ORIGIN) else {
            return if headers.contains_key("sec-fetch-site") {
                Ok(())
            } else {
                Err(CsrfError::NoOrigin)
            };
        };
        let origin = String::from_utf8_lossy(origin.as_bytes()).to_ascii_lowercase();
        if origin == self.public {
            return Ok(());
        }
        let direct = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| origin_of(&format!("{}://{host}", self.direct_scheme)));
        if direct.as_deref() == Some(origin.as_str()) {
            return Ok(());
        }
        // The origin is shown cut short: it is the sender's text.
        Err(CsrfError::ForeignOrigin(origin.chars().take(100).collect()))
    }
}

/// Checks the form's CSRF token against the session's, in constant time.
pub(crate) fn check_token(expected: &str, given: Option<&str>) -> Result<(), CsrfError> {
    match given {
        Some(given)
            if !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(CsrfError::BadToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins_drop_paths_and_default_ports() {
        assert_eq!(
            origin_of("https://CI.example.com/airlock/"),
            "https://ci.example.com"
        );
        assert_eq!(origin_of("https://ci.example:443"), "https://ci.example");
        assert_eq!(origin_of("http://127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(origin_of("http://h:80/x?y"), "http://h");
    }

    #[test]
    fn same_origin_posts_pass_and_foreign_ones_are_refused() {
        let ours = Origins::new("https://ci.example/", true);
        for ok in [
            headers(&[("origin", "https://ci.example")]),
            headers(&[
                ("origin", "https://ci.example"),
                ("sec-fetch-site", "same-origin"),
            ]),
            headers(&[("sec-fetch-site", "same-origin")]),
            // Reached under another name (a port forward): the Host header's origin.
            headers(&[
                ("origin", "https://localhost:8443"),
                ("host", "localhost:8443"),
            ]),
        ] {
            assert_eq!(ours.check(&ok), Ok(()), "{ok:?}");
        }
        let refused = |h: HeaderMap| ours.check(&h).unwrap_err();
        assert!(matches!(
            refused(headers(&[("origin", "https://evil.example")])),
            CsrfError::ForeignOrigin(o) if o == "https://evil.example"
        ));
        assert!(matches!(
            refused(headers(&[("origin", "null")])),
            CsrfError::ForeignOrigin(_)
        ));
        // http from the same host is another origin than https.
        assert!(matches!(
            refused(headers(&[
                ("origin", "http://ci.example"),
                ("host", "ci.example")
            ])),
            CsrfError::ForeignOrigin(_)
        ));
        assert!(matches!(
            refused(headers(&[
                ("origin", "https://evil.example"),
                ("host", "ci.example")
            ])),
            CsrfError::ForeignOrigin(_)
        ));
        assert_eq!(
            refused(headers(&[
                ("origin", "https://ci.example"),
                ("sec-fetch-site", "cross-site")
            ])),
            CsrfError::CrossSite("cross-site".into())
        );
        assert_eq!(refused(HeaderMap::new()), CsrfError::NoOrigin);

        // Without TLS the listener is http: reached directly under its address, behind a
        // public https URL.
        let plain = Origins::new("https://ci.example", false);
        let direct = headers(&[
            ("origin", "http://127.0.0.1:7070"),
            ("host", "127.0.0.1:7070"),
        ]);
        assert_eq!(plain.check(&direct), Ok(()));
        assert!(
            ours.check(&direct).is_err(),
            "an https listener is not reached over http"
        );
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert_eq!(check_token("abc123", Some("abc123")), Ok(()));
        for bad in [
            None,
            Some(""),
            Some("abc12"),
            Some("abc1234"),
            Some("ABC123"),
        ] {
            assert_eq!(
                check_token("abc123", bad),
                Err(CsrfError::BadToken),
                "{bad:?}"
            );
        }
        assert_eq!(check_token("", Some("")), Err(CsrfError::BadToken));
    }
}
