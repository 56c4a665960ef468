//! The store's behaviour, run against both backends (the store's contract): every test is an
//! `async fn(Store)`, instantiated by `both_backends!` as `<name>::sqlite` (a temp file)
//! and `<name>::postgres` (a fresh schema in the database `AIRLOCK_TEST_POSTGRES_URL`
//! names; `scripts/postgres.sh` starts one; ignored unless asked for, as it needs a server).

use super::*;
use crate::auth::digest::TokenDigest;
use crate::ids::LeaseToken;
use airlock_attest::Sha256Digest;
use airlock_proto::v1 as pb;
use sqlx::Row;
use uuid::Uuid;

fn sqlite_pool(store: &Store) -> sqlx::SqlitePool {
    match &store.pool {
        sql::Pool::Sqlite { pool, .. } => pool.clone(),
        sql::Pool::Postgres(_) => panic!("not SQLite"),
    }
}

/// A SQLite store in a temp dir (kept alive by the returned guard).
pub(super) async fn sqlite_store() -> (Option<tempfile::TempDir>, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    (Some(dir), store)
}

/// A PostgreSQL store in a fresh schema of the test database.
pub(crate) async fn postgres_store() -> (Option<tempfile::TempDir>, Store) {
    let url = std::env::var("AIRLOCK_TEST_POSTGRES_URL").expect(
        "AIRLOCK_TEST_POSTGRES_URL is not set: run `eval \"$(scripts/postgres.sh)\"` first",
    );
    let schema = format!("t_{}", Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let options = options.options([("search_path", schema.as_str())]);
    let store = Store::connect_postgres_with(options, 8).await.unwrap();
    (None, store)
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let (_guard, store) = crate::store::tests::sqlite_store().await;
                    super::$name(store).await;
                }

                #[tokio::test]
                #[ignore = "needs PostgreSQL: AIRLOCK_TEST_POSTGRES_URL (scripts/postgres.sh)"]
                async fn postgres() {
                    let (_guard, store) = crate::store::tests::postgres_store().await;
                    super::$name(store).await;
                }
            }
        )*
    };
}

mod caches;
mod credentials;
mod forge_statuses;
mod lease_endings;
mod leasing;
mod web;

pub(super) fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x4000_8000_0000_0000_0000 | n)
}

pub(super) fn new_job(n: u128, labels: &[&str], created_ms: i64) -> NewJob {
    NewJob {
        id: JobId::new(id(n)),
        name: format!("job{n}"),
        spec_json: br#"{"job":{}}"#.to_vec(),
        profile: "trusted".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        source_sha256: Some(Sha256Digest::of(b"src")),
        created_ms,
        idempotency_key: None,
        priority: 0,
        queue_key: created_ms,
        tenant: format!("t{n}"),
        timeout_ms: 1_000,
        max_attempts: 2,
        queued_message: "waiting for a runner".into(),
        forge_status: false,
        admission_json: None,
        signer_keyid: None,
    }
}

pub(super) fn terms(now_ms: i64) -> LeaseTerms {
    LeaseTerms {
        now_ms,
        ttl_ms: 100,
        deadline_grace_ms: 50,
        tenant_limit: 0,
    }
}

const RETRY: RetryPolicy = RetryPolicy {
    backoff_base_ms: 10,
    backoff_max_ms: 1_000,
};

pub(super) fn runner(labels: &[&str]) -> RunnerRecord {
    RunnerRecord {
        id: RunnerId::new(id(100)),
        name: "r".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        version: "0.1.0".into(),
        registered_ms: 1,
        registration: "default".into(),
    }
}

pub(super) fn grant() -> JobTokenGrant {
    JobTokenGrant {
        token_sha256: TokenDigest::of("job-token"),
        grace_ms: 30,
    }
}

pub(super) fn log(data: &[u8]) -> EventKind {
    EventKind::Log(pb::LogChunk {
        step_index: 0,
        stream: pb::LogStream::Stdout as i32,
        data: data.to_vec(),
    })
}

pub(super) fn runner_n(n: u128, labels: &[&str]) -> RunnerRecord {
    RunnerRecord {
        id: RunnerId::new(id(100 + n)),
        name: format!("r{n}"),
        ..runner(labels)
    }
}

pub(super) async fn with_runners(store: &Store) {
    for n in [1, 2] {
        store.insert_runner(&runner_n(n, &[])).await.unwrap();
    }
}

pub(super) fn infra(now: i64) -> Completion {
    Completion {
        state: JobState::InfraFailed,
        message: "sandbox broke".into(),
        exit_code: 0,
        finished_ms: now,
        log_sha256: None,
        builder_id: None,
        provenance: None,
        sbom: None,
        trace: None,
        retryable: true,
    }
}

pub(super) fn runner_token(
    secret: &str,
    runner: u128,
    registration: &str,
    expires_ms: i64,
) -> RunnerTokenRecord {
    RunnerTokenRecord {
        token_sha256: TokenDigest::of(secret),
        runner_id: RunnerId::new(id(100 + runner)),
        registration: registration.into(),
        expires_ms,
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/airlock.db");
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 7);
    let row = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&sqlite_pool(&store))
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>(0).unwrap(), "wal");
    store.close().await;
    let again = Store::open(&path).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 7);
    sqlx::query("PRAGMA user_version = 99")
        .execute(&sqlite_pool(&again))
        .await
        .unwrap();
    again.close().await;
    let err = Store::open(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}
