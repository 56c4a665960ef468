//! Who is asking: the request's session, whether a page may be read without one, and
//! starting a session at login.
//!
//! Each request hashes the session cookie, finds an unexpired session, and takes the client
//! by name from the current `[auth]` clients: a client removed from the configuration is
//! logged out, and a changed role applies at once.

use axum::http::HeaderMap;

use crate::auth::clients::AuthenticatedClient;
use crate::auth::digest::TokenDigest;
use crate::auth::secret::Secret;
use crate::store::WebSessionRecord;
use crate::web::error::WebError;
use crate::web::session::{ID_PREFIX, Session, cookie_session_id, set_cookie};
use crate::web::{Web, params};

impl Web {
    /// The request's session, if its cookie names an unexpired one whose client is still
    /// configured.
    pub(crate) async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, WebError> {
        let Some(id) = cookie_session_id(headers) else {
            return Ok(None);
        };
        let id_sha256 = TokenDigest::of(id);
        let now = self.scheduler.now_ms();
        let Some(record) = self.scheduler.store().web_session(&id_sha256, now).await? else {
            return Ok(None);
        };
        let Some(client) = self.auth.client(&record.client) else {
            tracing::info!(client = %record.client, "a web session's client is no longer configured; session refused");
            return Ok(None);
        };
        Ok(Some(Session {
            client,
            id_sha256,
            csrf_token: record.csrf_token,
        }))
    }

    /// The session of a request for a page (`next`, the path to return to after logging
    /// in): `None` for an anonymous visitor when `[web] anonymous_read` allows reading,
    /// [`WebError::LoginRequired`] otherwise.
    pub(crate) async fn reader(
        &self,
        headers: &HeaderMap,
        next: &str,
    ) -> Result<Option<Session>, WebError> {
        match self.session(headers).await? {
            Some(session) => Ok(Some(session)),
            None if self.anonymous_read => Ok(None),
            None => Err(WebError::LoginRequired {
                next: params::local_path(next).to_owned(),
            }),
        }
    }

    /// Logs `client` in: stores a new session (after deleting expired ones) and returns the
    /// `Set-Cookie` value that hands its id to the browser.
    pub(crate) async fn start_session(
        &self,
        client: &AuthenticatedClient,
    ) -> Result<String, WebError> {
        let id = Secret::generate(ID_PREFIX)?;
        let csrf = Secret::generate("")?;
        let now = self.scheduler.now_ms();
        let lifetime_ms = i64::try_from(self.session_lifetime.as_millis()).unwrap_or(i64::MAX);
        let store = self.scheduler.store();
        store.delete_expired_web_sessions(now).await?;
        store
            .insert_web_session(&WebSessionRecord {
                id_sha256: id.digest(),
                client: client.name.clone(),
                csrf_token: csrf.expose().to_owned(),
                created_ms: now,
                expires_ms: now.saturating_add(lifetime_ms),
            })
            .await?;
        tracing::info!(client = %client.name, "web login");
        Ok(set_cookie(&id, self.session_lifetime, self.secure_cookies))
    }
}
