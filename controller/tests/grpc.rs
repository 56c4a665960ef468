//! The controller over real gRPC on 127.0.0.1:0 with a real SQLite file.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use airlock_attest::{Bundle, Envelope, Policy, Sha256Digest, verify_provenance};
use airlock_controller::BUILD_TYPE;
use airlock_proto::v1 as pb;
use common::*;
use tokio_stream::StreamExt;
use tonic::Code;

const SOURCE: &[u8] = b"a canonical tar of the source tree";
const HELLO: &[u8] = b"\x7fELF pretend binary";
const README: &[u8] = b"read me";

async fn collect_chunks(mut s: tonic::Streaming<pb::BlobChunk>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend(chunk.unwrap().data);
    }
    out
}

/// Submits a job, registers a runner and leases the job.
async fn leased_job(tc: &TestController) -> (Jobs, Runners, String, pb::Lease, Vec<u8>) {
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let spec = spec_json(&source, &["linux"]);
    let job_id = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: spec.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let runner_id = register(&mut runners, &["linux", "x86_64"]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.expect("a lease");
    assert_eq!(lease.job_id, job_id);
    (jobs, runners, runner_id, lease, spec)
}

#[tokio::test]
async fn full_flow_signs_verifiable_provenance() {
    let tc = TestController::start().await;
    let (mut jobs, mut runners, runner_id, lease, spec) = leased_job(&tc).await;
    assert_eq!(lease.attempt, 1);
    assert_eq!(
        lease.spec_json, spec,
        "the lease carries the spec exactly as submitted"
    );
    let job = jobs
        .get_job(pb::GetJobRequest {
            job_id: lease.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state(), pb::JobState::Leased);
    assert_eq!(job.runner_id, runner_id);

    tc.clock.advance(std::time::Duration::from_secs(1));
    use pb::step_event::Phase;
    runners
        .report_events(pb::ReportEventsRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            events: vec![
                step_event(0, "compile", Phase::Started),
                log_event(0, b"hello "),
                log_event(0, b"world\n"),
                step_event(0, "compile", Phase::Finished),
            ],
        })
        .await
        .unwrap();
    let source = runners
        .download_source(pb::DownloadSourceRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(collect_chunks(source).await, SOURCE);

    let up = upload_output(&mut runners, &lease, "hello", HELLO).await;
    assert_eq!(up.sha256, Sha256Digest::of(HELLO).hex());
    upload_output(&mut runners, &lease, "docs/readme.txt", README).await;

    tc.clock.advance(std::time::Duration::from_secs(2));
    let done = runners
        .complete_job(complete_request(
            &lease,
            pb::Outcome::Succeeded,
            vec![
                output_file("hello", HELLO),
                output_file("docs/readme.txt", README),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::Succeeded);

    let job = jobs
        .get_job(pb::GetJobRequest {
            job_id: lease.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state(), pb::JobState::Succeeded);
    let builder_id = "https://localhost/builders/local/trusted";
    assert_eq!(job.builder_id, builder_id);
    assert_eq!(job.created_at_ms, START_MS as i64);
    assert_eq!(job.started_at_ms, START_MS as i64 + 1000);
    assert_eq!(job.finished_at_ms, START_MS as i64 + 3000);
    let paths: Vec<_> = job
        .outputs
        .iter()
        .map(|o| (o.path.as_str(), o.executable))
        .collect();
    assert_eq!(paths, [("docs/readme.txt", false), ("hello", true)]);

    let bytes = jobs
        .get_output(pb::GetOutputRequest {
            job_id: lease.job_id.clone(),
            path: "hello".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(collect_chunks(bytes).await, HELLO);
    let missing = jobs
        .get_output(pb::GetOutputRequest {
            job_id: lease.job_id.clone(),
            path: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let docs = jobs
        .get_provenance(pb::GetProvenanceRequest {
            job_id: lease.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(docs.builder_id, builder_id);
    assert_eq!(docs.keyid, tc.public_key.keyid());
    assert_eq!(docs.public_key_pem, tc.public_key.to_spki_pem().unwrap());
    assert!(docs.envelope_json.ends_with('\n') && docs.envelope_json.lines().count() == 1);

    let envelope = Envelope::from_json(docs.envelope_json.as_bytes()).unwrap();
    let policy = Policy {
        builder_id: Some(builder_id.into()),
        build_type: Some(BUILD_TYPE.into()),
        ..Default::default()
    };
    let report = verify_provenance(
        &envelope,
        std::slice::from_ref(&tc.public_key),
        &[
            ("hello".into(), Sha256Digest::of(HELLO)),
            ("readme".into(), Sha256Digest::of(README)),
        ],
        &policy,
    )
    .unwrap();
    let bundle = Bundle::from_json(docs.bundle_json.as_bytes()).unwrap();
    assert_eq!(bundle.into_envelope(), envelope);

    // The statement records what the control plane knows, nothing the runner merely claimed.
    let statement = serde_json::to_value(&report.statement).unwrap();
    let names: Vec<_> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs/readme.txt", "hello"]);
    let predicate = &statement["predicate"];
    let submitted: serde_json::Value = serde_json::from_slice(&spec).unwrap();
    assert_eq!(
        predicate["buildDefinition"]["externalParameters"],
        submitted
    );
    let internal = &predicate["buildDefinition"]["internalParameters"];
    assert_eq!(internal["runnerId"], runner_id.as_str());
    assert_eq!(internal["runnerVersion"], "0.1.0-runner");
    assert_eq!(internal["profile"], "trusted");
    let deps = &predicate["buildDefinition"]["resolvedDependencies"];
    assert_eq!(deps[0]["uri"], "file:///src/hello");
    assert_eq!(deps[0]["digest"]["sha256"], Sha256Digest::of(SOURCE).hex());
    assert_eq!(deps[1]["digest"]["sha256"], IMAGE_DIGEST);
    let run = &predicate["runDetails"];
    assert_eq!(
        run["metadata"]["invocationId"],
        format!("https://localhost/jobs/{}/attempts/1", lease.job_id)
    );
    assert_eq!(run["metadata"]["startedOn"], "2023-11-14T22:13:20Z");
    assert_eq!(run["metadata"]["finishedOn"], "2023-11-14T22:13:23Z");
    assert_eq!(run["byproducts"][0]["name"], "build.log");
    assert_eq!(
        run["byproducts"][0]["digest"]["sha256"],
        Sha256Digest::of(b"hello world\n").hex()
    );
    tc.stop().await;
}

#[tokio::test]
async fn wrong_output_digest_fails_the_job_without_provenance() {
    let tc = TestController::start().await;
    let (mut jobs, mut runners, _, lease, _) = leased_job(&tc).await;

    // A header claiming other bytes than those sent: DATA_LOSS, and nothing is recorded.
    let wrong = Sha256Digest::of(b"something else").hex();
    let err = upload_output_claiming(
        &mut runners,
        &lease,
        "hello",
        HELLO,
        &wrong,
        HELLO.len() as u64,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    // Unclean paths never reach the blob store.
    for bad in ["../etc/passwd", "/abs", "a/../b", "a\0b", "./x", ""] {
        let err = upload_output_claiming(&mut runners, &lease, bad, HELLO, &wrong, 1)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
    }
    // Since nothing was recorded, the path can still be uploaded, once.
    upload_output(&mut runners, &lease, "hello", HELLO).await;
    let twice = upload_output_claiming(
        &mut runners,
        &lease,
        "hello",
        HELLO,
        &Sha256Digest::of(HELLO).hex(),
        HELLO.len() as u64,
    )
    .await
    .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);

    // The runner's completion report disagrees with the controller's hash.
    let mut claimed = output_file("hello", HELLO);
    claimed.sha256 = wrong.clone();
    let done = runners
        .complete_job(complete_request(
            &lease,
            pb::Outcome::Succeeded,
            vec![claimed],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::InfraFailed);
    let job = jobs
        .get_job(pb::GetJobRequest {
            job_id: lease.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state(), pb::JobState::InfraFailed);
    assert!(job.message.contains("output `hello`"), "{}", job.message);
    assert!(job.message.contains(&wrong), "{}", job.message);
    assert!(job.builder_id.is_empty());
    let err = jobs
        .get_provenance(pb::GetProvenanceRequest {
            job_id: lease.job_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    tc.stop().await;
}

#[tokio::test]
async fn unreported_or_missing_outputs_and_image_mismatch_fail_the_job() {
    let tc = TestController::start().await;
    let (mut jobs, mut runners, runner_id, lease, spec) = leased_job(&tc).await;
    upload_output(&mut runners, &lease, "hello", HELLO).await;
    let done = runners
        .complete_job(complete_request(
            &lease,
            pb::Outcome::Succeeded,
            vec![output_file("hello", HELLO), output_file("extra", README)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::InfraFailed);

    // Same spec again; this time the runner claims another image.
    let id = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: spec,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let lease = acquire(&mut runners, &runner_id, 0).await.unwrap();
    assert_eq!(lease.job_id, id);
    upload_output(&mut runners, &lease, "hello", HELLO).await;
    let mut req = complete_request(
        &lease,
        pb::Outcome::Succeeded,
        vec![output_file("hello", HELLO)],
    );
    req.image_manifest_sha256 = Sha256Digest::of(b"other image").hex();
    let done = runners.complete_job(req).await.unwrap().into_inner();
    assert_eq!(done.state(), pb::JobState::InfraFailed);
    let job = jobs
        .get_job(pb::GetJobRequest { job_id: id })
        .await
        .unwrap()
        .into_inner();
    assert!(job.message.contains("image manifest"), "{}", job.message);
    tc.stop().await;
}

#[tokio::test]
async fn stale_unknown_and_reused_lease_tokens_are_rejected() {
    let tc = TestController::start().await;
    let (_jobs, mut runners, _, lease, _) = leased_job(&tc).await;
    let report = |token: &str, job: &str| pb::ReportEventsRequest {
        job_id: job.into(),
        lease_token: token.into(),
        events: vec![log_event(0, b"x")],
    };
    let unknown = "00000000-0000-4000-8000-0000000000ff";
    let err = runners
        .report_events(report(unknown, &lease.job_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("lease"), "{}", err.message());
    let err = runners
        .report_events(report("not-a-token", &lease.job_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("lease_token"));
    // Another job id: this lease's job token does not cover it.
    let err = runners
        .report_events(report(&lease.lease_token, unknown))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = runners
        .download_source(pb::DownloadSourceRequest {
            job_id: lease.job_id.clone(),
            lease_token: unknown.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let mut stale = complete_request(&lease, pb::Outcome::Failed, vec![]);
    stale.lease_token = unknown.into();
    assert_eq!(
        runners.complete_job(stale).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    let mut failed = complete_request(&lease, pb::Outcome::Failed, vec![]);
    failed.message = "step `compile` exited 2".into();
    failed.exit_code = 2;
    let done = runners
        .complete_job(failed.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::Failed);

    // Completed: the lease is dead for every call.
    let again = runners.complete_job(failed).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let err = runners
        .report_events(report(&lease.lease_token, &lease.job_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let late = Sha256Digest::of(b"x").hex();
    let err = upload_output_claiming(&mut runners, &lease, "late", b"x", &late, 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    tc.stop().await;
}

#[tokio::test]
async fn bearer_tokens_are_required() {
    let tc = TestController::start().await;
    let req = || pb::GetJobRequest {
        job_id: "00000000-0000-4000-8000-000000000001".into(),
    };
    for token in [None, Some("wrong"), Some(RUNNER_TOKEN)] {
        let mut jobs = tc.jobs_with(token).await;
        let err = jobs.get_job(req()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
        assert!(err.message().contains("API token"), "{}", err.message());
    }
    for token in [None, Some("wrong"), Some(API_TOKEN)] {
        let mut runners = tc.runners_with(token).await;
        let err = runners
            .register_runner(pb::RegisterRunnerRequest {
                name: "r".into(),
                labels: vec![],
                version: "1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
        assert!(
            err.message().contains("registration secret"),
            "{}",
            err.message()
        );
    }
    // The right token gets through to a readable NOT_FOUND.
    let err = tc.jobs().await.get_job(req()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    tc.stop().await;
}

#[tokio::test]
async fn bad_specs_are_refused_with_the_field_named() {
    let tc = TestController::start().await;
    let mut jobs = tc.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let submit = |spec: serde_json::Value| pb::SubmitJobRequest {
        spec_json: serde_json::to_vec(&spec).unwrap(),
        ..Default::default()
    };
    let mut spec: serde_json::Value = serde_json::from_slice(&spec_json(&source, &[])).unwrap();

    let mut bad_name = spec.clone();
    bad_name["job"]["name"] = "no spaces allowed".into();
    let err = jobs.submit_job(submit(bad_name)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("job.name"), "{}", err.message());

    let mut unknown = spec.clone();
    unknown["steps"][0]["shell"] = "bash".into();
    let err = jobs.submit_job(submit(unknown)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("steps[0]") || err.message().contains("shell"),
        "{}",
        err.message()
    );

    let err = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: b"{not json".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("spec_json"), "{}", err.message());

    spec["source"]["sha256"] = Sha256Digest::of(b"never uploaded").hex().into();
    let err = jobs.submit_job(submit(spec.clone())).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("upload the source first"),
        "{}",
        err.message()
    );

    // Git and archive sources are pinned in the spec itself; the runner fetches them.
    spec["source"] =
        serde_json::json!({"git": "https://git.example/x.git", "commit": "a".repeat(40)});
    jobs.submit_job(submit(spec.clone())).await.unwrap();
    spec["source"] = serde_json::json!({"git": "https://git.example/x.git", "ref": "main"});
    let err = jobs.submit_job(submit(spec)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a ref alone is not a pin"
    );
    tc.stop().await;
}

fn state_of(event: &pb::JobEvent) -> Option<pb::JobState> {
    match &event.kind {
        Some(pb::job_event::Kind::State(s)) => Some(s.state()),
        _ => None,
    }
}

#[tokio::test]
async fn watch_replays_then_follows_to_the_terminal_state() {
    let tc = TestController::start().await;
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let job_id = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: spec_json(&source, &[]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut watch = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
            after_seq: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    // The replayed event arrives before anything else happens.
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (first.seq, state_of(&first)),
        (1, Some(pb::JobState::Queued))
    );

    let runner_id = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.unwrap();
    runners
        .report_events(pb::ReportEventsRequest {
            job_id: job_id.clone(),
            lease_token: lease.lease_token.clone(),
            events: vec![log_event(0, b"building\n")],
        })
        .await
        .unwrap();
    // A snapshot (follow = false) ends after the stored events, while the job still runs.
    let snapshot: Vec<_> = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
            after_seq: 1,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap().seq)
        .collect()
        .await;
    assert_eq!(snapshot, [2, 3, 4]);

    let mut failed = complete_request(&lease, pb::Outcome::TimedOut, vec![]);
    failed.message = "step `compile` ran past 5m".into();
    runners.complete_job(failed).await.unwrap();

    let rest: Vec<pb::JobEvent> = watch.map(|e| e.unwrap()).collect().await;
    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    assert_eq!(state_of(&rest[0]), Some(pb::JobState::Leased));
    assert_eq!(state_of(&rest[1]), Some(pb::JobState::Running));
    assert!(matches!(rest[2].kind, Some(pb::job_event::Kind::Log(_))));
    assert_eq!(state_of(&rest[3]), Some(pb::JobState::TimedOut));

    // Watching a finished job replays and ends; past the end it ends at once.
    let replay: Vec<u64> = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
            after_seq: 3,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap().seq)
        .collect()
        .await;
    assert_eq!(replay, [4, 5]);
    let none: Vec<_> = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
            after_seq: 5,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(none.is_empty());
    let err = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: "00000000-0000-4000-8000-0000000000ff".into(),
            after_seq: 0,
            follow: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    tc.stop().await;
}

#[tokio::test]
async fn acquire_matches_labels_and_wakes_on_submit() {
    let tc = TestController::start().await;
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let plain = register(&mut runners, &[]).await;
    let linux = register(&mut runners, &["linux"]).await;
    assert!(acquire(&mut runners, &linux, 0).await.is_none());

    // A long poll that is answered by a submission, well before its deadline.
    let mut waiting = runners.clone();
    let linux2 = linux.clone();
    let poll = tokio::spawn(async move { acquire(&mut waiting, &linux2, 20_000).await });
    let started = std::time::Instant::now();
    let job_id = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: spec_json(&source, &["linux"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let lease = poll.await.unwrap().expect("the long poll gets the job");
    assert_eq!(lease.job_id, job_id);
    assert!(started.elapsed() < std::time::Duration::from_secs(15));

    // A runner without the label never gets a labelled job.
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: spec_json(&source, &["linux"]),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(acquire(&mut runners, &plain, 50).await.is_none());
    assert!(acquire(&mut runners, &linux, 0).await.is_some());
    // Another runner's id with this runner's token.
    let err = runners
        .acquire_job(pb::AcquireJobRequest {
            runner_id: "00000000-0000-4000-8000-0000000000ff".into(),
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    tc.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let tc = TestController::start().await;
    let mut health = HealthClient::new(tc.channel().await);
    for service in ["", "airlock.v1.JobService", "airlock.v1.RunnerService"] {
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "{service:?}");
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(tc.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "airlock.v1.JobService",
        "airlock.v1.RunnerService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    tc.stop().await;
}
