//! Signing keys through the real controller (gRPC on loopback, SQLite): each trust profile
//! signs with its own key under its own builder id, and a signing failure fails the job as
//! INFRA_FAILED with nothing stored or returned unsigned.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use airlock_attest::{
    Envelope, KeyAlgorithm, Policy, Sha256Digest, VerifyError, VerifyingKey, load_verifying_key,
    verify_provenance, write_keypair_with,
};
use airlock_controller::{ControllerConfig, Mode, SigningConfig};
use airlock_proto::v1 as pb;
use common::*;

const SOURCE: &[u8] = b"source tar";
const HELLO: &[u8] = b"\x7fELF hello";

/// Runs one job of `profile` to the runner's success report; returns the job id and the
/// state the controller decided. `before_complete` runs between the upload and the report.
async fn run_job(
    tc: &TestController,
    profile: &str,
    before_complete: impl FnOnce(),
) -> (String, pb::JobState) {
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let mut spec: serde_json::Value = serde_json::from_slice(&spec_json(&source, &[])).unwrap();
    spec["job"]["profile"] = profile.into();
    let job_id = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: serde_json::to_vec(&spec).unwrap(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let runner_id = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.expect("a lease");
    assert_eq!(lease.job_id, job_id);
    upload_output(&mut runners, &lease, "hello", HELLO).await;
    before_complete();
    let done = runners
        .complete_job(complete_request(
            &lease,
            pb::Outcome::Succeeded,
            vec![output_file("hello", HELLO)],
        ))
        .await
        .unwrap()
        .into_inner();
    (job_id, done.state())
}

async fn provenance(
    tc: &TestController,
    job_id: &str,
) -> Result<pb::ProvenanceDocuments, tonic::Status> {
    tc.jobs()
        .await
        .get_provenance(pb::GetProvenanceRequest {
            job_id: job_id.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn each_trust_profile_signs_with_its_own_key_and_builder_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = BTreeMap::new();
    let mut publics: BTreeMap<&str, VerifyingKey> = BTreeMap::new();
    for (profile, algorithm) in [
        ("untrusted-pr", KeyAlgorithm::EcdsaP256Sha256),
        ("trusted", KeyAlgorithm::Ed25519),
        ("release", KeyAlgorithm::EcdsaP256Sha256),
    ] {
        let (private, public) = write_keypair_with(dir.path(), profile, algorithm).unwrap();
        keys.insert(profile.to_owned(), private);
        publics.insert(profile, load_verifying_key(&public).unwrap());
    }
    let mut config =
        ControllerConfig::local(dir.path().join("state"), "unused", API_TOKEN, RUNNER_TOKEN);
    config.mode = Mode::Server;
    config.issuer = "https://ci.example".into();
    // A server controller never creates token keys itself; this test is about provenance keys.
    config.oidc = None;
    config.signing = SigningConfig {
        key: None,
        keys,
        verification_keys: vec![],
    };
    let tc = TestController::start_with(dir, config, publics["trusted"].clone()).await;

    let mut builder_ids = Vec::new();
    for (profile, public) in &publics {
        let (job_id, state) = run_job(&tc, profile, || {}).await;
        assert_eq!(state, pb::JobState::Succeeded, "{profile}");
        let docs = provenance(&tc, &job_id).await.unwrap();
        let builder_id = format!("https://ci.example/builders/{profile}");
        assert_eq!(docs.builder_id, builder_id);
        assert_eq!(
            docs.keyid,
            public.keyid(),
            "{profile} signs with its own key"
        );
        assert_eq!(docs.public_key_pem, public.to_spki_pem().unwrap());
        let envelope = Envelope::from_json(docs.envelope_json.as_bytes()).unwrap();
        let artifacts = [("hello".to_owned(), Sha256Digest::of(HELLO))];
        let policy = Policy {
            builder_id: Some(builder_id.clone()),
            ..Default::default()
        };
        verify_provenance(&envelope, std::slice::from_ref(public), &artifacts, &policy).unwrap();
        // The (key, builder.id) pair is what a verifier trusts: another profile's key does
        // not vouch for this build.
        for (other, other_key) in &publics {
            if other != profile {
                let err = verify_provenance(
                    &envelope,
                    std::slice::from_ref(other_key),
                    &artifacts,
                    &policy,
                )
                .unwrap_err();
                assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err}");
            }
        }
        builder_ids.push(builder_id);
    }
    builder_ids.dedup();
    assert_eq!(builder_ids.len(), 3, "distinct builder ids per profile");
    tc.stop().await;
}

/// Asserts the job ended INFRA_FAILED because of signing and has no provenance at all.
async fn assert_unsigned_failure(tc: &TestController, job_id: &str, state: pb::JobState) {
    assert_eq!(state, pb::JobState::InfraFailed);
    let job = tc
        .jobs()
        .await
        .get_job(pb::GetJobRequest {
            job_id: job_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state(), pb::JobState::InfraFailed);
    assert!(
        job.message.contains("cannot sign provenance"),
        "{}",
        job.message
    );
    assert_eq!(job.builder_id, "", "no builder id without a signature");
    let err = provenance(tc, job_id).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::NotFound | tonic::Code::FailedPrecondition
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_signing_failure_fails_the_job_and_nothing_unsigned_is_stored_or_returned() {
    let tc = TestController::start().await;
    let key = tc.config.signing.key.clone().unwrap();
    let saved = std::fs::read(&key).unwrap();
    let restore = || {
        let _ = std::fs::remove_file(&key);
        std::fs::write(&key, &saved).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    };

    // The key file removed between startup and completion.
    let (job, state) = run_job(&tc, "trusted", || std::fs::remove_file(&key).unwrap()).await;
    assert_unsigned_failure(&tc, &job, state).await;

    // Corrupted.
    restore();
    let (job, state) = run_job(&tc, "trusted", || {
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap()
    })
    .await;
    assert_unsigned_failure(&tc, &job, state).await;

    // Made world-readable (possibly compromised).
    restore();
    let (job, state) = run_job(&tc, "trusted", || {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap()
    })
    .await;
    assert_unsigned_failure(&tc, &job, state).await;

    // Restored: the same controller signs again (no restart needed, nothing was cached).
    restore();
    let (job, state) = run_job(&tc, "trusted", || {}).await;
    assert_eq!(state, pb::JobState::Succeeded);
    let docs = provenance(&tc, &job).await.unwrap();
    assert_eq!(docs.keyid, tc.public_key.keyid());
    tc.stop().await;
}
