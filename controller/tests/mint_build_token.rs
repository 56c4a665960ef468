//! `RunnerService.MintBuildToken` over real gRPC: fenced by the lease, claims from the job
//! record, refusals with their codes, and the token verified by the controller's issuer keys
//! as published in its JWKS.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use airlock_proto::v1 as pb;
use common::*;
use tonic::Code;

/// A trusted job declaring `sts.example` (or, with `profile`, another profile), leased.
async fn leased(tc: &TestController, profile: &str) -> (Runners, pb::Lease) {
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, b"source").await;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&spec_json(&source, &["linux"])).unwrap();
    spec["job"]["profile"] = profile.into();
    spec["oidc"] = serde_json::json!({"audiences": ["sts.example"]});
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: serde_json::to_vec(&spec).unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let runner_id = register(&mut runners, &["linux"]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.expect("a lease");
    (runners, lease)
}

fn request(lease: &pb::Lease, audience: &str, lifetime: u32) -> pb::MintBuildTokenRequest {
    pb::MintBuildTokenRequest {
        job_id: lease.job_id.clone(),
        lease_token: lease.lease_token.clone(),
        audience: audience.into(),
        lifetime_seconds: lifetime,
    }
}

#[tokio::test]
async fn a_running_job_gets_a_token_for_a_declared_audience_only() {
    let tc = TestController::start().await;
    let (mut runners, lease) = leased(&tc, "trusted").await;

    let minted = runners
        .mint_build_token(request(&lease, "sts.example", 120))
        .await
        .unwrap()
        .into_inner();
    let parts: Vec<_> = minted.token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let claims: serde_json::Value = serde_json::from_slice(&base64_url_decode(parts[1])).unwrap();
    assert_eq!(claims["aud"], "sts.example");
    assert_eq!(claims["job_id"], lease.job_id.as_str());
    assert_eq!(claims["profile"], "trusted");
    assert_eq!(claims["iss"], "https://localhost");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
    assert_eq!(claims["exp"].as_u64().unwrap(), minted.expires_at_unix);

    let err = runners
        .mint_build_token(request(&lease, "evil.example", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(!err.message().contains("evil.example"));

    let err = runners
        .mint_build_token(request(&lease, "sts.example", 7200))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A wrong lease token: refused like every other runner call.
    let mut stale = request(&lease, "sts.example", 0);
    stale.lease_token = "00000000-0000-4000-8000-000000000000".into();
    let err = runners.mint_build_token(stale).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Once the job has ended: refused.
    runners
        .complete_job(pb::CompleteJobRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            outcome: pb::Outcome::Failed as i32,
            message: "step failed".into(),
            exit_code: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = runners
        .mint_build_token(request(&lease, "sts.example", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    tc.stop().await;
}

#[tokio::test]
async fn untrusted_pr_jobs_get_no_token() {
    let tc = TestController::start().await;
    let (mut runners, lease) = leased(&tc, "untrusted-pr").await;
    let err = runners
        .mint_build_token(request(&lease, "sts.example", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    tc.stop().await;
}

#[tokio::test]
async fn build_token_profiles_decide_which_profiles_get_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = airlock_attest::write_keypair(dir.path(), "provenance").unwrap();
    let mut config = airlock_controller::ControllerConfig::local(
        dir.path().join("state"),
        key,
        API_TOKEN,
        RUNNER_TOKEN,
    );
    if let Some(oidc) = &mut config.oidc {
        oidc.build_token_profiles = vec!["release".into()];
    }
    let public = airlock_attest::load_verifying_key(&public).unwrap();
    let tc = TestController::start_with(dir, config, public).await;
    let (mut runners, lease) = leased(&tc, "trusted").await;
    let err = runners
        .mint_build_token(request(&lease, "sts.example", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("`trusted`"), "{err:?}");
    runners
        .complete_job(pb::CompleteJobRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            outcome: pb::Outcome::Failed as i32,
            message: "done".into(),
            exit_code: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let (mut runners, lease) = leased(&tc, "release").await;
    let minted = runners
        .mint_build_token(request(&lease, "sts.example", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(minted.token.split('.').count(), 3);
    tc.stop().await;
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[tokio::test]
async fn a_build_token_is_no_credential_for_the_controller_itself() {
    // A step holds its build token; it must not open any door on the control plane.
    let tc = TestController::start().await;
    let (mut runners, lease) = leased(&tc, "trusted").await;
    let token = runners
        .mint_build_token(request(&lease, "sts.example", 60))
        .await
        .unwrap()
        .into_inner()
        .token;
    let as_bearer = airlock_proto::auth::BearerAuth::new(&token).unwrap();

    // ...not as a runner token,
    let err = runners
        .client_with(Some(as_bearer.clone()))
        .heartbeat(pb::HeartbeatRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(!err.message().contains(&token));
    // ...not as a registration secret,
    let err = runners
        .client_with(Some(as_bearer))
        .register_runner(pb::RegisterRunnerRequest {
            name: "thief".into(),
            labels: vec![],
            version: "0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // ...not as a job token next to the runner's own token,
    let err = runners
        .client_with(Some(
            runners.job_auth(&lease).with_job_token(&token).unwrap(),
        ))
        .heartbeat(pb::HeartbeatRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(!err.message().contains(&token));
    // ...and not as a job-API token.
    let mut jobs = tc.jobs_with(Some(&token)).await;
    let err = jobs
        .get_job(pb::GetJobRequest {
            job_id: lease.job_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(!err.message().contains(&token));
    tc.stop().await;
}
