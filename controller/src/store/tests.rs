use super::*;
use airlock_proto::v1 as pb;
use uuid::Uuid;

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
    }
}

fn runner(labels: &[&str]) -> RunnerRecord {
    RunnerRecord {
        id: RunnerId::new(id(100)),
        name: "r".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        version: "0.1.0".into(),
        registered_ms: 1,
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
    assert_eq!(store.schema_version().await.unwrap(), 1);
    let row = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>(0).unwrap(), "wal");
    store.close().await;
    let again = Store::open(&path).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 1);
    sqlx::query("PRAGMA user_version = 99")
        .execute(&again.pool)
        .await
        .unwrap();
    again.close().await;
    let err = Store::open(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn lease_respects_labels_and_order_and_fences() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).await.unwrap();
    store.insert_job(&new_job(1, &["gpu"], 10)).await.unwrap();
    store.insert_job(&new_job(2, &["linux"], 20)).await.unwrap();
    store.insert_job(&new_job(3, &[], 30)).await.unwrap();

    let linux = runner(&["linux"]);
    let token = LeaseToken::new(id(200));
    let (job, seq) = store.lease_next(&linux, token, 40).await.unwrap().unwrap();
    assert_eq!(job.id, JobId::new(id(2)));
    assert_eq!((job.state, job.attempt, seq), (JobState::Leased, 1, 2));
    assert_eq!(job.lease_token, Some(token));
    let (next, _) = store
        .lease_next(&linux, LeaseToken::new(id(201)), 41)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, JobId::new(id(3)));
    assert!(
        store
            .lease_next(&linux, LeaseToken::new(id(202)), 42)
            .await
            .unwrap()
            .is_none()
    );

    let stale = LeaseToken::new(id(999));
    let err = store.report(job.id, stale, 50, vec![]).await.unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    let seq = store
        .report(job.id, token, 50, vec![log(b"hello "), log(b"world")])
        .await
        .unwrap();
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
    };
    store.complete(job.id, token, &done).await.unwrap();
    let again = store.complete(job.id, token, &done).await.unwrap_err();
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
