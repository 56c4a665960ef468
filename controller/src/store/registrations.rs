//! Runner credentials: registrations, runner tokens, and the job-token check. Only sha256
//! digests of secrets are stored.

use sqlx::AssertSqlSafe;

use super::Store;
use super::codec::{parse_token_digest, parse_uuid};
use super::sql::{Conn, query};
use super::{RegistrationRecord, RegistrationSync, RunnerIdentity, RunnerTokenRecord, StoreError};
use crate::auth::digest::TokenDigest;
use crate::ids::{JobId, RunnerId};

/// Inserts the registration `name` unless one with that name exists; returns whether it did.
async fn insert(
    conn: &mut Conn<'_>,
    name: &str,
    secret_sha256: &TokenDigest,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let inserted = query(
        "INSERT INTO runner_registrations (name, secret_sha256, created_ms) \
         VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(secret_sha256.hex())
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(inserted == 1)
}

impl Store {
    /// Creates the registration `name`; [`StoreError::RegistrationExists`] if the name is
    /// taken (also by a revoked one: its name is never reused).
    pub async fn create_registration(
        &self,
        name: &str,
        secret_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        if !insert(&mut pooled.conn(), name, secret_sha256, now_ms).await? {
            return Err(StoreError::RegistrationExists(name.to_owned()));
        }
        Ok(())
    }

    /// Inserts a registration declared in the configuration, or replaces its digest (making
    /// it active again) when the configuration names another secret; the same digest leaves
    /// it as it is, revoked or not. Safe with replicas starting together.
    pub async fn sync_registration(
        &self,
        name: &str,
        secret_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<RegistrationSync, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        if insert(&mut conn, name, secret_sha256, now_ms).await? {
            tx.commit().await?;
            return Ok(RegistrationSync::Inserted);
        }
        let lock = conn.dialect().lock_rows();
        let stored: String = query(AssertSqlSafe(format!(
            "SELECT secret_sha256 FROM runner_registrations WHERE name = $1{lock}"
        )))
        .bind(name)
        .fetch_one(&mut conn)
        .await?
        .try_get(0)?;
        let result = if stored == secret_sha256.hex() {
            RegistrationSync::Unchanged
        } else {
            query(
                "UPDATE runner_registrations SET secret_sha256 = $1, revoked_ms = NULL \
                 WHERE name = $2",
            )
            .bind(secret_sha256.hex())
            .bind(name)
            .execute(&mut conn)
            .await?;
            RegistrationSync::Replaced
        };
        tx.commit().await?;
        Ok(result)
    }

    /// Revokes `name` and deletes every runner token issued under it (so making the name
    /// active again never revives them). Returns false if it was revoked already.
    pub async fn revoke_registration(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        let lock = conn.dialect().lock_rows();
        let row = query(AssertSqlSafe(format!(
            "SELECT revoked_ms FROM runner_registrations WHERE name = $1{lock}"
        )))
        .bind(name)
        .fetch_optional(&mut conn)
        .await?
        .ok_or_else(|| StoreError::RegistrationNotFound(name.to_owned()))?;
        let already = row.try_get::<Option<i64>, _>(0)?.is_some();
        if !already {
            query("UPDATE runner_registrations SET revoked_ms = $1 WHERE name = $2")
                .bind(now_ms)
                .bind(name)
                .execute(&mut conn)
                .await?;
        }
        query("DELETE FROM runner_tokens WHERE registration = $1")
            .bind(name)
            .execute(&mut conn)
            .await?;
        tx.commit().await?;
        Ok(!already)
    }

    /// Every registration, by name.
    pub async fn registrations(&self) -> Result<Vec<RegistrationRecord>, StoreError> {
        let rows = query(
            "SELECT name, secret_sha256, created_ms, revoked_ms FROM runner_registrations \
             ORDER BY name",
        )
        .fetch_all(&mut self.pool.acquire().await?.conn())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RegistrationRecord {
                    name: row.try_get(0)?,
                    secret_sha256: parse_token_digest(
                        "secret_sha256",
                        &row.try_get::<String, _>(1)?,
                    )?,
                    created_ms: row.try_get(2)?,
                    revoked_ms: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// The name of the active registration whose secret hashes to `secret_sha256`.
    pub async fn active_registration(
        &self,
        secret_sha256: &TokenDigest,
    ) -> Result<Option<String>, StoreError> {
        let row = query(
            "SELECT name FROM runner_registrations WHERE secret_sha256 = $1 \
             AND revoked_ms IS NULL ORDER BY name LIMIT 1",
        )
        .bind(secret_sha256.hex())
        .fetch_optional(&mut self.pool.acquire().await?.conn())
        .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    /// Stores a runner token, only while its registration is active (a token renewed while
    /// the registration is being revoked is not stored). Returns whether it was stored.
    pub async fn insert_runner_token(&self, token: &RunnerTokenRecord) -> Result<bool, StoreError> {
        let done = query(
            "INSERT INTO runner_tokens (token_sha256, runner_id, registration, expires_ms) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM runner_registrations \
             WHERE name = $3 AND revoked_ms IS NULL)",
        )
        .bind(token.token_sha256.hex())
        .bind(token.runner_id.to_string())
        .bind(&token.registration)
        .bind(token.expires_ms)
        .execute(&mut self.pool.acquire().await?.conn())
        .await?;
        Ok(done == 1)
    }

    /// Who the runner token hashing to `token_sha256` belongs to, if it is unexpired at
    /// `now_ms` and its registration is not revoked.
    pub async fn runner_for_token(
        &self,
        token_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<Option<RunnerIdentity>, StoreError> {
        let row = query(
            "SELECT t.runner_id, t.registration FROM runner_tokens t \
             JOIN runner_registrations r ON r.name = t.registration \
             WHERE t.token_sha256 = $1 AND t.expires_ms > $2 AND r.revoked_ms IS NULL",
        )
        .bind(token_sha256.hex())
        .bind(now_ms)
        .fetch_optional(&mut self.pool.acquire().await?.conn())
        .await?;
        row.map(|row| {
            Ok(RunnerIdentity {
                runner_id: RunnerId::new(parse_uuid("runner_id", &row.try_get::<String, _>(0)?)?),
                registration: row.try_get(1)?,
            })
        })
        .transpose()
    }

    /// True when `token_sha256` is the job token of `job`'s current attempt, unexpired at
    /// `now_ms`, and the attempt is `runner`'s.
    pub async fn job_token_valid(
        &self,
        job: JobId,
        token_sha256: &TokenDigest,
        runner: RunnerId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let row = query(
            "SELECT 1 FROM jobs WHERE id = $1 AND job_token_sha256 = $2 \
             AND job_token_expires_ms > $3 AND runner_id = $4",
        )
        .bind(job.to_string())
        .bind(token_sha256.hex())
        .bind(now_ms)
        .bind(runner.to_string())
        .fetch_optional(&mut self.pool.acquire().await?.conn())
        .await?;
        Ok(row.is_some())
    }

    /// Deletes runner tokens that expired by `now_ms`; returns how many.
    pub async fn delete_expired_runner_tokens(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = query("DELETE FROM runner_tokens WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&mut self.pool.acquire().await?.conn())
            .await?;
        Ok(done)
    }
}
