//! Build caches over real gRPC with a real SQLite file and blob store: the trust-domain rule
//! as the controller applies it to its own record of each job, saves that count only for a
//! success, forged cache reports refused, eviction under the scope's cap, lost archives.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use airlock_attest::{Envelope, Sha256Digest};
use airlock_controller::ControllerConfig;
use airlock_proto::v1 as pb;
use common::*;
use tokio_stream::StreamExt;
use tonic::Code;

const OUT: &[u8] = b"an output";

fn key(text: &str) -> Sha256Digest {
    Sha256Digest::of(text.as_bytes())
}

/// A job of `profile` with one cache `c` under /cache.
fn cache_spec(source: &Sha256Digest, profile: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "job": {"name": "cached", "profile": profile, "timeout": "5m"},
        "source": {"path": "/src/cached", "sha256": source.hex()},
        "image": {"ref": format!("oci-layout:/images/base@sha256:{IMAGE_DIGEST}")},
        "caches": [{"name": "c", "path": "/cache/c", "key": ["Cargo.lock"]}],
        "steps": [{"run": "true"}],
        "outputs": {"paths": ["out"]}
    }))
    .unwrap()
}

async fn controller_with(edit: impl FnOnce(&mut ControllerConfig)) -> TestController {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = airlock_attest::write_keypair(dir.path(), "provenance").unwrap();
    let mut config =
        ControllerConfig::local(dir.path().join("state"), key, API_TOKEN, RUNNER_TOKEN);
    edit(&mut config);
    let public_key = airlock_attest::load_verifying_key(&public).unwrap();
    TestController::start_with(dir, config, public_key).await
}

/// One leased job of `profile`.
async fn lease(tc: &TestController, profile: &str) -> (Jobs, Runners, pb::Lease) {
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, b"source").await;
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: cache_spec(&source, profile),
        ..Default::default()
    })
    .await
    .unwrap();
    let runner = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner, 0).await.expect("a lease");
    (jobs, runners, lease)
}

/// RestoreCache: the header and the archive's bytes.
async fn restore(
    runners: &mut Runners,
    lease: &pb::Lease,
    key: &Sha256Digest,
) -> (pb::CacheHeader, Vec<u8>) {
    let mut stream = runners
        .restore_cache(pb::RestoreCacheRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            name: "c".into(),
            key_sha256: key.hex(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(pb::RestoreCacheResponse {
        kind: Some(pb::restore_cache_response::Kind::Header(header)),
    })) = stream.next().await
    else {
        panic!("no header first");
    };
    let mut data = Vec::new();
    while let Some(m) = stream.next().await {
        match m.unwrap().kind {
            Some(pb::restore_cache_response::Kind::Data(d)) => data.extend(d),
            other => panic!("unexpected {other:?}"),
        }
    }
    (header, data)
}

/// What a runner reports after restoring the cache `header` announced.
fn restored_as(header: &pb::CacheHeader) -> pb::CacheArchive {
    pb::CacheArchive {
        name: "c".into(),
        domain: header.domain.clone(),
        key_sha256: header.key_sha256.clone(),
        archive_sha256: header.archive_sha256.clone(),
        size: header.size,
    }
}

/// SaveCache of `data` claiming `claimed` as its digest.
async fn save_claiming(
    runners: &mut Runners,
    lease: &pb::Lease,
    key: &Sha256Digest,
    data: &[u8],
    claimed: &Sha256Digest,
) -> Result<pb::CacheArchive, tonic::Status> {
    use pb::save_cache_request::Kind;
    let header = pb::SaveCacheHeader {
        job_id: lease.job_id.clone(),
        lease_token: lease.lease_token.clone(),
        name: "c".into(),
        key_sha256: key.hex(),
        archive_sha256: claimed.hex(),
        size: data.len() as u64,
    };
    let mut messages = vec![pb::SaveCacheRequest {
        kind: Some(Kind::Header(header)),
    }];
    messages.extend(data.chunks(7).map(|c| pb::SaveCacheRequest {
        kind: Some(Kind::Data(c.to_vec())),
    }));
    runners.save_cache(tokio_stream::iter(messages)).await?;
    Ok(pb::CacheArchive {
        name: "c".into(),
        domain: String::new(),
        key_sha256: key.hex(),
        archive_sha256: claimed.hex(),
        size: data.len() as u64,
    })
}

async fn save(
    runners: &mut Runners,
    lease: &pb::Lease,
    key: &Sha256Digest,
    data: &[u8],
) -> Result<pb::CacheArchive, tonic::Status> {
    save_claiming(runners, lease, key, data, &Sha256Digest::of(data)).await
}

/// Completes the job as succeeded with `restored` and `saved`; the recorded state.
async fn succeed(
    runners: &mut Runners,
    lease: &pb::Lease,
    restored: Vec<pb::CacheArchive>,
    saved: Vec<pb::CacheArchive>,
) -> pb::JobState {
    upload_output(runners, lease, "out", OUT).await;
    let mut req = complete_request(lease, pb::Outcome::Succeeded, vec![output_file("out", OUT)]);
    req.restored_caches = restored;
    req.saved_caches = saved;
    runners
        .complete_job(req)
        .await
        .unwrap()
        .into_inner()
        .state()
}

/// The job's signed statement.
async fn statement(jobs: &mut Jobs, lease: &pb::Lease) -> serde_json::Value {
    let docs = jobs
        .get_provenance(pb::GetProvenanceRequest {
            job_id: lease.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let envelope = Envelope::from_json(docs.envelope_json.as_bytes()).unwrap();
    serde_json::from_slice(&envelope.payload_bytes().unwrap()).unwrap()
}

/// A trusted job that saves `data` under `key`, start to end; returns the archive.
async fn trusted_save(tc: &TestController, key: &Sha256Digest, data: &[u8]) -> pb::CacheArchive {
    let (_, mut runners, lease) = lease(tc, "trusted").await;
    let saved = save(&mut runners, &lease, key, data).await.unwrap();
    assert_eq!(
        succeed(&mut runners, &lease, vec![], vec![saved.clone()]).await,
        pb::JobState::Succeeded
    );
    saved
}

#[tokio::test]
async fn domains_decide_what_is_restored_and_only_a_success_saves() {
    let tc = controller_with(|_| {}).await;
    let k = key("Cargo.lock v1");

    // First trusted job: nothing to restore; it saves, and says so in its provenance.
    let (mut jobs, mut runners, first) = lease(&tc, "trusted").await;
    let (header, _) = restore(&mut runners, &first, &k).await;
    assert!(!header.found && header.saves);
    assert_eq!(header.project, "name:cached");
    let saved = save(&mut runners, &first, &k, b"trusted cache")
        .await
        .unwrap();
    assert_eq!(
        succeed(&mut runners, &first, vec![], vec![saved.clone()]).await,
        pb::JobState::Succeeded
    );
    let st = statement(&mut jobs, &first).await;
    assert_eq!(
        st["predicate"]["buildDefinition"]["internalParameters"]["caches"],
        serde_json::json!([{"name": "c", "restoredFrom": null}])
    );
    let byproducts = st["predicate"]["runDetails"]["byproducts"]
        .as_array()
        .unwrap();
    assert!(
        byproducts
            .iter()
            .any(|b| b["name"] == "cache/c"
                && b["digest"]["sha256"] == saved.archive_sha256.as_str())
    );

    // Second trusted job: restores it, bytes and all, and records it as an input.
    let (mut jobs, mut runners, second) = lease(&tc, "trusted").await;
    let (header, data) = restore(&mut runners, &second, &k).await;
    assert!(header.found);
    assert_eq!(header.domain, "trusted");
    assert_eq!(data, b"trusted cache");
    let restored = restored_as(&header);
    assert_eq!(
        succeed(&mut runners, &second, vec![restored], vec![]).await,
        pb::JobState::Succeeded
    );
    let st = statement(&mut jobs, &second).await;
    let deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let cache = deps
        .iter()
        .find(|d| d["name"] == "cache/c")
        .expect("recorded");
    assert_eq!(cache["digest"]["sha256"], saved.archive_sha256.as_str());
    assert_eq!(cache["annotations"]["domain"], "trusted");

    // An untrusted-pr job never sees the trusted cache; what it saves stays in its domain.
    let (_, mut runners, pr) = lease(&tc, "untrusted-pr").await;
    let (header, _) = restore(&mut runners, &pr, &k).await;
    assert!(!header.found, "a pull request read the trusted cache");
    assert!(header.saves);
    let poison = save(&mut runners, &pr, &k, b"poison").await.unwrap();
    assert_eq!(
        succeed(&mut runners, &pr, vec![], vec![poison]).await,
        pb::JobState::Succeeded
    );
    let (_, mut runners, after) = lease(&tc, "trusted").await;
    let (header, data) = restore(&mut runners, &after, &k).await;
    assert_eq!(header.domain, "trusted");
    assert_eq!(
        data, b"trusted cache",
        "the pull request's write reached a trusted job"
    );
    // A runner that claims the trusted job restored the untrusted cache is refused.
    let forged = pb::CacheArchive {
        name: "c".into(),
        domain: "untrusted".into(),
        key_sha256: k.hex(),
        archive_sha256: Sha256Digest::of(b"poison").hex(),
        size: 6,
    };
    assert_eq!(
        succeed(&mut runners, &after, vec![forged], vec![]).await,
        pb::JobState::InfraFailed
    );

    // A release job starts clean and may not save.
    let (_, mut runners, release) = lease(&tc, "release").await;
    let (header, data) = restore(&mut runners, &release, &k).await;
    assert!(!header.found && !header.saves && data.is_empty());
    let refused = save(&mut runners, &release, &k, b"release")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    tc.stop().await;
}

#[tokio::test]
async fn saves_count_only_when_verified_and_the_job_succeeds() {
    let tc = controller_with(|_| {}).await;
    let k = key("lock");

    // Bytes that do not match the header are not kept.
    let (_, mut runners, job) = lease(&tc, "trusted").await;
    let lie = save_claiming(
        &mut runners,
        &job,
        &k,
        b"real bytes",
        &Sha256Digest::of(b"other"),
    )
    .await
    .unwrap_err();
    assert_eq!(lie.code(), Code::DataLoss, "{lie:?}");
    // A report naming an archive that was never uploaded fails the job, and saves nothing.
    let never = pb::CacheArchive {
        name: "c".into(),
        domain: String::new(),
        key_sha256: k.hex(),
        archive_sha256: Sha256Digest::of(b"never").hex(),
        size: 5,
    };
    assert_eq!(
        succeed(&mut runners, &job, vec![], vec![never]).await,
        pb::JobState::InfraFailed
    );

    // A job that uploads its cache but then fails saves nothing either.
    let (_, mut runners, failing) = lease(&tc, "trusted").await;
    let uploaded = save(&mut runners, &failing, &k, b"from a failed job")
        .await
        .unwrap();
    let mut req = complete_request(&failing, pb::Outcome::Failed, vec![]);
    req.saved_caches = vec![uploaded];
    runners.complete_job(req).await.unwrap();

    let (_, mut runners, next) = lease(&tc, "trusted").await;
    let (header, _) = restore(&mut runners, &next, &k).await;
    assert!(
        !header.found,
        "a cache of a job that did not succeed was kept"
    );
    tc.stop().await;
}

#[tokio::test]
async fn a_scope_stays_under_its_cap_and_lost_or_oversized_archives_are_refused() {
    let tc = controller_with(|c| {
        c.caches.max_archive_bytes = 100;
        c.caches.max_scope_bytes = 150;
    })
    .await;
    let blobs = tc.config.blob_dir_path();
    let path_of = |hex: &str| blobs.join("sha256").join(&hex[..2]).join(hex);
    let old = trusted_save(&tc, &key("v1"), &[1u8; 100]).await;
    tc.clock.advance(std::time::Duration::from_secs(1));
    let new = trusted_save(&tc, &key("v2"), &[2u8; 100]).await;
    assert!(
        !path_of(&old.archive_sha256).exists(),
        "the evicted archive is still on disk"
    );
    assert!(path_of(&new.archive_sha256).exists());
    // v1's exact key is gone: the newest of the scope is restored instead.
    let (_, mut runners, job) = lease(&tc, "trusted").await;
    let (header, data) = restore(&mut runners, &job, &key("v1")).await;
    assert_eq!(header.key_sha256, key("v2").hex());
    assert_eq!(data, [2u8; 100]);
    // Over the archive cap: refused before any byte is kept.
    let big = save(&mut runners, &job, &key("v3"), &[3u8; 101])
        .await
        .unwrap_err();
    assert_eq!(big.code(), Code::ResourceExhausted, "{big:?}");

    // An archive lost from the blob store is forgotten, not served.
    std::fs::remove_file(path_of(&new.archive_sha256)).unwrap();
    let (_, mut runners, job) = lease(&tc, "trusted").await;
    let (header, _) = restore(&mut runners, &job, &key("v2")).await;
    assert!(!header.found);
    tc.stop().await;
}

#[tokio::test]
async fn caches_switched_off_restore_nothing_and_refuse_saves() {
    let tc = controller_with(|c| c.caches.enabled = false).await;
    let (mut jobs, mut runners, job) = lease(&tc, "trusted").await;
    let (header, _) = restore(&mut runners, &job, &key("k")).await;
    assert!(!header.found && !header.saves);
    let refused = save(&mut runners, &job, &key("k"), b"x").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        succeed(&mut runners, &job, vec![], vec![]).await,
        pb::JobState::Succeeded
    );
    let st = statement(&mut jobs, &job).await;
    assert_eq!(
        st["predicate"]["buildDefinition"]["internalParameters"]["caches"],
        serde_json::json!([{"name": "c", "restoredFrom": null}])
    );
    tc.stop().await;
}

#[tokio::test]
async fn with_untrusted_reads_trusted_a_pull_request_starts_warm_but_still_writes_apart() {
    let tc = controller_with(|c| c.caches.untrusted_reads_trusted = true).await;
    let k = key("lock");
    trusted_save(&tc, &k, b"trusted").await;

    let (_, mut runners, pr) = lease(&tc, "untrusted-pr").await;
    let (header, data) = restore(&mut runners, &pr, &k).await;
    assert_eq!(
        (header.domain.as_str(), data.as_slice()),
        ("trusted", &b"trusted"[..])
    );
    let restored = restored_as(&header);
    let poison = save(&mut runners, &pr, &k, b"poison").await.unwrap();
    assert_eq!(
        succeed(&mut runners, &pr, vec![restored], vec![poison]).await,
        pb::JobState::Succeeded,
        "reading trusted is allowed for a pull request under this policy"
    );

    // The next pull request finds its own domain's cache first; trusted jobs never see it.
    let (_, mut runners, next_pr) = lease(&tc, "untrusted-pr").await;
    let (header, data) = restore(&mut runners, &next_pr, &k).await;
    assert_eq!(
        (header.domain.as_str(), data.as_slice()),
        ("untrusted", &b"poison"[..])
    );
    let (_, mut runners, trusted) = lease(&tc, "trusted").await;
    let (header, data) = restore(&mut runners, &trusted, &k).await;
    assert_eq!(
        (header.domain.as_str(), data.as_slice()),
        ("trusted", &b"trusted"[..])
    );
    tc.stop().await;
}
