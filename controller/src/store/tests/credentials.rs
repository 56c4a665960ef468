//! Runner credentials: registrations, runner tokens, job tokens.

use super::*;

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
);
