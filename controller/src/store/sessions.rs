//! Web sessions: one row per login to the web pages, keyed by the sha256 of the cookie's
//! random id (the id itself is never stored), with the client it logged in as, its CSRF
//! token and its expiry. Expired rows are deleted by the periodic sweep.

use std::fmt;

use super::codec::parse_token_digest;
use super::sql::query;
use super::{Store, StoreError};
use crate::auth::digest::TokenDigest;

/// A stored web session.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSessionRecord {
    /// sha256 of the session id the cookie carries.
    pub id_sha256: TokenDigest,
    /// The configured client the login authenticated as.
    pub client: String,
    /// The token every state-changing form of this session must carry.
    pub csrf_token: String,
    /// Login time, ms since the Unix epoch.
    pub created_ms: i64,
    /// The session is refused from this time on, ms since the Unix epoch.
    pub expires_ms: i64,
}

impl fmt::Debug for WebSessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSessionRecord")
            .field("client", &self.client)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Records a new web session.
    pub async fn insert_web_session(&self, session: &WebSessionRecord) -> Result<(), StoreError> {
        query(
            "INSERT INTO web_sessions (id_sha256, client, csrf_token, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.id_sha256.hex())
        .bind(&session.client)
        .bind(&session.csrf_token)
        .bind(session.created_ms)
        .bind(session.expires_ms)
        .execute(&mut self.pool.acquire().await?.conn())
        .await?;
        Ok(())
    }

    /// The session whose id hashes to `id_sha256`, if it is unexpired at `now_ms`.
    pub async fn web_session(
        &self,
        id_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<Option<WebSessionRecord>, StoreError> {
        let row = query(
            "SELECT id_sha256, client, csrf_token, created_ms, expires_ms FROM web_sessions \
             WHERE id_sha256 = $1 AND expires_ms > $2",
        )
        .bind(id_sha256.hex())
        .bind(now_ms)
        .fetch_optional(&mut self.pool.acquire().await?.conn())
        .await?;
        row.map(|row| {
            Ok(WebSessionRecord {
                id_sha256: parse_token_digest("id_sha256", &row.try_get::<String, _>(0)?)?,
                client: row.try_get(1)?,
                csrf_token: row.try_get(2)?,
                created_ms: row.try_get(3)?,
                expires_ms: row.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Deletes the session (logout); returns whether one existed.
    pub async fn delete_web_session(&self, id_sha256: &TokenDigest) -> Result<bool, StoreError> {
        let done = query("DELETE FROM web_sessions WHERE id_sha256 = $1")
            .bind(id_sha256.hex())
            .execute(&mut self.pool.acquire().await?.conn())
            .await?;
        Ok(done == 1)
    }

    /// Deletes the sessions that expired by `now_ms`; returns how many.
    pub async fn delete_expired_web_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = query("DELETE FROM web_sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&mut self.pool.acquire().await?.conn())
            .await?;
        Ok(done)
    }
}
