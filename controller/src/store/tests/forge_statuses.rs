//! Commit statuses owed to forges, and the admission columns of a job: written at insert,
//! advanced by compare-and-set, due again once the job ends.

use super::*;

async fn forge_statuses_are_due_pending_then_final(store: Store) {
    let mut job = new_job(1, &[], 10);
    job.forge_status = true;
    job.idempotency_key = Some("forge:gh:abc".into());
    job.admission_json = Some(r#"{"decision":"allow"}"#.into());
    job.signer_keyid = Some("k1".into());
    store.insert_job(&job).await.unwrap();
    let mut plain = new_job(2, &[], 11);
    plain.forge_status = false;
    store.insert_job(&plain).await.unwrap();

    let record = store.job(job.id).await.unwrap();
    assert_eq!(
        record.admission_json.as_deref(),
        Some(r#"{"decision":"allow"}"#)
    );
    assert_eq!(record.signer_keyid.as_deref(), Some("k1"));
    assert_eq!(
        store
            .job_with_idempotency_key("forge:gh:abc")
            .await
            .unwrap(),
        Some(job.id)
    );
    assert_eq!(
        store.job_with_idempotency_key("forge:gh:x").await.unwrap(),
        None
    );

    let due = store.due_forge_statuses(10).await.unwrap();
    assert_eq!(due.len(), 1, "only the forge's job owes statuses");
    assert_eq!(
        (due[0].id, due[0].stage),
        (job.id, ForgeStatusStage::Queued)
    );
    assert!(
        store
            .advance_forge_status(job.id, ForgeStatusStage::Queued, ForgeStatusStage::Pending)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_forge_status(job.id, ForgeStatusStage::Queued, ForgeStatusStage::Pending)
            .await
            .unwrap(),
        "another replica's second advance is a no-op"
    );
    assert!(
        store.due_forge_statuses(10).await.unwrap().is_empty(),
        "pending until it ends"
    );

    store.request_cancel(job.id, 20, "stop").await.unwrap();
    let due = store.due_forge_statuses(10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].stage, due[0].state),
        (ForgeStatusStage::Pending, JobState::Cancelled)
    );
    assert!(
        store
            .advance_forge_status(job.id, ForgeStatusStage::Pending, ForgeStatusStage::Done)
            .await
            .unwrap()
    );
    assert!(store.due_forge_statuses(10).await.unwrap().is_empty());
}

both_backends!(forge_statuses_are_due_pending_then_final);
