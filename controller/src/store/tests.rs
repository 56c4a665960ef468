//! The store's behaviour, run against both backends: every test below is an
//! `async fn(Store)`, instantiated by `both_backends!` as `<name>::sqlite` (a temp file)
//! and `<name>::postgres` (a fresh schema in the database `AIRLOCK_TEST_POSTGRES_URL`
//! names; `scripts/postgres.sh` starts one; ignored unless asked for, as it needs a server).

use super::*;
use crate::auth::TokenDigest;
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
async fn sqlite_store() -> (Option<tempfile::TempDir>, Store) {
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
                    let (_guard, store) = super::sqlite_store().await;
                    super::$name(store).await;
                }

                #[tokio::test]
                #[ignore = "needs PostgreSQL: AIRLOCK_TEST_POSTGRES_URL (scripts/postgres.sh)"]
                async fn postgres() {
                    let (_guard, store) = super::postgres_store().await;
                    super::$name(store).await;
                }
            }
        )*
    };
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x4000_8000_0000_0000_0000 | n)
}

fn new_job(n: u128, labels: &[&str], created_ms: i64) -> NewJob {
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
    }
}

fn terms(now_ms: i64) -> LeaseTerms {
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

fn runner(labels: &[&str]) -> RunnerRecord {
    RunnerRecord {
        id: RunnerId::new(id(100)),
        name: "r".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        version: "0.1.0".into(),
        registered_ms: 1,
        registration: "default".into(),
    }
}

fn grant() -> JobTokenGrant {
    JobTokenGrant {
        token_sha256: TokenDigest::of("job-token"),
        grace_ms: 30,
    }
}

fn log(data: &[u8]) -> EventKind {
    EventKind::Log(pb::LogChunk {
        step_index: 0,
        stream: pb::LogStream::Stdout as i32,
        data: data.to_vec(),
    })
}

#[tokio::test]
async fn migrations_are_idempotent_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/airlock.db");
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 3);
    let row = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&sqlite_pool(&store))
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>(0).unwrap(), "wal");
    store.close().await;
    let again = Store::open(&path).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 3);
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

async fn lease_respects_labels_and_order_and_fences(store: Store) {
    store.insert_job(&new_job(1, &["gpu"], 10)).await.unwrap();
    store.insert_job(&new_job(2, &["linux"], 20)).await.unwrap();
    store.insert_job(&new_job(3, &[], 30)).await.unwrap();

    let linux = runner(&["linux"]);
    let token = LeaseToken::new(id(200));
    let (job, seq) = store
        .lease_next(&linux, token, &grant(), &terms(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, JobId::new(id(2)));
    assert_eq!((job.state, job.attempt, seq), (JobState::Leased, 1, 2));
    assert_eq!(job.lease_token, Some(token));
    let (next, _) = store
        .lease_next(&linux, LeaseToken::new(id(201)), &grant(), &terms(41))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, JobId::new(id(3)));
    assert!(
        store
            .lease_next(&linux, LeaseToken::new(id(202)), &grant(), &terms(42))
            .await
            .unwrap()
            .is_none()
    );

    let stale = LeaseToken::new(id(999));
    let err = store.report(job.id, stale, 50, vec![]).await.unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    let reported = store
        .report(job.id, token, 50, vec![log(b"hello "), log(b"world")])
        .await
        .unwrap();
    assert_eq!(reported.started_after_ms, Some(10));
    let seq = reported.seq;
    assert_eq!(seq, 5); // QUEUED, LEASED, RUNNING, two logs
    assert_eq!(store.job(job.id).await.unwrap().state, JobState::Running);
    assert_eq!(
        store.log_digest(job.id).await.unwrap(),
        Sha256Digest::of(b"hello world")
    );

    let out = OutputRecord {
        path: "bin/app".into(),
        sha256: Sha256Digest::of(b"app"),
        size: 3,
        executable: true,
    };
    store.insert_output(job.id, token, &out).await.unwrap();
    let dup = store.insert_output(job.id, token, &out).await.unwrap_err();
    assert!(matches!(dup, StoreError::OutputExists { .. }), "{dup}");
    assert_eq!(store.outputs(job.id, 1).await.unwrap(), vec![out]);

    let done = Completion {
        state: JobState::Failed,
        message: "step build exited 2".into(),
        exit_code: 2,
        finished_ms: 60,
        log_sha256: None,
        builder_id: None,
        provenance: None,
        retryable: false,
    };
    store.complete(job.id, token, &done, &RETRY).await.unwrap();
    let again = store
        .complete(job.id, token, &done, &RETRY)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::StaleLease {
                state: JobState::Failed,
                ..
            }
        ),
        "{again}"
    );
    let events = store.events_after(job.id, 4, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 6]);
    let record = store.job(job.id).await.unwrap();
    assert_eq!((record.state, record.exit_code), (JobState::Failed, 2));
    assert_eq!(record.finished_ms, Some(60));

    let missing = JobId::new(id(77));
    assert!(matches!(
        store.job(missing).await.unwrap_err(),
        StoreError::JobNotFound(_)
    ));
}

fn runner_n(n: u128, labels: &[&str]) -> RunnerRecord {
    RunnerRecord {
        id: RunnerId::new(id(100 + n)),
        name: format!("r{n}"),
        ..runner(labels)
    }
}

async fn with_runners(store: &Store) {
    for n in [1, 2] {
        store.insert_runner(&runner_n(n, &[])).await.unwrap();
    }
}

fn infra(now: i64) -> Completion {
    Completion {
        state: JobState::InfraFailed,
        message: "sandbox broke".into(),
        exit_code: 0,
        finished_ms: now,
        log_sha256: None,
        builder_id: None,
        provenance: None,
        retryable: true,
    }
}

async fn expired_lease_requeues_as_new_attempt_and_fences_the_old_runner(store: Store) {
    with_runners(&store).await;
    store.insert_job(&new_job(1, &[], 0)).await.unwrap();
    let old = LeaseToken::new(id(300));
    let (job, _) = store
        .lease_next(&runner_n(1, &[]), old, &grant(), &terms(10))
        .await
        .unwrap()
        .unwrap();
    // Renewed at 50: lapses at 150, not 110.
    assert!(!store.renew_lease(job.id, old, 50, 100).await.unwrap());
    assert!(store.expire_leases(140, &RETRY).await.unwrap().is_empty());
    let ended = store.expire_leases(150, &RETRY).await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (ended[0].state, ended[0].cause, ended[0].attempt),
        (JobState::Queued, ExpiryCause::LeaseExpired, 1)
    );
    // Backoff: 10 ms after the expiry.
    assert!(
        store
            .lease_next(
                &runner_n(2, &[]),
                LeaseToken::new(id(301)),
                &grant(),
                &terms(155)
            )
            .await
            .unwrap()
            .is_none()
    );
    let new = LeaseToken::new(id(302));
    let (again, _) = store
        .lease_next(&runner_n(2, &[]), new, &grant(), &terms(160))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempt), (job.id, 2));
    // The stale runner comes back: every call is refused.
    for err in [
        store.report(job.id, old, 170, vec![]).await.unwrap_err(),
        store.renew_lease(job.id, old, 170, 100).await.unwrap_err(),
        store
            .complete(job.id, old, &infra(170), &RETRY)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    }
    let attempts = store.attempts(job.id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].state, Some(JobState::InfraFailed));
    assert!(attempts[0].reason.contains("lease expired"), "{attempts:?}");
    assert_eq!(attempts[0].runner_id, runner_n(1, &[]).id);
    assert_eq!(
        (attempts[1].state, attempts[1].runner_id),
        (None, runner_n(2, &[]).id)
    );
    // Attempt 2 of 2 fails too: INFRA_FAILED for good, no third attempt.
    let (_, state) = store
        .complete(job.id, new, &infra(200), &RETRY)
        .await
        .unwrap();
    assert_eq!(state, JobState::InfraFailed);
    let record = store.job(job.id).await.unwrap();
    assert_eq!(record.state, JobState::InfraFailed);
    assert!(
        record.message.contains("no attempts left"),
        "{}",
        record.message
    );
}

async fn runner_infra_failure_is_retried_but_build_failure_is_not(store: Store) {
    with_runners(&store).await;
    store.insert_job(&new_job(1, &[], 0)).await.unwrap();
    let t1 = LeaseToken::new(id(310));
    let (job, _) = store
        .lease_next(&runner_n(1, &[]), t1, &grant(), &terms(1))
        .await
        .unwrap()
        .unwrap();
    let (_, state) = store.complete(job.id, t1, &infra(5), &RETRY).await.unwrap();
    assert_eq!(state, JobState::Queued);
    let t2 = LeaseToken::new(id(311));
    store
        .lease_next(&runner_n(1, &[]), t2, &grant(), &terms(20))
        .await
        .unwrap()
        .unwrap();
    let failed = Completion {
        state: JobState::Failed,
        exit_code: 1,
        ..infra(30)
    };
    let (_, state) = store.complete(job.id, t2, &failed, &RETRY).await.unwrap();
    assert_eq!(state, JobState::Failed);
    let states: Vec<_> = store
        .attempts(job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.state)
        .collect();
    assert_eq!(
        states,
        [Some(JobState::InfraFailed), Some(JobState::Failed)]
    );
}

async fn deadline_times_out_even_while_the_lease_is_renewed(store: Store) {
    with_runners(&store).await;
    store.insert_job(&new_job(1, &[], 0)).await.unwrap();
    let t = LeaseToken::new(id(320));
    let (job, _) = store
        .lease_next(&runner_n(1, &[]), t, &grant(), &terms(0))
        .await
        .unwrap()
        .unwrap();
    // timeout 1000 + grace 50.
    assert_eq!(job.deadline_ms, Some(1_050));
    for now in (50..1_050).step_by(50) {
        store.renew_lease(job.id, t, now, 100).await.unwrap();
        assert!(store.expire_leases(now, &RETRY).await.unwrap().is_empty());
    }
    let ended = store.expire_leases(1_050, &RETRY).await.unwrap();
    assert_eq!(
        (ended[0].state, ended[0].cause),
        (JobState::TimedOut, ExpiryCause::Deadline)
    );
    let err = store.renew_lease(job.id, t, 1_060, 100).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleLease {
                state: JobState::TimedOut,
                ..
            }
        ),
        "{err}"
    );
}

async fn cancel_queued_leased_and_terminal_jobs(store: Store) {
    with_runners(&store).await;
    store.insert_job(&new_job(1, &[], 0)).await.unwrap();
    store.insert_job(&new_job(2, &[], 1)).await.unwrap();
    let (state, seq) = store
        .request_cancel(JobId::new(id(2)), 5, "no longer needed")
        .await
        .unwrap();
    assert_eq!(state, JobState::Cancelled);
    assert!(seq.is_some());
    let t = LeaseToken::new(id(330));
    let (job, _) = store
        .lease_next(&runner_n(1, &[]), t, &grant(), &terms(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, JobId::new(id(1)));
    let (state, seq) = store.request_cancel(job.id, 11, "stop").await.unwrap();
    assert_eq!((state, seq), (JobState::Leased, None));
    assert!(store.renew_lease(job.id, t, 12, 100).await.unwrap());
    assert!(
        store
            .report(job.id, t, 13, vec![])
            .await
            .unwrap()
            .cancel_requested
    );
    // The runner vanishes after the cancel: the lapse ends it CANCELLED, not re-queued.
    let ended = store.expire_leases(500, &RETRY).await.unwrap();
    assert_eq!(ended[0].state, JobState::Cancelled);
    let (state, seq) = store.request_cancel(job.id, 600, "again").await.unwrap();
    assert_eq!((state, seq), (JobState::Cancelled, None));
}

async fn idempotency_key_returns_the_same_job_or_conflicts(store: Store) {
    with_runners(&store).await;
    let mut a = new_job(1, &[], 0);
    a.idempotency_key = Some("ci-run-42".into());
    assert!(matches!(
        store.insert_job(&a).await.unwrap(),
        Submitted::New(_)
    ));
    let mut again = new_job(2, &[], 5);
    again.idempotency_key = Some("ci-run-42".into());
    assert_eq!(
        store.insert_job(&again).await.unwrap(),
        Submitted::Existing(a.id)
    );
    again.spec_json = br#"{"job":{"name":"other"}}"#.to_vec();
    let err = store.insert_job(&again).await.unwrap_err();
    assert!(
        matches!(err, StoreError::IdempotencyConflict { job } if job == a.id),
        "{err}"
    );
    assert!(matches!(
        store.job(again.id).await.unwrap_err(),
        StoreError::JobNotFound(_)
    ));
}

async fn queue_order_and_tenant_limits(store: Store) {
    with_runners(&store).await;
    // queue_key = created - priority * aging: job 3 (high priority, late) first, then FIFO.
    let mut high = new_job(3, &[], 30);
    high.priority = 5;
    high.queue_key = 30 - 5 * 100;
    store.insert_job(&new_job(1, &[], 10)).await.unwrap();
    let mut same_tenant = new_job(2, &[], 20);
    same_tenant.tenant = "t1".into();
    store.insert_job(&same_tenant).await.unwrap();
    store.insert_job(&high).await.unwrap();
    store.insert_job(&new_job(4, &[], 40)).await.unwrap();
    let limited = LeaseTerms {
        tenant_limit: 1,
        ..terms(50)
    };
    let mut order = Vec::new();
    for n in 0..4u128 {
        if let Some((job, _)) = store
            .lease_next(
                &runner_n(1, &[]),
                LeaseToken::new(id(400 + n)),
                &grant(),
                &limited,
            )
            .await
            .unwrap()
        {
            order.push(job.id);
        }
    }
    // Job 2 shares tenant t1 with the running job 1, so it waits.
    assert_eq!(
        order,
        [3, 1, 4].map(|n| JobId::new(id(n))).to_vec(),
        "priority first, FIFO, tenant limit"
    );
}

async fn registrations_sync_create_revoke_and_list(store: Store) {
    let (d1, d2, d3) = (
        TokenDigest::of("s1"),
        TokenDigest::of("s2"),
        TokenDigest::of("s3"),
    );
    let sync = |name: &'static str, d: TokenDigest, now: i64| {
        let store = store.clone();
        async move { store.sync_registration(name, &d, now).await.unwrap() }
    };
    assert_eq!(sync("default", d1, 1).await, RegistrationSync::Inserted);
    assert_eq!(sync("default", d1, 2).await, RegistrationSync::Unchanged);
    let taken = store.create_registration("default", &d2, 3).await;
    assert!(
        matches!(taken, Err(StoreError::RegistrationExists(_))),
        "{taken:?}"
    );
    store.create_registration("pool", &d2, 4).await.unwrap();
    let list = store.registrations().await.unwrap();
    assert_eq!(
        list.iter()
            .map(|r| (r.name.as_str(), r.secret_sha256, r.created_ms, r.revoked_ms))
            .collect::<Vec<_>>(),
        [("default", d1, 1, None), ("pool", d2, 4, None)]
    );
    assert_eq!(
        store.active_registration(&d2).await.unwrap().as_deref(),
        Some("pool")
    );

    assert!(store.revoke_registration("pool", 5).await.unwrap());
    assert!(!store.revoke_registration("pool", 6).await.unwrap());
    let missing = store.revoke_registration("nope", 6).await;
    assert!(
        matches!(missing, Err(StoreError::RegistrationNotFound(_))),
        "{missing:?}"
    );
    assert_eq!(store.active_registration(&d2).await.unwrap(), None);
    assert_eq!(store.registrations().await.unwrap()[1].revoked_ms, Some(5));
    // A revoked name is not reused, and the same digest from the config keeps it revoked...
    let reused = store.create_registration("pool", &d3, 7).await;
    assert!(
        matches!(reused, Err(StoreError::RegistrationExists(_))),
        "{reused:?}"
    );
    assert_eq!(sync("pool", d2, 8).await, RegistrationSync::Unchanged);
    assert_eq!(store.active_registration(&d2).await.unwrap(), None);
    // ...while a new digest replaces it and makes it active again.
    assert_eq!(sync("pool", d3, 9).await, RegistrationSync::Replaced);
    assert_eq!(
        store.active_registration(&d3).await.unwrap().as_deref(),
        Some("pool")
    );
    assert_eq!(store.registrations().await.unwrap()[1].revoked_ms, None);
}

fn runner_token(
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

async fn runner_tokens_expire_and_die_with_their_registration(store: Store) {
    with_runners(&store).await;
    store
        .create_registration("pool", &TokenDigest::of("p"), 0)
        .await
        .unwrap();
    store
        .create_registration("other", &TokenDigest::of("o"), 0)
        .await
        .unwrap();
    assert!(
        store
            .insert_runner_token(&runner_token("t1", 1, "pool", 100))
            .await
            .unwrap()
    );
    let who = store
        .runner_for_token(&TokenDigest::of("t1"), 99)
        .await
        .unwrap();
    assert_eq!(
        who,
        Some(RunnerIdentity {
            runner_id: RunnerId::new(id(101)),
            registration: "pool".into()
        })
    );
    assert_eq!(
        store
            .runner_for_token(&TokenDigest::of("t1"), 100)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .runner_for_token(&TokenDigest::of("nope"), 1)
            .await
            .unwrap(),
        None
    );

    // Revoking the registration ends its tokens, and they stay dead if it comes back.
    assert!(
        store
            .insert_runner_token(&runner_token("t2", 1, "pool", 500))
            .await
            .unwrap()
    );
    store.revoke_registration("pool", 10).await.unwrap();
    assert_eq!(
        store
            .runner_for_token(&TokenDigest::of("t2"), 20)
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .insert_runner_token(&runner_token("t3", 1, "pool", 500))
            .await
            .unwrap()
    );
    store
        .sync_registration("pool", &TokenDigest::of("p2"), 30)
        .await
        .unwrap();
    assert_eq!(
        store
            .runner_for_token(&TokenDigest::of("t2"), 40)
            .await
            .unwrap(),
        None
    );

    // The sweep deletes expired tokens only.
    assert!(
        store
            .insert_runner_token(&runner_token("o1", 2, "other", 50))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_runner_token(&runner_token("o2", 2, "other", 1_000))
            .await
            .unwrap()
    );
    assert_eq!(
        store.delete_expired_runner_tokens(500).await.unwrap(),
        1,
        "o1 (t1 went with its registration)"
    );
    assert!(
        store
            .runner_for_token(&TokenDigest::of("o2"), 600)
            .await
            .unwrap()
            .is_some()
    );
}

async fn job_token_is_bound_to_job_runner_and_deadline(store: Store) {
    with_runners(&store).await;
    store.insert_job(&new_job(1, &[], 0)).await.unwrap();
    store.insert_job(&new_job(2, &[], 1)).await.unwrap();
    let (r1, r2) = (RunnerId::new(id(101)), RunnerId::new(id(102)));
    let (job, _) = store
        .lease_next(
            &runner_n(1, &[]),
            LeaseToken::new(id(300)),
            &grant(),
            &terms(10),
        )
        .await
        .unwrap()
        .unwrap();
    // Deadline: 10 + timeout 1000 + grace 50; the job token lasts 30 more.
    assert_eq!(job.deadline_ms, Some(1_060));
    assert_eq!(job.job_token_expires_ms, Some(1_090));
    let digest = grant().token_sha256;
    let valid = |job: JobId, d: TokenDigest, runner: RunnerId, now: i64| {
        let store = store.clone();
        async move { store.job_token_valid(job, &d, runner, now).await.unwrap() }
    };
    assert!(valid(job.id, digest, r1, 50).await);
    assert!(valid(job.id, digest, r1, 1_089).await);
    assert!(!valid(job.id, digest, r1, 1_090).await, "expired");
    assert!(
        !valid(job.id, TokenDigest::of("other"), r1, 50).await,
        "wrong token"
    );
    assert!(!valid(job.id, digest, r2, 50).await, "another runner");
    assert!(
        !valid(JobId::new(id(2)), digest, r1, 50).await,
        "another job"
    );
    // When the lease ends the token is cleared with the lease token.
    store.expire_leases(110, &RETRY).await.unwrap();
    let record = store.job(job.id).await.unwrap();
    assert_eq!(
        (record.lease_token, record.job_token_expires_ms),
        (None, None)
    );
    assert!(!valid(job.id, digest, r1, 120).await, "lease ended");
}

both_backends!(
    registrations_sync_create_revoke_and_list,
    runner_tokens_expire_and_die_with_their_registration,
    job_token_is_bound_to_job_runner_and_deadline,
    lease_respects_labels_and_order_and_fences,
    expired_lease_requeues_as_new_attempt_and_fences_the_old_runner,
    runner_infra_failure_is_retried_but_build_failure_is_not,
    deadline_times_out_even_while_the_lease_is_renewed,
    cancel_queued_leased_and_terminal_jobs,
    idempotency_key_returns_the_same_job_or_conflicts,
    queue_order_and_tenant_limits,
);
