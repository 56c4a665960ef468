//! Build caches: one row per scope and key, naming the archive in
//! the blob store. A save of a scope and key that exists replaces it (the newest save wins,
//! also when two jobs save at once); a lookup finds the exact key, or the newest of the
//! scope; eviction keeps a scope under its size cap, least recently used first.

use airlock_attest::Sha256Digest;

use super::codec::parse_digest;
use super::sql::{Conn, Row, query};
use super::{Store, StoreError};
use crate::caches::{Lookup, Scope, TrustDomain};

/// One saved cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// Its scope.
    pub scope: Scope,
    /// The digest of the files that key it.
    pub key: Sha256Digest,
    /// The archive's sha256 (its name in the blob store).
    pub archive: Sha256Digest,
    /// The archive's size in bytes.
    pub size: u64,
    /// When it was saved.
    pub created_ms: i64,
    /// When it was last restored (or saved).
    pub used_ms: i64,
}

fn domain_from(text: &str) -> Result<TrustDomain, StoreError> {
    TrustDomain::parse(text).ok_or_else(|| StoreError::Corrupt(format!("cache domain {text:?}")))
}

fn record_from(row: &Row) -> Result<CacheRecord, StoreError> {
    let size: i64 = row.try_get("size")?;
    Ok(CacheRecord {
        scope: Scope {
            project: row.try_get("project")?,
            domain: domain_from(&row.try_get::<String, _>("domain")?)?,
            name: row.try_get("name")?,
        },
        key: parse_digest("key_sha256", &row.try_get::<String, _>("key_sha256")?)?,
        archive: parse_digest(
            "archive_sha256",
            &row.try_get::<String, _>("archive_sha256")?,
        )?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("size {size}")))?,
        created_ms: row.try_get("created_ms")?,
        used_ms: row.try_get("used_ms")?,
    })
}

/// Deletes the cache of `scope` and `key` inside the caller's transaction.
async fn delete_in(
    conn: &mut Conn<'_>,
    scope: &Scope,
    key: &Sha256Digest,
) -> Result<(), StoreError> {
    query(
        "DELETE FROM build_caches WHERE project = $1 AND domain = $2 AND name = $3 \
         AND key_sha256 = $4",
    )
    .bind(&scope.project)
    .bind(scope.domain.as_str())
    .bind(&scope.name)
    .bind(key.hex())
    .execute(conn)
    .await?;
    Ok(())
}

const COLUMNS: &str =
    "project, domain, name, key_sha256, archive_sha256, size, created_ms, used_ms";

impl Store {
    /// Records a saved cache, replacing one of the same scope and key; returns the archive
    /// it replaced, if any (the caller drops that blob once nothing else names it).
    pub async fn save_cache(
        &self,
        record: &CacheRecord,
    ) -> Result<Option<Sha256Digest>, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        // Two saves of one scope and key (replicas, or two jobs at once) take turns, so each
        // learns which archive it replaced: a row lock cannot cover a row not there yet.
        conn.serialize_on(&format!(
            "cache:{}:{}:{}:{}",
            record.scope.project,
            record.scope.domain.as_str(),
            record.scope.name,
            record.key.hex()
        ))
        .await?;
        let previous = query(
            "SELECT archive_sha256 FROM build_caches WHERE project = $1 AND domain = $2 \
             AND name = $3 AND key_sha256 = $4",
        )
        .bind(&record.scope.project)
        .bind(record.scope.domain.as_str())
        .bind(&record.scope.name)
        .bind(record.key.hex())
        .fetch_optional(&mut conn)
        .await?
        .map(|row| parse_digest("archive_sha256", &row.try_get::<String, _>(0)?))
        .transpose()?;
        query(
            "INSERT INTO build_caches (project, domain, name, key_sha256, archive_sha256, size, \
             created_ms, used_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (project, domain, name, key_sha256) DO UPDATE SET \
             archive_sha256 = excluded.archive_sha256, size = excluded.size, \
             created_ms = excluded.created_ms, used_ms = excluded.used_ms",
        )
        .bind(&record.scope.project)
        .bind(record.scope.domain.as_str())
        .bind(&record.scope.name)
        .bind(record.key.hex())
        .bind(record.archive.hex())
        .bind(i64::try_from(record.size).unwrap_or(i64::MAX))
        .bind(record.created_ms)
        .execute(&mut conn)
        .await?;
        tx.commit().await?;
        Ok(previous.filter(|p| *p != record.archive))
    }

    /// The cache `lookup` finds (its exact key, or the newest of its scope), marked used
    /// at `now_ms`.
    pub async fn find_cache(
        &self,
        lookup: &Lookup,
        now_ms: i64,
    ) -> Result<Option<CacheRecord>, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        let (filter, key) = match &lookup.key {
            Some(key) => (" AND key_sha256 = $4", Some(key.hex())),
            None => ("", None),
        };
        let mut q = query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM build_caches WHERE project = $1 AND domain = $2 \
             AND name = $3{filter} ORDER BY created_ms DESC, key_sha256 LIMIT 1"
        )))
        .bind(&lookup.scope.project)
        .bind(lookup.scope.domain.as_str())
        .bind(&lookup.scope.name);
        if let Some(key) = key {
            q = q.bind(key);
        }
        let Some(row) = q.fetch_optional(&mut conn).await? else {
            return Ok(None);
        };
        let mut record = record_from(&row)?;
        query(
            "UPDATE build_caches SET used_ms = $1 WHERE project = $2 AND domain = $3 \
             AND name = $4 AND key_sha256 = $5",
        )
        .bind(now_ms)
        .bind(&record.scope.project)
        .bind(record.scope.domain.as_str())
        .bind(&record.scope.name)
        .bind(record.key.hex())
        .execute(&mut conn)
        .await?;
        tx.commit().await?;
        record.used_ms = now_ms;
        Ok(Some(record))
    }

    /// Forgets the cache of `scope` and `key` (its archive is gone from the blob store).
    pub async fn forget_cache(&self, scope: &Scope, key: &Sha256Digest) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        delete_in(&mut conn, scope, key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a cache names the blob `digest`; with `jobs_too`, also a job's source or
    /// output (when caches share the controller's blob store).
    pub async fn blob_in_use(
        &self,
        digest: &Sha256Digest,
        jobs_too: bool,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        let hex = digest.hex();
        let mut texts = vec!["SELECT 1 FROM build_caches WHERE archive_sha256 = $1 LIMIT 1"];
        if jobs_too {
            texts.push("SELECT 1 FROM outputs WHERE sha256 = $1 LIMIT 1");
            texts.push("SELECT 1 FROM jobs WHERE source_sha256 = $1 LIMIT 1");
        }
        for text in texts {
            if query(text)
                .bind(&hex)
                .fetch_optional(&mut conn)
                .await?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes the least recently used caches of `scope` until the rest fit in `max_bytes`;
    /// returns the archives of the deleted ones.
    pub async fn evict_caches(
        &self,
        scope: &Scope,
        max_bytes: u64,
    ) -> Result<Vec<Sha256Digest>, StoreError> {
        let mut tx = self.pool.begin_write().await?;
        let mut conn = tx.conn();
        let lock = conn.dialect().lock_rows();
        let rows = query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM build_caches WHERE project = $1 AND domain = $2 AND name = $3 \
             ORDER BY used_ms DESC, created_ms DESC{lock}"
        )))
        .bind(&scope.project)
        .bind(scope.domain.as_str())
        .bind(&scope.name)
        .fetch_all(&mut conn)
        .await?;
        let mut kept: u64 = 0;
        let mut evicted = Vec::new();
        for row in &rows {
            let record = record_from(row)?;
            if kept.saturating_add(record.size) <= max_bytes {
                kept += record.size;
                continue;
            }
            delete_in(&mut conn, scope, &record.key).await?;
            evicted.push(record.archive);
        }
        tx.commit().await?;
        Ok(evicted)
    }
}
