//! Job-API client roles over real gRPC (127.0.0.1, a real SQLite file): each role's allowed
//! calls succeed, forbidden ones fail `PERMISSION_DENIED` naming client, role, profile and the
//! allowed profiles; unknown and missing tokens fail `UNAUTHENTICATED`; no error message ever
//! contains a token.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use airlock_attest::{Sha256Digest, load_verifying_key, write_keypair};
use airlock_controller::ControllerConfig;
use airlock_controller::auth::digest::TokenDigest;
use airlock_controller::config::{ClientEntry, Role};
use airlock_proto::v1 as pb;
use common::*;
use tonic::Code;

const READER: &str = "reader-token-7f3a9c";
const PR_BOT: &str = "pr-bot-token-1b2c3d";
const TRUSTED_BOT: &str = "trusted-bot-token-4e5f6a";
const RELEASE_BOT: &str = "release-bot-token-7b8c9d";
const RELEASE_ONLY: &str = "release-only-token-0e1f2a";
const UNKNOWN: &str = "unknown-token-3b4c5d";
const ALL_TOKENS: &[&str] = &[
    API_TOKEN,
    READER,
    PR_BOT,
    TRUSTED_BOT,
    RELEASE_BOT,
    RELEASE_ONLY,
    UNKNOWN,
];

fn client(name: &str, token: &str, role: Role, profiles: Option<&[&str]>) -> ClientEntry {
    ClientEntry {
        name: name.into(),
        token_sha256: TokenDigest::of(token),
        role,
        profiles: profiles.map(|p| p.iter().map(|s| s.to_string()).collect()),
    }
}

/// A controller with one client per role (and `admin` = [`API_TOKEN`]).
async fn start() -> TestController {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = write_keypair(dir.path(), "provenance").unwrap();
    let mut config =
        ControllerConfig::local(dir.path().join("state"), key, API_TOKEN, RUNNER_TOKEN);
    config.auth.clients = vec![
        client("reader", READER, Role::Read, None),
        client("pr-bot", PR_BOT, Role::SubmitUntrusted, None),
        client("trusted-bot", TRUSTED_BOT, Role::SubmitTrusted, None),
        client("release-bot", RELEASE_BOT, Role::SubmitRelease, None),
        client(
            "release-only",
            RELEASE_ONLY,
            Role::SubmitRelease,
            Some(&["release"]),
        ),
    ];
    let public = load_verifying_key(&public).unwrap();
    TestController::start_with(dir, config, public).await
}

fn spec(source: &Sha256Digest, profile: &str) -> Vec<u8> {
    let mut spec: serde_json::Value =
        serde_json::from_slice(&spec_json(source, &["linux"])).unwrap();
    spec["job"]["profile"] = profile.into();
    serde_json::to_vec(&spec).unwrap()
}

async fn submit(
    jobs: &mut Jobs,
    source: &Sha256Digest,
    profile: &str,
) -> Result<String, tonic::Status> {
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: spec(source, profile),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().job_id)
}

async fn cancel(jobs: &mut Jobs, job_id: &str) -> Result<pb::CancelJobResponse, tonic::Status> {
    jobs.cancel_job(pb::CancelJobRequest {
        job_id: job_id.into(),
        reason: "test".into(),
    })
    .await
    .map(|r| r.into_inner())
}

/// Asserts `status` has `code` and that its message contains no token.
fn assert_refused(status: &tonic::Status, code: Code) {
    assert_eq!(status.code(), code, "{status:?}");
    for token in ALL_TOKENS {
        assert!(
            !status.message().contains(token),
            "message leaks a token: {}",
            status.message()
        );
    }
}

async fn admin_source(tc: &TestController) -> Sha256Digest {
    upload_source(&mut tc.jobs().await, b"source of the role tests").await
}

#[tokio::test]
async fn read_role_reads_but_cannot_upload_submit_or_cancel() {
    let tc = start().await;
    let source = admin_source(&tc).await;
    let job_id = submit(&mut tc.jobs().await, &source, "trusted")
        .await
        .unwrap();
    let mut reader = tc.jobs_with(Some(READER)).await;

    let job = reader
        .get_job(pb::GetJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state(), pb::JobState::Queued);
    let mut events = reader
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
            after_seq: 0,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        events.message().await.unwrap().is_some(),
        "the queued event"
    );
    // Reads of things that do not exist yet fail for that reason, not for the role.
    let e = reader
        .get_provenance(pb::GetProvenanceRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap_err();
    assert_refused(&e, Code::FailedPrecondition);
    let e = reader
        .get_output(pb::GetOutputRequest {
            job_id: job_id.clone(),
            path: "hello".into(),
        })
        .await
        .unwrap_err();
    assert!(
        !matches!(e.code(), Code::PermissionDenied | Code::Unauthenticated),
        "{e:?}"
    );

    let chunks = vec![pb::BlobChunk {
        data: b"more source".to_vec(),
    }];
    let e = reader
        .upload_source(tokio_stream::iter(chunks))
        .await
        .unwrap_err();
    assert_refused(&e, Code::PermissionDenied);
    assert!(
        e.message().contains("`reader`") && e.message().contains("`read`"),
        "{e:?}"
    );
    let e = submit(&mut reader, &source, "untrusted-pr")
        .await
        .unwrap_err();
    assert_refused(&e, Code::PermissionDenied);
    let e = cancel(&mut reader, &job_id).await.unwrap_err();
    assert_refused(&e, Code::PermissionDenied);
    let job = reader
        .get_job(pb::GetJobRequest { job_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        job.state(),
        pb::JobState::Queued,
        "the refused cancel did nothing"
    );
    tc.stop().await;
}

#[tokio::test]
async fn submit_roles_submit_only_their_profiles() {
    let tc = start().await;
    let source = admin_source(&tc).await;
    // (client, token, role, profiles it may submit, profiles it may not)
    type Case<'a> = (&'a str, &'a str, Role, &'a [&'a str], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "pr-bot",
            PR_BOT,
            Role::SubmitUntrusted,
            &["untrusted-pr"],
            &["trusted", "release"],
        ),
        (
            "trusted-bot",
            TRUSTED_BOT,
            Role::SubmitTrusted,
            &["untrusted-pr", "trusted"],
            &["release"],
        ),
        (
            "release-bot",
            RELEASE_BOT,
            Role::SubmitRelease,
            &["untrusted-pr", "trusted", "release"],
            &[],
        ),
        // A `profiles` list narrows the role: release only.
        (
            "release-only",
            RELEASE_ONLY,
            Role::SubmitRelease,
            &["release"],
            &["untrusted-pr", "trusted"],
        ),
        (
            "admin",
            API_TOKEN,
            Role::Admin,
            &["untrusted-pr", "trusted", "release"],
            &[],
        ),
    ];
    for (name, token, role, allowed, denied) in cases {
        let mut jobs = tc.jobs_with(Some(token)).await;
        // Submit roles may upload sources.
        upload_source(&mut jobs, name.as_bytes()).await;
        for profile in *allowed {
            let id = submit(&mut jobs, &source, profile).await;
            assert!(id.is_ok(), "{name} submits {profile}: {id:?}");
        }
        for profile in *denied {
            let e = submit(&mut jobs, &source, profile).await.unwrap_err();
            assert_refused(&e, Code::PermissionDenied);
            let m = e.message();
            assert!(
                m.contains(&format!("`{name}`"))
                    && m.contains(role.as_str())
                    && m.contains(&format!("`{profile}`"))
                    && allowed.iter().all(|p| m.contains(&format!("`{p}`"))),
                "{name}/{profile}: {m}"
            );
        }
    }
    tc.stop().await;
}

#[tokio::test]
async fn cancel_needs_a_role_that_could_have_submitted_the_job() {
    let tc = start().await;
    let source = admin_source(&tc).await;
    let release_job = submit(&mut tc.jobs().await, &source, "release")
        .await
        .unwrap();
    for (token, name) in [(PR_BOT, "pr-bot"), (TRUSTED_BOT, "trusted-bot")] {
        let e = cancel(&mut tc.jobs_with(Some(token)).await, &release_job)
            .await
            .unwrap_err();
        assert_refused(&e, Code::PermissionDenied);
        assert!(
            e.message().contains(name) && e.message().contains("`release`"),
            "{e:?}"
        );
    }
    let mut release_bot = tc.jobs_with(Some(RELEASE_BOT)).await;
    let done = cancel(&mut release_bot, &release_job).await.unwrap();
    assert_eq!(done.state(), pb::JobState::Cancelled);

    // A submit-untrusted client cancels its own kind of job; an unknown job is NOT_FOUND.
    let mut pr_bot = tc.jobs_with(Some(PR_BOT)).await;
    let pr_job = submit(&mut pr_bot, &source, "untrusted-pr").await.unwrap();
    assert_eq!(
        cancel(&mut pr_bot, &pr_job).await.unwrap().state(),
        pb::JobState::Cancelled
    );
    let e = cancel(&mut pr_bot, "00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_refused(&e, Code::NotFound);

    // Admin cancels anything.
    let trusted_job = submit(&mut tc.jobs().await, &source, "trusted")
        .await
        .unwrap();
    assert_eq!(
        cancel(&mut tc.jobs().await, &trusted_job)
            .await
            .unwrap()
            .state(),
        pb::JobState::Cancelled
    );
    tc.stop().await;
}

#[tokio::test]
async fn unknown_and_missing_tokens_are_unauthenticated_without_echo() {
    let tc = start().await;
    let source = admin_source(&tc).await;
    let job_id = submit(&mut tc.jobs().await, &source, "trusted")
        .await
        .unwrap();
    // The runner's registration secret is no client token either.
    for token in [Some(UNKNOWN), None, Some(RUNNER_TOKEN)] {
        let mut jobs = tc.jobs_with(token).await;
        let e = jobs
            .get_job(pb::GetJobRequest {
                job_id: job_id.clone(),
            })
            .await
            .unwrap_err();
        assert_refused(&e, Code::Unauthenticated);
        assert!(!e.message().contains(RUNNER_TOKEN), "{e:?}");
        let e = submit(&mut jobs, &source, "untrusted-pr")
            .await
            .unwrap_err();
        assert_refused(&e, Code::Unauthenticated);
        let e = cancel(&mut jobs, &job_id).await.unwrap_err();
        assert_refused(&e, Code::Unauthenticated);
        let chunks = vec![pb::BlobChunk {
            data: b"x".to_vec(),
        }];
        let e = jobs
            .upload_source(tokio_stream::iter(chunks))
            .await
            .unwrap_err();
        assert_refused(&e, Code::Unauthenticated);
    }
    tc.stop().await;
}
