//! The issuer's two HTTP routes: [`OidcHttp::handle`] answers `GET` requests for
//! [`DISCOVERY_PATH`] and [`JWKS_PATH`] free of any HTTP framework, and [`OidcHttp::router`]
//! wraps it as the axum router the controller merges next to `/metrics` and `/healthz` on its
//! gRPC listen address ([`crate::Controller::with_oidc`]).

use std::fmt;
use std::sync::{Arc, RwLock};

use super::discovery::{DISCOVERY_PATH, DiscoveryDocument, JWKS_PATH};
use super::keys::KeyRing;
use super::reload::RingReloader;
use super::settings::JWKS_MAX_AGE;
use crate::clock::Clock;

/// A response to write: status 200, a content type, cache headers and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcResponse {
    /// `application/json`.
    pub content_type: &'static str,
    /// The `Cache-Control` value.
    pub cache_control: String,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// Serves the discovery document and the JWKS from a shared key ring.
#[derive(Clone)]
pub struct OidcHttp {
    discovery: Arc<[u8]>,
    ring: Arc<RwLock<KeyRing>>,
    clock: Arc<dyn Clock>,
    reload: Option<Arc<RingReloader>>,
}

impl OidcHttp {
    /// A handler for `issuer`, reading the keys `ring` publishes at `clock`'s time.
    pub fn new(issuer: &str, ring: Arc<RwLock<KeyRing>>, clock: Arc<dyn Clock>) -> Self {
        let doc = DiscoveryDocument::for_issuer(issuer);
        // Serialising a struct of strings cannot fail; an empty body would be refused by any
        // client rather than misread.
        let discovery = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        Self {
            discovery: discovery.into(),
            ring,
            clock,
            reload: None,
        }
    }

    /// Re-reads the key directory through `reload` before each JWKS response, when it changed.
    pub fn with_reload(mut self, reload: Arc<RingReloader>) -> Self {
        self.reload = Some(reload);
        self
    }

    /// The response for a `GET` of `path` (query ignored), or `None` if the path is not one
    /// of the issuer's (the caller answers 404 or routes elsewhere).
    pub fn handle(&self, path: &str) -> Option<OidcResponse> {
        let path = path.split('?').next().unwrap_or(path);
        let body = match path {
            DISCOVERY_PATH => self.discovery.to_vec(),
            JWKS_PATH => {
                if let Some(reload) = &self.reload {
                    reload.refresh();
                }
                let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
                let set = ring.jwks(self.clock.now());
                serde_json::to_vec_pretty(&set).unwrap_or_default()
            }
            _ => return None,
        };
        Some(OidcResponse {
            content_type: "application/json",
            cache_control: format!("public, max-age={}", JWKS_MAX_AGE.as_secs()),
            body,
        })
    }
}

impl OidcHttp {
    /// The two routes as an axum router, to merge into the controller's HTTP routes.
    pub fn router(self) -> axum::Router {
        let jwks = self.clone();
        axum::Router::new()
            .route(
                DISCOVERY_PATH,
                axum::routing::get(move || {
                    let http = self.clone();
                    async move { into_axum(http.handle(DISCOVERY_PATH)) }
                }),
            )
            .route(
                JWKS_PATH,
                axum::routing::get(move || {
                    let http = jwks.clone();
                    async move { into_axum(http.handle(JWKS_PATH)) }
                }),
            )
    }
}

fn into_axum(response: Option<OidcResponse>) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match response {
        Some(r) => (
            [
                (header::CONTENT_TYPE, r.content_type.to_owned()),
                (header::CACHE_CONTROL, r.cache_control),
            ],
            r.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl fmt::Debug for OidcHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcHttp").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::oidc::jwks::JwkSet;
    use airlock_attest::SigningKey;
    use std::time::Duration;

    #[test]
    fn serves_discovery_and_current_jwks_and_nothing_else() {
        let clock = Arc::new(ManualClock::at_unix_ms(1_800_000_000_000));
        let mut ring = KeyRing::new(Duration::from_secs(3600), Duration::from_secs(300));
        let kid = ring
            .rotate(SigningKey::generate().unwrap(), clock.now())
            .unwrap();
        let ring = Arc::new(RwLock::new(ring));
        let http = OidcHttp::new("https://ci.example", ring.clone(), clock.clone());

        let doc = http.handle("/.well-known/openid-configuration").unwrap();
        assert_eq!(doc.content_type, "application/json");
        let doc: DiscoveryDocument = serde_json::from_slice(&doc.body).unwrap();
        assert_eq!(doc.issuer, "https://ci.example");

        let jwks = http.handle("/.well-known/jwks.json?x=1").unwrap();
        let set: JwkSet = serde_json::from_slice(&jwks.body).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid, kid);

        // A rotation shows up at once: the next key is published before it signs.
        ring.write()
            .unwrap()
            .rotate(SigningKey::generate().unwrap(), clock.now())
            .unwrap();
        let set: JwkSet =
            serde_json::from_slice(&http.handle("/.well-known/jwks.json").unwrap().body).unwrap();
        assert_eq!(set.keys.len(), 2);

        assert!(http.handle("/.well-known/other").is_none());
        assert!(http.handle("/healthz").is_none());
    }
}
