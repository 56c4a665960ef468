//! Submitting and leasing: labels, queue order, fencing, idempotency keys, tenant limits.

use super::*;

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
        // As for a job its vulnerability gate failed: an SBOM and no provenance.
        sbom: Some(crate::store::StoredSbom {
            spdx_json: "{\"spdxVersion\":\"SPDX-2.3\"}".into(),
            cyclonedx_json: "{\"specVersion\":\"1.6\"}".into(),
            envelope_json: "{\"payload\":\"\"}\n".into(),
            keyid: "k".into(),
            public_key_pem: "pem".into(),
        }),
        trace: Some(crate::store::StoredTrace {
            envelope_json: "{\"payload\":\"\"}\n".into(),
            hermeticity: "hermetic".into(),
        }),
        retryable: false,
    };
    assert_eq!(store.sbom(job.id).await.unwrap(), None);
    store.complete(job.id, token, &done, &RETRY).await.unwrap();
    assert_eq!(store.sbom(job.id).await.unwrap(), done.sbom);
    assert_eq!(store.trace(job.id).await.unwrap(), done.trace);
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

both_backends!(
    lease_respects_labels_and_order_and_fences,
    idempotency_key_returns_the_same_job_or_conflicts,
    queue_order_and_tenant_limits,
);
