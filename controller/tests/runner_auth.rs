//! Runner credentials over real gRPC on loopback with a real SQLite file: registration
//! secrets, runner tokens (expiry on an injected clock, renewal, revocation while the
//! controller runs) and job tokens (bound to one job, one runner, the job's deadline plus
//! grace). Every refusal is asserted by status code, and no error message repeats a secret.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::fmt::Debug;
use std::time::Duration;

use airlock_controller::auth::registrations::Registrations;
use airlock_controller::ids::RunnerId;
use airlock_controller::scheduling::HumanDuration;
use airlock_controller::store::Store;
use airlock_proto::auth::BearerAuth;
use airlock_proto::v1 as pb;
use common::*;
use tonic::{Code, Status};

/// Asserts that `r` failed with `code` and that its message contains none of `secrets`.
fn refused<T: Debug>(r: Result<T, Status>, code: Code, secrets: &[&str]) -> Status {
    let err = r.unwrap_err();
    assert_eq!(err.code(), code, "{err:?}");
    for secret in secrets {
        assert!(
            !err.message().contains(secret),
            "the message repeats a secret: {}",
            err.message()
        );
    }
    err
}

/// Bearer `token` (plus `job_token`) as client credentials.
fn creds(token: &str, job_token: Option<&str>) -> Option<BearerAuth> {
    let auth = BearerAuth::new(token).unwrap();
    Some(match job_token {
        Some(jt) => auth.with_job_token(jt).unwrap(),
        None => auth,
    })
}

fn register_request() -> pb::RegisterRunnerRequest {
    pb::RegisterRunnerRequest {
        name: "auth-test".into(),
        labels: vec![],
        version: "0.1.0-runner".into(),
    }
}

/// Registers a runner with `secret`; returns the whole response (id, token, expiry).
async fn register_with(runners: &Runners, secret: &str) -> pb::RegisterRunnerResponse {
    runners
        .client_with(creds(secret, None))
        .register_runner(register_request())
        .await
        .unwrap()
        .into_inner()
}

fn acquire_request(runner_id: &str) -> pb::AcquireJobRequest {
    pb::AcquireJobRequest {
        runner_id: runner_id.into(),
        wait_ms: 0,
    }
}

fn heartbeat(lease: &pb::Lease) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest {
        job_id: lease.job_id.clone(),
        lease_token: lease.lease_token.clone(),
        wait_ms: 0,
    }
}

/// Submits `n` jobs (a trusted profile, declaring the `sts.example` audience).
async fn submit(tc: &TestController, n: usize) {
    let mut jobs = tc.jobs().await;
    let source = upload_source(&mut jobs, b"auth source").await;
    let mut spec: serde_json::Value = serde_json::from_slice(&spec_json(&source, &[])).unwrap();
    spec["oidc"] = serde_json::json!({"audiences": ["sts.example"]});
    for _ in 0..n {
        jobs.submit_job(pb::SubmitJobRequest {
            spec_json: serde_json::to_vec(&spec).unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

/// A second handle on the running controller's SQLite file, as the CLI opens it.
async fn registrations(tc: &TestController) -> (Store, Registrations) {
    let store = Store::open(&tc.config.database_path()).await.unwrap();
    let regs = Registrations::new(store.clone(), tc.clock.clone());
    (store, regs)
}

#[tokio::test]
async fn runner_calls_need_a_valid_runner_token() {
    let tc = TestController::start().await;
    submit(&tc, 1).await;
    let mut runners = tc.runners().await;
    let runner_id = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.unwrap();
    let fake = "airlock-rt_AAAAnotAtokenAAAA";
    let wrong = "wrong-token-for-tests";
    let secrets = [RUNNER_TOKEN, fake, wrong, lease.job_token.as_str()];
    let bad = [
        ("no token", None),
        ("a wrong token", creds(wrong, None)),
        ("an unknown runner token", creds(fake, None)),
        ("the registration secret", creds(RUNNER_TOKEN, None)),
        ("the job token as bearer", creds(&lease.job_token, None)),
    ];
    for (what, c) in bad {
        let mut client = runners.client_with(c.clone());
        let err = refused(
            client.acquire_job(acquire_request(&runner_id)).await,
            Code::Unauthenticated,
            &secrets,
        );
        assert!(err.message().contains("runner token"), "{what}: {err:?}");
        refused(
            client
                .renew_runner_token(pb::RenewRunnerTokenRequest {
                    runner_id: runner_id.clone(),
                })
                .await,
            Code::Unauthenticated,
            &secrets,
        );
        // A valid job token does not stand in for the runner token.
        let mut with_job =
            runners.client_with(c.map(|a| a.with_job_token(&lease.job_token).unwrap()));
        refused(
            with_job.heartbeat(heartbeat(&lease)).await,
            Code::Unauthenticated,
            &secrets,
        );
    }
    let err = refused(
        runners
            .client_with(creds(&lease.job_token, None))
            .acquire_job(acquire_request(&runner_id))
            .await,
        Code::Unauthenticated,
        &secrets,
    );
    assert!(err.message().contains("x-airlock-job-token"), "{err:?}");
    // With the right credentials, the same calls go through.
    runners.heartbeat(heartbeat(&lease)).await.unwrap();
    tc.stop().await;
}

#[tokio::test]
async fn register_needs_the_secret_of_an_active_registration() {
    let tc = TestController::start().await;
    let (store, regs) = registrations(&tc).await;
    let pool = regs.create("pool").await.unwrap();
    assert!(pool.expose().starts_with("airlock-reg_"));
    let runners = tc.runners().await;

    let unknown = "airlock-reg_unknownsecretforthetest";
    let err = refused(
        runners
            .client_with(creds(unknown, None))
            .register_runner(register_request())
            .await,
        Code::Unauthenticated,
        &[unknown],
    );
    assert!(err.message().contains("registration secret"), "{err:?}");
    let err = refused(
        runners
            .client_with(None)
            .register_runner(register_request())
            .await,
        Code::Unauthenticated,
        &[],
    );
    assert!(err.message().contains("authorization"), "{err:?}");

    // The pool's secret registers a runner, recorded under the pool's name.
    let registered = register_with(&runners, pool.expose()).await;
    assert!(registered.runner_token.starts_with("airlock-rt_"));
    assert_eq!(
        registered.runner_token_expires_at_unix,
        START_MS / 1000 + 600,
        "the default TTL on the injected clock"
    );
    let id = RunnerId::parse("runner_id", &registered.runner_id).unwrap();
    assert_eq!(store.runner(id).await.unwrap().registration, "pool");
    // A runner token is no registration secret.
    refused(
        runners
            .client_with(creds(&registered.runner_token, None))
            .register_runner(register_request())
            .await,
        Code::Unauthenticated,
        &[&registered.runner_token],
    );

    // Revoked: the secret registers nothing any more; `default` is unaffected.
    assert!(regs.revoke("pool").await.unwrap());
    refused(
        runners
            .client_with(creds(pool.expose(), None))
            .register_runner(register_request())
            .await,
        Code::Unauthenticated,
        &[pool.expose()],
    );
    register_with(&runners, RUNNER_TOKEN).await;
    let listed: Vec<_> = regs
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.revoked_ms.is_some()))
        .collect();
    assert_eq!(
        listed,
        [("default".to_owned(), false), ("pool".to_owned(), true)]
    );
    regs.close().await;
    tc.stop().await;
}

#[tokio::test]
async fn revoking_a_registration_ends_its_runner_tokens_on_the_next_call() {
    let tc = TestController::start().await;
    let (_store, regs) = registrations(&tc).await;
    let pool = regs.create("pool").await.unwrap();
    submit(&tc, 2).await;
    let mut runners = tc.runners_with(Some(pool.expose())).await;
    let runner_id = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.unwrap();
    runners.heartbeat(heartbeat(&lease)).await.unwrap();

    // Revoked while the controller runs: the very next call is refused.
    regs.revoke("pool").await.unwrap();
    let secrets = [pool.expose(), lease.job_token.as_str()];
    refused(
        runners
            .client_with(Some(runners.runner_auth(&runner_id)))
            .acquire_job(acquire_request(&runner_id))
            .await,
        Code::Unauthenticated,
        &secrets,
    );
    refused(
        runners.heartbeat(heartbeat(&lease)).await,
        Code::Unauthenticated,
        &secrets,
    );
    refused(
        runners
            .complete_job(complete_request(&lease, pb::Outcome::Failed, vec![]))
            .await,
        Code::Unauthenticated,
        &secrets,
    );
    refused(
        runners
            .renew_runner_token(pb::RenewRunnerTokenRequest {
                runner_id: runner_id.clone(),
            })
            .await,
        Code::Unauthenticated,
        &secrets,
    );
    // Runners of other registrations carry on.
    let mut others = tc.runners().await;
    let other = register(&mut others, &[]).await;
    assert!(acquire(&mut others, &other, 0).await.is_some());
    regs.close().await;
    tc.stop().await;
}

#[tokio::test]
async fn runner_tokens_expire_and_renewal_gives_a_working_token() {
    let tc = TestController::start().await;
    let runners = tc.runners().await;
    let first = register_with(&runners, RUNNER_TOKEN).await;
    let other = register_with(&runners, RUNNER_TOKEN).await;
    let old = first.runner_token.clone();
    // The client a runner keeps: renewal swaps the token in place.
    let auth = BearerAuth::new(&old).unwrap();
    let mut client = runners.client_with(Some(auth.clone()));

    tc.clock.advance(Duration::from_secs(500));
    let renewed = client
        .renew_runner_token(pb::RenewRunnerTokenRequest {
            runner_id: first.runner_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(renewed.runner_token.starts_with("airlock-rt_"));
    assert_ne!(renewed.runner_token, old);
    assert_eq!(
        renewed.runner_token_expires_at_unix,
        START_MS / 1000 + 500 + 600
    );
    // Only for the runner the token belongs to.
    refused(
        client
            .renew_runner_token(pb::RenewRunnerTokenRequest {
                runner_id: other.runner_id.clone(),
            })
            .await,
        Code::PermissionDenied,
        &[&old],
    );
    refused(
        client.acquire_job(acquire_request(&other.runner_id)).await,
        Code::PermissionDenied,
        &[&old],
    );
    // The old token still works until its own expiry...
    client
        .acquire_job(acquire_request(&first.runner_id))
        .await
        .unwrap();

    // ...and not after it.
    tc.clock.advance(Duration::from_secs(101));
    let secrets = [old.as_str(), renewed.runner_token.as_str()];
    refused(
        client.acquire_job(acquire_request(&first.runner_id)).await,
        Code::Unauthenticated,
        &secrets,
    );
    refused(
        client
            .renew_runner_token(pb::RenewRunnerTokenRequest {
                runner_id: first.runner_id.clone(),
            })
            .await,
        Code::Unauthenticated,
        &secrets,
    );
    auth.set_token(&renewed.runner_token).unwrap();
    client
        .acquire_job(acquire_request(&first.runner_id))
        .await
        .unwrap();
    tc.stop().await;
}

#[tokio::test]
async fn a_job_token_covers_its_own_job_only() {
    let tc = TestController::start().await;
    submit(&tc, 2).await;
    let mut runners = tc.runners().await;
    let runner_id = register(&mut runners, &[]).await;
    let a = acquire(&mut runners, &runner_id, 0).await.unwrap();
    let b = acquire(&mut runners, &runner_id, 0).await.unwrap();
    assert_ne!(a.job_id, b.job_id);
    assert_ne!(a.job_token, b.job_token);
    let secrets = [a.job_token.as_str(), b.job_token.as_str()];

    // A's job token on calls about B (with B's lease token): refused, every call.
    let mut with_a = runners.with_creds(Some(runners.job_auth(&a)));
    refused(
        with_a.heartbeat(heartbeat(&b)).await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        with_a
            .report_events(pb::ReportEventsRequest {
                job_id: b.job_id.clone(),
                lease_token: b.lease_token.clone(),
                events: vec![log_event(0, b"x")],
            })
            .await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        with_a
            .download_source(pb::DownloadSourceRequest {
                job_id: b.job_id.clone(),
                lease_token: b.lease_token.clone(),
            })
            .await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        upload_output(&mut with_a, &b).await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        with_a
            .mint_build_token(pb::MintBuildTokenRequest {
                job_id: b.job_id.clone(),
                lease_token: b.lease_token.clone(),
                audience: "sts.example".into(),
                lifetime_seconds: 0,
            })
            .await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        with_a
            .complete_job(complete_request(&b, pb::Outcome::Failed, vec![]))
            .await,
        Code::PermissionDenied,
        &secrets,
    );
    // No job token at all: refused, and the message says what to send.
    let mut bare = runners.with_creds(Some(runners.runner_auth(&runner_id)));
    let err = refused(
        bare.heartbeat(heartbeat(&a)).await,
        Code::PermissionDenied,
        &secrets,
    );
    assert!(err.message().contains("x-airlock-job-token"), "{err:?}");

    // Each job token works for its own job.
    with_a.heartbeat(heartbeat(&a)).await.unwrap();
    let minted = with_a
        .mint_build_token(pb::MintBuildTokenRequest {
            job_id: a.job_id.clone(),
            lease_token: a.lease_token.clone(),
            audience: "sts.example".into(),
            lifetime_seconds: 0,
        })
        .await
        .unwrap();
    assert!(!minted.into_inner().token.is_empty());
    runners.job(&b).heartbeat(heartbeat(&b)).await.unwrap();
    tc.stop().await;
}

/// Uploads one small output for `lease` with the credentials `runners` carries.
async fn upload_output(
    runners: &mut Runners,
    lease: &pb::Lease,
) -> Result<pb::UploadOutputResponse, Status> {
    let data = b"out";
    let digest = airlock_attest::Sha256Digest::of(data).hex();
    upload_output_claiming(runners, lease, "hello", data, &digest, 3).await
}

#[tokio::test]
async fn a_job_token_presented_by_another_runner_is_refused() {
    let tc = TestController::start().await;
    submit(&tc, 1).await;
    let mut runners = tc.runners().await;
    let first = register(&mut runners, &[]).await;
    let second = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &first, 0).await.unwrap();
    // The second runner's own (valid) runner token with the first runner's job token.
    let stolen = runners
        .runner_auth(&second)
        .with_job_token(&lease.job_token)
        .unwrap();
    let mut thief = runners.with_creds(Some(stolen));
    let secrets = [lease.job_token.as_str()];
    refused(
        thief.heartbeat(heartbeat(&lease)).await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        upload_output(&mut thief, &lease).await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        thief
            .complete_job(complete_request(&lease, pb::Outcome::Failed, vec![]))
            .await,
        Code::PermissionDenied,
        &secrets,
    );
    runners.heartbeat(heartbeat(&lease)).await.unwrap();
    tc.stop().await;
}

#[tokio::test]
async fn a_job_token_ends_at_the_deadline_plus_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = airlock_attest::write_keypair(dir.path(), "provenance").unwrap();
    let mut config = airlock_controller::ControllerConfig::local(
        dir.path().join("state"),
        key,
        API_TOKEN,
        RUNNER_TOKEN,
    );
    config.auth.job_token_grace_seconds = 60;
    // No sweep during the test, so the job stays leased past its deadline and only the
    // job token's own expiry can refuse the calls.
    config.scheduling.sweep_interval = HumanDuration(Duration::from_secs(3600));
    config.scheduling.lease_ttl = HumanDuration(Duration::from_secs(3600));
    let public_key = airlock_attest::load_verifying_key(&public).unwrap();
    let tc = TestController::start_with(dir, config, public_key).await;
    submit(&tc, 1).await;
    let mut runners = tc.runners().await;
    let runner_id = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.unwrap();
    // Deadline: lease time + job timeout (5m) + deadline_grace (2m); then 60 s of grace.
    let expiry = START_MS / 1000 + 300 + 120 + 60;
    assert_eq!(lease.job_token_expires_at_unix, expiry);

    tc.clock.advance(Duration::from_secs(479));
    runners.heartbeat(heartbeat(&lease)).await.unwrap();
    tc.clock.advance(Duration::from_secs(1));
    let secrets = [lease.job_token.as_str()];
    refused(
        runners.heartbeat(heartbeat(&lease)).await,
        Code::PermissionDenied,
        &secrets,
    );
    refused(
        runners
            .complete_job(complete_request(&lease, pb::Outcome::Failed, vec![]))
            .await,
        Code::PermissionDenied,
        &secrets,
    );
    // Only the job token ended: the runner token (600 s) still works.
    runners
        .client_with(Some(runners.runner_auth(&runner_id)))
        .acquire_job(acquire_request(&runner_id))
        .await
        .unwrap();
    tc.stop().await;
}

#[tokio::test]
async fn a_long_poll_in_flight_when_the_registration_is_revoked_gets_no_lease() {
    let tc = TestController::start().await;
    let (_store, regs) = registrations(&tc).await;
    let pool = regs.create("pool").await.unwrap();
    let runners = tc.runners_with(Some(pool.expose())).await;
    let mut runners = runners;
    let runner_id = register(&mut runners, &[]).await;
    // The runner is waiting for work (its token valid when the call arrived)...
    let mut client = runners.client_with(Some(runners.runner_auth(&runner_id)));
    let poll = tokio::spawn(async move {
        client
            .acquire_job(pb::AcquireJobRequest {
                runner_id,
                wait_ms: 5_000,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...when its registration is revoked and then a job arrives: the job is not leased to it.
    regs.revoke("pool").await.unwrap();
    submit(&tc, 1).await;
    let answer = poll.await.unwrap().unwrap().into_inner();
    assert!(
        answer.lease.is_none(),
        "a revoked runner was handed a lease"
    );
    // The job is still there for a runner in good standing.
    let mut others = tc.runners().await;
    let other = register(&mut others, &[]).await;
    assert!(acquire(&mut others, &other, 0).await.is_some());
    regs.close().await;
    tc.stop().await;
}
