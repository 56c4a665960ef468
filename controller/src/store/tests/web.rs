//! What the web pages read: recent jobs with paging, runner activity, step events and the
//! log tail, and web sessions with expiry.

use super::*;

async fn recent_jobs_are_newest_first_and_page_by_creation_time(store: Store) {
    assert!(store.recent_jobs(10, None).await.unwrap().is_empty());
    for (n, created) in [(1, 10), (2, 30), (3, 20), (4, 40)] {
        store.insert_job(&new_job(n, &[], created)).await.unwrap();
    }
    let names = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.recent_jobs(10, None).await.unwrap()),
        ["job4", "job2", "job3", "job1"]
    );
    assert_eq!(
        names(store.recent_jobs(2, None).await.unwrap()),
        ["job4", "job2"]
    );
    // The next page starts below the last one shown.
    assert_eq!(
        names(store.recent_jobs(2, Some(30)).await.unwrap()),
        ["job3", "job1"]
    );
    assert!(store.recent_jobs(2, Some(10)).await.unwrap().is_empty());
    let first = &store.recent_jobs(1, None).await.unwrap()[0];
    assert_eq!(first, &store.job(first.id).await.unwrap(), "whole records");
}

fn step(index: u32, name: &str, phase: pb::step_event::Phase, exit_code: i32) -> EventKind {
    EventKind::Step(pb::StepEvent {
        step_index: index,
        step_name: name.into(),
        phase: phase as i32,
        exit_code,
        duration_ms: 5,
    })
}

async fn step_events_and_the_log_tail_stop_at_a_sequence_number(store: Store) {
    use pb::step_event::Phase;
    store.insert_job(&new_job(1, &[], 10)).await.unwrap();
    let job = JobId::new(id(1));
    assert_eq!(store.last_event_seq(job).await.unwrap(), 1, "QUEUED");
    assert_eq!(
        store.log_tail(job, 1, 16).await.unwrap(),
        LogTail::default()
    );
    let token = LeaseToken::new(id(200));
    store
        .lease_next(&runner(&[]), token, &grant(), &terms(20))
        .await
        .unwrap()
        .unwrap();
    let seq = store
        .report(
            job,
            token,
            30,
            vec![
                step(0, "build", Phase::Started, 0),
                log(b"0123456789"),
                log(b"abcdef"),
                step(0, "build", Phase::Finished, 0),
            ],
        )
        .await
        .unwrap()
        .seq;
    assert_eq!(store.last_event_seq(job).await.unwrap(), seq);
    let steps = store.step_events(job, seq).await.unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| (s.step_name.as_str(), s.phase))
            .collect::<Vec<_>>(),
        [
            ("build", Phase::Started as i32),
            ("build", Phase::Finished as i32)
        ]
    );
    let whole = store.log_tail(job, seq, 64).await.unwrap();
    assert_eq!(
        (whole.data.as_slice(), whole.truncated),
        (&b"0123456789abcdef"[..], false)
    );
    let exact = store.log_tail(job, seq, 16).await.unwrap();
    assert_eq!((exact.data.len(), exact.truncated), (16, false));
    let cut = store.log_tail(job, seq, 8).await.unwrap();
    assert_eq!(
        (cut.data.as_slice(), cut.truncated),
        (&b"89abcdef"[..], true)
    );
    let last_chunk = store.log_tail(job, seq, 6).await.unwrap();
    assert_eq!(
        (last_chunk.data.as_slice(), last_chunk.truncated),
        (&b"abcdef"[..], true)
    );
    // Events after `up_to_seq` are left for the live tail to fetch.
    let before_logs = seq - 3;
    assert_eq!(store.step_events(job, before_logs).await.unwrap().len(), 1);
    assert_eq!(
        store.log_tail(job, before_logs, 64).await.unwrap(),
        LogTail::default()
    );
}

async fn runner_activity_shows_tokens_leases_and_held_jobs(store: Store) {
    with_runners(&store).await;
    store.insert_job(&new_job(1, &[], 10)).await.unwrap();
    store.insert_job(&new_job(2, &[], 11)).await.unwrap();
    store
        .sync_registration("default", &TokenDigest::of("reg"), 1)
        .await
        .unwrap();
    assert!(
        store
            .insert_runner_token(&runner_token("rt", 1, "default", 500))
            .await
            .unwrap()
    );
    let busy = runner_n(1, &[]);
    store
        .lease_next(&busy, LeaseToken::new(id(200)), &grant(), &terms(20))
        .await
        .unwrap()
        .unwrap();
    let activity = store.runner_activity(10).await.unwrap();
    assert_eq!(activity.len(), 2);
    let one = activity.iter().find(|a| a.runner.id == busy.id).unwrap();
    assert_eq!(one.runner.name, "r1");
    assert_eq!(
        (one.last_leased_ms, one.token_expires_ms),
        (Some(20), Some(500))
    );
    assert_eq!(
        one.jobs,
        [HeldJob {
            id: JobId::new(id(1)),
            name: "job1".into(),
            state: JobState::Leased
        }]
    );
    let idle = activity.iter().find(|a| a.runner.id != busy.id).unwrap();
    assert_eq!((idle.last_leased_ms, idle.jobs.len()), (None, 0));
    assert_eq!(idle.token_expires_ms, None);
    assert_eq!(store.runner_activity(1).await.unwrap().len(), 1);
}

async fn web_sessions_expire_and_are_deleted(store: Store) {
    let session = |secret: &str, expires_ms: i64| WebSessionRecord {
        id_sha256: TokenDigest::of(secret),
        client: "admin".into(),
        csrf_token: format!("csrf-{secret}"),
        created_ms: 1,
        expires_ms,
    };
    store.insert_web_session(&session("a", 100)).await.unwrap();
    store.insert_web_session(&session("b", 200)).await.unwrap();
    let found = store
        .web_session(&TokenDigest::of("a"), 99)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, session("a", 100));
    assert!(!format!("{found:?}").contains("csrf-a"), "{found:?}");
    assert_eq!(
        store.web_session(&TokenDigest::of("a"), 100).await.unwrap(),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        store.web_session(&TokenDigest::of("c"), 1).await.unwrap(),
        None
    );
    assert_eq!(store.delete_expired_web_sessions(150).await.unwrap(), 1);
    assert!(
        store
            .delete_web_session(&TokenDigest::of("b"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_web_session(&TokenDigest::of("b"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.web_session(&TokenDigest::of("b"), 1).await.unwrap(),
        None
    );
}

both_backends!(
    recent_jobs_are_newest_first_and_page_by_creation_time,
    step_events_and_the_log_tail_stop_at_a_sequence_number,
    runner_activity_shows_tokens_leases_and_held_jobs,
    web_sessions_expire_and_are_deleted,
);
