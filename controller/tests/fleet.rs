//! Fleet behaviour over real gRPC on loopback with a real SQLite file and lightweight runner
//! clients (no sandbox): many concurrent jobs exactly once, lease expiry and fencing of a
//! stale runner, cancel through the heartbeat, controller-side deadlines, idempotent submit,
//! a controller restart, and `/metrics` + `/healthz`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_attest::{Envelope, Policy, Sha256Digest, load_verifying_key, verify_provenance};
use airlock_controller::database::DatabaseUrl;
use airlock_controller::scheduling::{HumanDuration, SchedulingConfig};
use airlock_controller::{
    Clock, Controller, ControllerConfig, IdGen, ManualClock, RandomIds, SystemClock,
};
use airlock_proto::v1 as pb;
use airlock_proto::v1::job_service_client::JobServiceClient;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Endpoint;

const SOURCE: &[u8] = b"fleet source tar";

/// Which store a test's controllers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A URL of the test database (`AIRLOCK_TEST_POSTGRES_URL`) whose connections use a fresh
/// schema of their own.
async fn postgres_schema_url() -> String {
    let url = std::env::var("AIRLOCK_TEST_POSTGRES_URL").expect(
        "AIRLOCK_TEST_POSTGRES_URL is not set: run `eval \"$(scripts/postgres.sh)\"` first",
    );
    let schema = format!("f_{}", uuid_like());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={schema}")
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One controller process's worth of serving (a replica).
struct Server {
    addr: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// Controllers (one, or replicas sharing a PostgreSQL database and a blob directory) over
/// state that outlives restarts.
struct Fleet {
    dir: tempfile::TempDir,
    config: ControllerConfig,
    clock: Arc<dyn Clock>,
    servers: Vec<Server>,
    addr: std::net::SocketAddr,
}

impl Fleet {
    async fn start(scheduling: SchedulingConfig, clock: Arc<dyn Clock>) -> Self {
        Self::start_on(Backend::Sqlite, scheduling, clock).await
    }

    async fn start_on(
        backend: Backend,
        scheduling: SchedulingConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = airlock_attest::write_keypair(dir.path(), "provenance").unwrap();
        let mut config =
            ControllerConfig::local(dir.path().join("state"), key, API_TOKEN, RUNNER_TOKEN);
        config.scheduling = scheduling;
        if backend == Backend::Postgres {
            config.database_url = Some(DatabaseUrl::new(postgres_schema_url().await));
        }
        let mut fleet = Self {
            dir,
            config,
            clock,
            servers: Vec::new(),
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        fleet.add_replica().await;
        fleet.addr = fleet.servers[0].addr;
        fleet
    }

    /// Starts one more controller on the same configuration; returns its index.
    async fn add_replica(&mut self) -> usize {
        let ids: Arc<dyn IdGen> = Arc::new(RandomIds);
        let controller = Controller::open_with(&self.config, Arc::clone(&self.clock), ids)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            controller
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        self.servers.push(Server {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        });
        self.servers.len() - 1
    }

    async fn stop(&mut self) {
        for server in &mut self.servers {
            if let Some(tx) = server.shutdown.take() {
                let _ = tx.send(());
            }
            if let Some(h) = server.handle.take() {
                h.await.unwrap();
            }
        }
        self.servers.clear();
    }

    async fn restart(&mut self) {
        self.stop().await;
        self.add_replica().await;
        self.addr = self.servers[0].addr;
    }

    async fn channel_to(&self, replica: usize) -> tonic::transport::Channel {
        Endpoint::from_shared(format!("http://{}", self.servers[replica].addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn channel(&self) -> tonic::transport::Channel {
        self.channel_to(0).await
    }

    async fn jobs(&self) -> Jobs {
        JobServiceClient::with_interceptor(self.channel().await, Bearer(Some(API_TOKEN.into())))
    }

    async fn jobs_at(&self, replica: usize) -> Jobs {
        JobServiceClient::with_interceptor(
            self.channel_to(replica).await,
            Bearer(Some(API_TOKEN.into())),
        )
    }

    async fn runners(&self) -> Runners {
        self.runners_at(0).await
    }

    async fn runners_at(&self, replica: usize) -> Runners {
        Runners::new(self.channel_to(replica).await, Some(RUNNER_TOKEN))
    }

    fn public_key(&self) -> airlock_attest::VerifyingKey {
        load_verifying_key(&self.dir.path().join("provenance.pub")).unwrap()
    }
}

fn fast() -> SchedulingConfig {
    SchedulingConfig {
        lease_ttl: HumanDuration(Duration::from_secs(3)),
        heartbeat_wait: HumanDuration(Duration::from_secs(1)),
        retry_backoff: HumanDuration(Duration::from_millis(100)),
        sweep_interval: HumanDuration(Duration::from_millis(50)),
        ..SchedulingConfig::default()
    }
}

async fn submit(jobs: &mut Jobs, source: &Sha256Digest, key: &str) -> pb::SubmitJobResponse {
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: spec_json(source, &[]),
        idempotency_key: key.into(),
        priority: 0,
        spec_signature: Vec::new(),
    })
    .await
    .unwrap()
    .into_inner()
}

async fn get(jobs: &mut Jobs, id: &str) -> pb::Job {
    jobs.get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// The output a lightweight runner "builds" for a job: unique per job.
fn built(job_id: &str) -> Vec<u8> {
    format!("binary of {job_id}").into_bytes()
}

/// What a lightweight runner does with a lease: report, upload, complete.
async fn run_light(
    runners: &mut Runners,
    lease: &pb::Lease,
) -> Result<pb::JobState, tonic::Status> {
    use pb::step_event::Phase;
    runners
        .report_events(pb::ReportEventsRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            events: vec![
                step_event(0, "compile", Phase::Started),
                log_event(0, b"compiling\n"),
                step_event(0, "compile", Phase::Finished),
            ],
        })
        .await?;
    let data = built(&lease.job_id);
    let digest = Sha256Digest::of(&data).hex();
    upload_output_claiming(runners, lease, "hello", &data, &digest, data.len() as u64).await?;
    let done = runners
        .complete_job(complete_request(
            lease,
            pb::Outcome::Succeeded,
            vec![output_file("hello", &data)],
        ))
        .await?
        .into_inner();
    Ok(done.state())
}

/// Waits (by following the job's events, no polling) until the job is in `state`.
async fn wait_for_state(jobs: &mut Jobs, id: &str, state: pb::JobState) {
    wait_for_state_saying(jobs, id, state, "").await;
}

/// Like [`wait_for_state`], for a state change whose message contains `needle`.
async fn wait_for_state_saying(jobs: &mut Jobs, id: &str, state: pb::JobState, needle: &str) {
    let mut stream = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: id.into(),
            after_seq: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(event) = stream.next().await {
        if let Some(pb::job_event::Kind::State(change)) = &event.unwrap().kind
            && change.state == state as i32
            && change.message.contains(needle)
        {
            return;
        }
    }
    // The stream ended at a terminal state that was not the one awaited.
    let job = get(jobs, id).await;
    assert_eq!(job.state(), state, "{}", job.message);
}

fn verify_one(fleet: &Fleet, job_id: &str, docs: &pb::ProvenanceDocuments) {
    let envelope = Envelope::from_json(docs.envelope_json.as_bytes()).unwrap();
    assert_eq!(
        docs.envelope_json.lines().count(),
        1,
        "exactly one envelope"
    );
    verify_provenance(
        &envelope,
        &[fleet.public_key()],
        &[("hello".into(), Sha256Digest::of(&built(job_id)))],
        &Policy {
            builder_id: Some("https://localhost/builders/local/trusted".into()),
            ..Default::default()
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_jobs_complete_exactly_once_on_two_runners() {
    two_hundred_jobs(Backend::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: AIRLOCK_TEST_POSTGRES_URL (scripts/postgres.sh)"]
async fn two_hundred_concurrent_jobs_complete_exactly_once_on_postgres() {
    two_hundred_jobs(Backend::Postgres, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: AIRLOCK_TEST_POSTGRES_URL (scripts/postgres.sh)"]
async fn two_replicas_on_one_postgres_never_lease_a_job_twice() {
    two_hundred_jobs(Backend::Postgres, 2).await;
}

/// 200 jobs submitted concurrently (spread over the replicas), two runners (spread over the
/// replicas) with 8 workers each: every job runs exactly once, on attempt 1, and has exactly
/// one provenance envelope that verifies.
async fn two_hundred_jobs(backend: Backend, replicas: usize) {
    let mut fleet = Fleet::start_on(backend, fast(), Arc::new(SystemClock)).await;
    for _ in 1..replicas {
        fleet.add_replica().await;
    }
    let mut jobs = fleet.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;

    // Submitted concurrently from 20 clients.
    let mut submitters = Vec::new();
    for i in 0..20 {
        let mut jobs = fleet.jobs_at(i % replicas).await;
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                ids.push(submit(&mut jobs, &source, "").await.job_id);
            }
            ids
        }));
    }
    // Two runners, each with 8 concurrent workers; each records what it completed.
    let mut workers = Vec::new();
    for r in 0..2 {
        let mut registered = fleet.runners_at(r % replicas).await;
        let runner_id = register(&mut registered, &[]).await;
        for w in 0..8 {
            // Each runner's workers talk to every replica in turn, with the runner's token.
            let mut runners = registered.on(fleet.channel_to((r + w) % replicas).await);
            let runner_id = runner_id.clone();
            workers.push(tokio::spawn(async move {
                let mut done = Vec::new();
                while let Some(lease) = acquire(&mut runners, &runner_id, 1_500).await {
                    let state = run_light(&mut runners, &lease).await.unwrap();
                    done.push((lease.job_id, lease.attempt, state, r));
                }
                done
            }));
        }
    }
    let mut submitted = HashSet::new();
    for s in submitters {
        submitted.extend(s.await.unwrap());
    }
    assert_eq!(submitted.len(), 200);
    let mut completions: BTreeMap<String, Vec<(u32, pb::JobState, usize)>> = BTreeMap::new();
    for w in workers {
        for (job, attempt, state, runner) in w.await.unwrap() {
            completions
                .entry(job)
                .or_default()
                .push((attempt, state, runner));
        }
    }
    assert_eq!(completions.len(), 200, "every job ran");
    let mut per_runner = [0; 2];
    for (job, runs) in &completions {
        assert!(submitted.contains(job));
        assert_eq!(runs.len(), 1, "job {job} ran more than once: {runs:?}");
        assert_eq!((runs[0].0, runs[0].1), (1, pb::JobState::Succeeded));
        per_runner[runs[0].2] += 1;
    }
    assert!(per_runner.iter().all(|n| *n > 0), "{per_runner:?}");
    for job in &submitted {
        let record = get(&mut jobs, job).await;
        assert_eq!(record.state(), pb::JobState::Succeeded);
        assert_eq!(record.attempts.len(), 1);
        let docs = jobs
            .get_provenance(pb::GetProvenanceRequest {
                job_id: job.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        verify_one(&fleet, job, &docs);
    }
    fleet.stop().await;
}

#[tokio::test]
async fn a_lost_runner_is_fenced_and_its_job_retried_on_another_runner() {
    let clock = Arc::new(ManualClock::at_unix_ms(START_MS));
    let mut fleet = Fleet::start(fast(), clock.clone()).await;
    let mut jobs = fleet.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let job_id = submit(&mut jobs, &source, "").await.job_id;

    let mut a = fleet.runners().await;
    let runner_a = register(&mut a, &[]).await;
    let lease_a = acquire(&mut a, &runner_a, 0).await.unwrap();
    assert_eq!(lease_a.lease_ttl_ms, 3_000);
    let hb = a
        .heartbeat(pb::HeartbeatRequest {
            job_id: job_id.clone(),
            lease_token: lease_a.lease_token.clone(),
            wait_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!hb.cancel_requested);

    // Runner A goes silent; its lease lapses and the sweeper re-queues the job.
    clock.advance(Duration::from_secs(4));
    wait_for_state_saying(
        &mut jobs,
        &job_id,
        pb::JobState::Queued,
        "retrying as attempt 2",
    )
    .await;
    clock.advance(Duration::from_secs(1)); // past the retry backoff
    let mut b = fleet.runners().await;
    let runner_b = register(&mut b, &[]).await;
    let lease_b = acquire(&mut b, &runner_b, 2_000).await.unwrap();
    assert_eq!(
        (lease_b.job_id.as_str(), lease_b.attempt),
        (job_id.as_str(), 2)
    );

    // A comes back: every call about its old lease is refused. Its job token ended with
    // the lease (PERMISSION_DENIED, before the lease token is even looked at).
    let stale = run_light(&mut a, &lease_a).await.unwrap_err();
    assert_eq!(stale.code(), Code::PermissionDenied, "{stale}");
    let stale = a
        .complete_job(complete_request(&lease_a, pb::Outcome::Failed, vec![]))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::PermissionDenied);
    let stale = a
        .heartbeat(pb::HeartbeatRequest {
            job_id: job_id.clone(),
            lease_token: lease_a.lease_token.clone(),
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::PermissionDenied);
    // Even with B's credentials, A's old lease token is fenced off.
    let mut with_b_token = b.job(&lease_b);
    let stale = with_b_token
        .complete_job(complete_request(&lease_a, pb::Outcome::Failed, vec![]))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);

    assert_eq!(
        run_light(&mut b, &lease_b).await.unwrap(),
        pb::JobState::Succeeded
    );
    let job = get(&mut jobs, &job_id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
    let attempts: Vec<_> = job
        .attempts
        .iter()
        .map(|a| (a.attempt, a.runner_id.as_str(), a.state()))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, runner_a.as_str(), pb::JobState::InfraFailed),
            (2, runner_b.as_str(), pb::JobState::Succeeded)
        ]
    );
    assert!(job.attempts[0].reason.contains("lease expired"));
    let docs = jobs
        .get_provenance(pb::GetProvenanceRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    verify_one(&fleet, &job_id, &docs);
    fleet.stop().await;
}

#[tokio::test]
async fn cancel_reaches_a_heartbeating_runner_within_two_seconds() {
    let mut fleet = Fleet::start(SchedulingConfig::default(), Arc::new(SystemClock)).await;
    let mut jobs = fleet.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let queued = submit(&mut jobs, &source, "").await.job_id;
    let running = submit(&mut jobs, &source, "").await.job_id;
    let mut runners = fleet.runners().await;
    let runner = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner, 0).await.unwrap();
    assert_eq!(lease.job_id, queued, "FIFO");

    // The other job is still queued: cancelling it ends it at once.
    let resp = jobs
        .cancel_job(pb::CancelJobRequest {
            job_id: running.clone(),
            reason: "superseded".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.state(), pb::JobState::Cancelled);
    assert!(
        get(&mut jobs, &running)
            .await
            .message
            .contains("superseded")
    );

    // The leased one: a long-polling heartbeat returns as soon as the cancel arrives.
    let mut hb_client = runners.on(fleet.channel().await);
    let hb_req = pb::HeartbeatRequest {
        job_id: lease.job_id.clone(),
        lease_token: lease.lease_token.clone(),
        wait_ms: 30_000,
    };
    let heartbeat = tokio::spawn(async move {
        let r = hb_client.heartbeat(hb_req).await.unwrap().into_inner();
        (r, Instant::now())
    });
    // Let the first heartbeat start waiting: a report goes through the same server first.
    runners
        .report_events(pb::ReportEventsRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            events: vec![log_event(0, b"working\n")],
        })
        .await
        .unwrap();
    let asked = Instant::now();
    let resp = jobs
        .cancel_job(pb::CancelJobRequest {
            job_id: lease.job_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.state(), pb::JobState::Running);
    let (hb, answered) = heartbeat.await.unwrap();
    assert!(hb.cancel_requested);
    let took = answered.saturating_duration_since(asked);
    assert!(took < Duration::from_secs(2), "cancel took {took:?}");
    // ReportEvents says so too, and the runner completes the job as cancelled.
    let report = runners
        .report_events(pb::ReportEventsRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            events: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(report.cancel_requested);
    let done = runners
        .complete_job(complete_request(&lease, pb::Outcome::Cancelled, vec![]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::Cancelled);
    assert!(get(&mut jobs, &lease.job_id).await.cancel_requested);
    fleet.stop().await;
}

#[tokio::test]
async fn the_controller_times_out_a_job_whose_runner_is_gone() {
    let clock = Arc::new(ManualClock::at_unix_ms(START_MS));
    let scheduling = SchedulingConfig {
        lease_ttl: HumanDuration(Duration::from_secs(3600)),
        heartbeat_wait: HumanDuration(Duration::from_secs(1)),
        deadline_grace: HumanDuration(Duration::from_secs(10)),
        sweep_interval: HumanDuration(Duration::from_millis(50)),
        ..SchedulingConfig::default()
    };
    let mut fleet = Fleet::start(scheduling, clock.clone()).await;
    let mut jobs = fleet.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let job_id = submit(&mut jobs, &source, "").await.job_id;
    let mut runners = fleet.runners().await;
    let runner = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner, 0).await.unwrap();
    // The spec's timeout is 5m; with 10 s of grace the deadline is at 5m10s.
    clock.advance(Duration::from_secs(300));
    clock.advance(Duration::from_secs(11));
    wait_for_state(&mut jobs, &job_id, pb::JobState::TimedOut).await;
    let job = get(&mut jobs, &job_id).await;
    assert!(job.message.contains("deadline"), "{}", job.message);
    assert_eq!(job.attempts[0].state(), pb::JobState::TimedOut);
    // The job token ended with the attempt.
    let late = run_light(&mut runners, &lease).await.unwrap_err();
    assert_eq!(late.code(), Code::PermissionDenied);
    fleet.stop().await;
}

#[tokio::test]
async fn submit_is_idempotent_per_key() {
    let mut fleet = Fleet::start(fast(), Arc::new(SystemClock)).await;
    let mut jobs = fleet.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let first = submit(&mut jobs, &source, "pipeline-7/build").await;
    assert!(!first.existing);
    let again = submit(&mut jobs, &source, "pipeline-7/build").await;
    assert_eq!(
        (again.job_id.as_str(), again.existing),
        (first.job_id.as_str(), true)
    );
    let other = submit(&mut jobs, &source, "pipeline-8/build").await;
    assert_ne!(other.job_id, first.job_id);
    let mut spec: serde_json::Value = serde_json::from_slice(&spec_json(&source, &[])).unwrap();
    spec["job"]["name"] = "changed".into();
    let conflict = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: serde_json::to_vec(&spec).unwrap(),
            idempotency_key: "pipeline-7/build".into(),
            priority: 0,
            spec_signature: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert!(conflict.message().contains(&first.job_id));
    for bad in ["has space", &"k".repeat(129)] {
        let err = jobs
            .submit_job(pb::SubmitJobRequest {
                spec_json: spec_json(&source, &[]),
                idempotency_key: bad.to_string(),
                priority: 0,
                spec_signature: Vec::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("idempotency_key"));
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restart_mid_run_loses_nothing() {
    restart_mid_run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: AIRLOCK_TEST_POSTGRES_URL (scripts/postgres.sh)"]
async fn a_controller_restart_mid_run_loses_nothing_on_postgres() {
    restart_mid_run(Backend::Postgres).await;
}

async fn restart_mid_run(backend: Backend) {
    let mut fleet = Fleet::start_on(backend, fast(), Arc::new(SystemClock)).await;
    let mut jobs = fleet.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(submit(&mut jobs, &source, "").await.job_id);
    }
    let mut runners = fleet.runners().await;
    let runner = register(&mut runners, &[]).await;
    for _ in 0..10 {
        let lease = acquire(&mut runners, &runner, 0).await.unwrap();
        run_light(&mut runners, &lease).await.unwrap();
    }
    // One job is mid-run when the controller goes away.
    let in_flight = acquire(&mut runners, &runner, 0).await.unwrap();
    runners
        .report_events(pb::ReportEventsRequest {
            job_id: in_flight.job_id.clone(),
            lease_token: in_flight.lease_token.clone(),
            events: vec![log_event(0, b"before the restart\n")],
        })
        .await
        .unwrap();
    fleet.restart().await;

    // Same runner id, same lease: the runner carries on against the new process.
    let mut jobs = fleet.jobs().await;
    let mut runners = runners.on(fleet.channel().await);
    assert_eq!(
        run_light(&mut runners, &in_flight).await.unwrap(),
        pb::JobState::Succeeded
    );
    while let Some(lease) = acquire(&mut runners, &runner, 300).await {
        assert_eq!(lease.attempt, 1);
        run_light(&mut runners, &lease).await.unwrap();
    }
    for id in &ids {
        let job = get(&mut jobs, id).await;
        assert_eq!(
            job.state(),
            pb::JobState::Succeeded,
            "{id}: {}",
            job.message
        );
        assert_eq!(job.attempts.len(), 1);
        let docs = jobs
            .get_provenance(pb::GetProvenanceRequest { job_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        verify_one(&fleet, id, &docs);
    }
    fleet.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn metrics_and_healthz_share_the_grpc_address() {
    let mut fleet = Fleet::start(fast(), Arc::new(SystemClock)).await;
    let mut jobs = fleet.jobs().await;
    let source = upload_source(&mut jobs, SOURCE).await;
    submit(&mut jobs, &source, "").await;
    let mut runners = fleet.runners().await;
    let runner = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner, 0).await.unwrap();
    run_light(&mut runners, &lease).await.unwrap();
    submit(&mut jobs, &source, "").await;

    let health = http_get(fleet.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    let metrics = http_get(fleet.addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    for needle in [
        "airlock_jobs{state=\"queued\"} 1",
        "airlock_queue_wait_seconds_count 1",
        "airlock_start_latency_seconds_count 1",
        "airlock_execution_seconds_count 1",
        "airlock_jobs_finished_total{state=\"SUCCEEDED\"} 1",
        "airlock_lease_expiries_total 0",
        "airlock_jobs_submitted_total 2",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    // gRPC still works on the same listener.
    get(&mut jobs, &lease.job_id).await;
    fleet.stop().await;
}
