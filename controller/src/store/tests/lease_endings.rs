//! How an attempt ends without a clean completion: expired leases, retried infrastructure
//! failures, deadlines and cancels.

use super::*;

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

both_backends!(
    expired_lease_requeues_as_new_attempt_and_fences_the_old_runner,
    runner_infra_failure_is_retried_but_build_failure_is_not,
    deadline_times_out_even_while_the_lease_is_renewed,
    cancel_queued_leased_and_terminal_jobs,
);
