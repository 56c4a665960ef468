//! Runner credentials: registrations, runner tokens, and the job-token check. Only sha256
//! digests of secrets are stored.

use sqlx::Row;

use super::PostgresStore;
use crate::auth::TokenDigest;
use crate::ids::{JobId, RunnerId};
use crate::store::codec::{parse_token_digest, parse_uuid};
use crate::store::{
    RegistrationRecord, RegistrationSync, RunnerIdentity, RunnerTokenRecord, StoreError,
};

impl PostgresStore {
    /// Creates the registration `name`; [`StoreError::RegistrationExists`] if the name is
    /// taken (also by a revoked one: its name is never reused).
    pub async fn create_registration(
        &self,
        name: &str,
        secret_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO runner_registrations (name, secret_sha256, created_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(secret_sha256.hex())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
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
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO runner_registrations (name, secret_sha256, created_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(secret_sha256.hex())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(RegistrationSync::Inserted);
        }
        let stored: String = sqlx::query(
            "SELECT secret_sha256 FROM runner_registrations WHERE name = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let result = if stored == secret_sha256.hex() {
            RegistrationSync::Unchanged
        } else {
            sqlx::query(
                "UPDATE runner_registrations SET secret_sha256 = $1, revoked_ms = NULL \
                 WHERE name = $2",
            )
            .bind(secret_sha256.hex())
            .bind(name)
            .execute(&mut *tx)
            .await?;
            RegistrationSync::Replaced
        };
        tx.commit().await?;
        Ok(result)
    }

    /// Revokes `name` and deletes every runner token issued under it (so making the name
    /// active again never revives them). Returns false if it was revoked already.
    pub async fn revoke_registration(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT revoked_ms FROM runner_registrations WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::RegistrationNotFound(name.to_owned()))?;
        let already = row.try_get::<Option<i64>, _>(0)?.is_some();
        if !already {
            sqlx::query("UPDATE runner_registrations SET revoked_ms = $1 WHERE name = $2")
                .bind(now_ms)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM runner_tokens WHERE registration = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(!already)
    }

    /// Every registration, by name.
    pub async fn registrations(&self) -> Result<Vec<RegistrationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, secret_sha256, created_ms, revoked_ms FROM runner_registrations \
             ORDER BY name",
        )
        .fetch_all(&self.pool)
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
        let row = sqlx::query(
            "SELECT name FROM runner_registrations WHERE secret_sha256 = $1 \
             AND revoked_ms IS NULL ORDER BY name LIMIT 1",
        )
        .bind(secret_sha256.hex())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Stores a runner token, only while its registration is active (a token renewed while
    /// the registration is being revoked is not stored). Returns whether it was stored.
    pub async fn insert_runner_token(&self, token: &RunnerTokenRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO runner_tokens (token_sha256, runner_id, registration, expires_ms) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM runner_registrations \
             WHERE name = $3 AND revoked_ms IS NULL)",
        )
        .bind(token.token_sha256.hex())
        .bind(token.runner_id.to_string())
        .bind(&token.registration)
        .bind(token.expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who the runner token hashing to `token_sha256` belongs to, if it is unexpired at
    /// `now_ms` and its registration is not revoked.
    pub async fn runner_for_token(
        &self,
        token_sha256: &TokenDigest,
        now_ms: i64,
    ) -> Result<Option<RunnerIdentity>, StoreError> {
        let row = sqlx::query(
            "SELECT t.runner_id, t.registration FROM runner_tokens t \
             JOIN runner_registrations r ON r.name = t.registration \
             WHERE t.token_sha256 = $1 AND t.expires_ms > $2 AND r.revoked_ms IS NULL",
        )
        .bind(token_sha256.hex())
        .bind(now_ms)
        .fetch_optional(&self.pool)
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
        let row = sqlx::query(
            "SELECT 1 FROM jobs WHERE id = $1 AND job_token_sha256 = $2 \
             AND job_token_expires_ms > $3 AND runner_id = $4",
        )
        .bind(job.to_string())
        .bind(token_sha256.hex())
        .bind(now_ms)
        .bind(runner.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Deletes runner tokens that expired by `now_ms`; returns how many.
    pub async fn delete_expired_runner_tokens(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM runner_tokens WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
