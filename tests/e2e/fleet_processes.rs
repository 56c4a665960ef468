//! The fleet as separate processes: `airlock controller` (SQLite, or two replicas on one
//! PostgreSQL), two `airlock runner`s with the real sandbox, and clients over real gRPC.
//!
//! - 200 jobs submitted concurrently all complete exactly once (attempt 1, one provenance
//!   that verifies), spread over both runners;
//! - a runner SIGKILLed mid-job: the job is retried on the other runner and completes once;
//!   the dead attempt is recorded INFRA_FAILED;
//! - a runner frozen (SIGSTOP) mid-job comes back (SIGCONT) after its job was re-leased: its
//!   calls are refused and the job keeps the other runner's result;
//! - the controller restarted mid-run loses nothing (SQLite and PostgreSQL);
//! - two controller replicas on one PostgreSQL, runners spread across them: no job leased
//!   twice.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use airlock_attest::{Envelope, Policy, Sha256Digest, load_verifying_key, verify_provenance};
use airlock_job::{JobSpec, SourceSpec};
use airlock_proto::auth::{AuthedChannel, BearerAuth, connect, job_client};
use airlock_proto::v1 as pb;
use airlock_proto::v1::job_service_client::JobServiceClient;
use tokio_stream::StreamExt;

use crate::common::*;

type Jobs = JobServiceClient<AuthedChannel>;

/// A child process killed (SIGKILL) and reaped when dropped, and the file its stderr goes to.
struct Proc {
    child: Kill,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.0.id()).unwrap())
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits for the runner's registration line and returns its runner id.
    fn runner_id(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log_text();
            if let Some(line) = text
                .lines()
                .find(|l| l.contains("registered with the controller"))
                && let Some(rest) = line.split("runner_id=").nth(1)
            {
                return rest.chars().take(36).collect();
            }
            assert!(
                Instant::now() < deadline,
                "runner did not register:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Short leases so a lost runner is noticed in seconds.
const FAST_SCHEDULING: &str = "\n[scheduling]\nlease_ttl = \"3s\"\nheartbeat_wait = \"1s\"\n\
     retry_backoff = \"200ms\"\nsweep_interval = \"100ms\"\n";

/// A controller directory (`controller init`) plus its processes.
struct Fleet {
    root: tempfile::TempDir,
    dir: PathBuf,
    procs: Vec<Proc>,
    ports: Vec<u16>,
}

impl Fleet {
    /// `controller init`, fast leases, optionally PostgreSQL; starts one controller.
    fn start(postgres: Option<&str>) -> Self {
        let root = scratch();
        let dir = root.path().join("controller");
        let port = init_controller(&dir);
        let config = dir.join("controller.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        if let Some(url) = postgres {
            // Top-level keys must come before the first table.
            text = format!("database_url = \"{url}\"\n{text}");
        }
        text.push_str(FAST_SCHEDULING);
        std::fs::write(&config, text).unwrap();
        let mut fleet = Self {
            root,
            dir,
            procs: Vec::new(),
            ports: Vec::new(),
        };
        fleet.spawn_controller(port);
        fleet
    }

    fn url(&self, replica: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[replica])
    }

    /// Starts a controller on `port` with the fleet's configuration (a replica when another
    /// one runs already: same database, blob directory and keys).
    fn spawn_controller(&mut self, port: u16) -> usize {
        let config = self.dir.join(format!("controller-{port}.toml"));
        let text = std::fs::read_to_string(self.dir.join("controller.toml")).unwrap();
        let listen = text
            .lines()
            .find(|l| l.starts_with("listen = "))
            .unwrap()
            .to_owned();
        let text = text.replace(&listen, &format!("listen = \"127.0.0.1:{port}\""));
        std::fs::write(&config, text).unwrap();
        let log = self.dir.join(format!("controller-{port}.log"));
        let child = start_controller_with(&config, port, |c| {
            c.stderr(std::fs::File::create(&log).unwrap());
        });
        self.procs.push(Proc { child, log });
        self.ports.push(port);
        self.ports.len() - 1
    }

    fn spawn_runner(&mut self, name: &str, replica: usize, max_jobs: u32) -> Proc {
        let (layout, _) = base_image();
        let log = self.root.path().join(format!("{name}.log"));
        let child = airlock()
            .args([
                "runner",
                "--controller",
                &self.url(replica),
                "--registration-secret-file",
            ])
            .arg(self.dir.join("runner.secret"))
            .arg("--state-dir")
            .arg(self.root.path().join(name))
            .arg("--allow-oci-layout")
            .arg(&layout)
            .args(["--max-jobs", &max_jobs.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proc {
            child: Kill(child),
            log,
        }
    }

    fn api_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    async fn jobs(&self, replica: usize) -> Jobs {
        let channel = connect(&self.url(replica)).await.unwrap();
        job_client(channel, BearerAuth::new(&self.api_token()).unwrap())
    }

    fn job_file(&self, name: &str, steps: &str) -> PathBuf {
        job_dir(self.root.path(), name, steps, "\"result.txt\"")
    }
}

/// Packs and uploads the job's source once; returns the spec JSON to submit.
async fn prepared_spec(jobs: &mut Jobs, job_file: &Path) -> Vec<u8> {
    let mut spec = JobSpec::from_toml_file(job_file).unwrap();
    spec.resolve_relative_paths(job_file.parent().unwrap());
    let SourceSpec::Path { path, sha256 } = &mut spec.source else {
        panic!("path source expected");
    };
    let tar = tempfile::NamedTempFile::new().unwrap();
    let (digest, _) =
        airlock_runner::source_archive::pack_dir(Path::new(&*path), tar.path()).unwrap();
    let bytes = std::fs::read(tar.path()).unwrap();
    let chunks: Vec<pb::BlobChunk> = bytes
        .chunks(256 * 1024)
        .map(|c| pb::BlobChunk { data: c.to_vec() })
        .collect();
    jobs.upload_source(tokio_stream::iter(chunks))
        .await
        .unwrap();
    *sha256 = Some(digest);
    spec.to_json()
}

async fn submit(jobs: &mut Jobs, spec: &[u8]) -> String {
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: spec.to_vec(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .job_id
}

async fn get(jobs: &mut Jobs, id: &str) -> pb::Job {
    jobs.get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Follows the job's events until it ends (reconnecting if the controller restarts); returns
/// the final record.
async fn finished(fleet: &Fleet, replica: usize, id: &str) -> pb::Job {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "job {id} did not finish");
        let Ok(channel) = connect(&fleet.url(replica)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut jobs = job_client(channel, BearerAuth::new(&fleet.api_token()).unwrap());
        let Ok(stream) = jobs
            .watch_job(pb::WatchJobRequest {
                job_id: id.into(),
                after_seq: 0,
                follow: true,
            })
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        while let Some(Ok(_)) = stream.next().await {}
        if let Ok(job) = jobs.get_job(pb::GetJobRequest { job_id: id.into() }).await {
            let job = job.into_inner();
            if !matches!(
                job.state(),
                pb::JobState::Queued | pb::JobState::Leased | pb::JobState::Running
            ) {
                return job;
            }
        }
    }
}

/// Waits until the job is RUNNING (or LEASED) on some runner; returns that runner's id.
async fn running_on(jobs: &mut Jobs, id: &str) -> String {
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
        if let Some(pb::job_event::Kind::State(s)) = event.unwrap().kind
            && s.state == pb::JobState::Running as i32
        {
            return get(jobs, id).await.runner_id;
        }
    }
    panic!("job {id} ended before it ran");
}

/// Waits until the job's first step has started (its processes run in the sandbox).
async fn step_started(jobs: &mut Jobs, id: &str) {
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
        if let Some(pb::job_event::Kind::Step(step)) = event.unwrap().kind
            && step.phase == pb::step_event::Phase::Started as i32
        {
            return;
        }
    }
    panic!("job {id} ended before a step started");
}

/// The job succeeded once: one provenance envelope, which verifies with the profile's key
/// and builder id, for the output the job wrote.
async fn assert_one_verified_provenance(fleet: &Fleet, jobs: &mut Jobs, job: &pb::Job) {
    assert_eq!(job.state(), pb::JobState::Succeeded, "{}", job.message);
    let docs = jobs
        .get_provenance(pb::GetProvenanceRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(docs.envelope_json.lines().count(), 1);
    let envelope = Envelope::from_json(docs.envelope_json.as_bytes()).unwrap();
    let key = load_verifying_key(&fleet.dir.join("keys/untrusted-pr.pub")).unwrap();
    let output = &job.outputs[0];
    verify_provenance(
        &envelope,
        &[key],
        &[(
            output.path.clone(),
            Sha256Digest::from_hex(&output.sha256).unwrap(),
        )],
        &Policy {
            builder_id: Some(format!("{}/builders/untrusted-pr", fleet.url(0))),
            ..Default::default()
        },
    )
    .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// 200 jobs from 20 concurrent clients; returns after checking every one.
async fn two_hundred_jobs(fleet: &Fleet, replicas: usize) {
    let job_file = fleet.job_file("trivial", "[[steps]]\nrun = \"echo ok > /out/result.txt\"");
    let mut jobs = fleet.jobs(0).await;
    let spec = prepared_spec(&mut jobs, &job_file).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut jobs = fleet.jobs(i % replicas).await;
        let spec = spec.clone();
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                ids.push(submit(&mut jobs, &spec).await);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for c in clients {
        ids.extend(c.await.unwrap());
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);
    let mut runners = HashSet::new();
    for id in &ids {
        let job = finished(fleet, 0, id).await;
        assert_eq!(job.attempts.len(), 1, "job {id} was leased more than once");
        assert_eq!(job.attempt, 1);
        runners.insert(job.runner_id.clone());
        assert_one_verified_provenance(fleet, &mut jobs, &job).await;
    }
    assert_eq!(runners.len(), 2, "both runners took jobs");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn two_hundred_concurrent_jobs_on_two_sandboxed_runners_complete_exactly_once() {
    let mut fleet = Fleet::start(None);
    let _a = fleet.spawn_runner("runner-a", 0, 2);
    let _b = fleet.spawn_runner("runner-b", 0, 2);
    runtime().block_on(two_hundred_jobs(&fleet, 1));
}

#[test]
#[ignore = "needs root, the base image and PostgreSQL: run scripts/test.sh"]
fn two_controller_replicas_on_one_postgres_never_lease_a_job_twice() {
    let url = postgres_database();
    let mut fleet = Fleet::start(Some(&url));
    fleet.spawn_controller(free_port());
    let _a = fleet.spawn_runner("runner-a", 0, 2);
    let _b = fleet.spawn_runner("runner-b", 1, 2);
    runtime().block_on(two_hundred_jobs(&fleet, 2));
}

/// A fresh database on the test server (`AIRLOCK_TEST_POSTGRES_URL`) for one test.
fn postgres_database() -> String {
    let base = std::env::var("AIRLOCK_TEST_POSTGRES_URL")
        .expect("AIRLOCK_TEST_POSTGRES_URL is not set: run `eval \"$(scripts/postgres.sh)\"`");
    let name = format!(
        "e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    runtime().block_on(async {
        let admin = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    });
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_killed_runners_job_is_retried_elsewhere_and_a_frozen_runner_is_fenced() {
    let mut fleet = Fleet::start(None);
    let rt = runtime();
    let slow = fleet.job_file(
        "slow",
        "[[steps]]\nrun = \"sleep 2; echo done > /out/result.txt\"",
    );
    let a = fleet.spawn_runner("runner-a", 0, 1);
    let runner_a = a.runner_id();
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &slow).await;

        // SIGKILL mid-job: the lease lapses, attempt 2 runs on runner B.
        let x = submit(&mut jobs, &spec).await;
        assert_eq!(running_on(&mut jobs, &x).await, runner_a);
        let b = fleet.spawn_runner("runner-b", 0, 1);
        let runner_b = b.runner_id();
        drop(a); // SIGKILL
        let job = finished(&fleet, 0, &x).await;
        let attempts: Vec<_> = job
            .attempts
            .iter()
            .map(|t| (t.runner_id.as_str(), t.state()))
            .collect();
        assert_eq!(
            attempts,
            [
                (runner_a.as_str(), pb::JobState::InfraFailed),
                (runner_b.as_str(), pb::JobState::Succeeded)
            ],
            "{:?}",
            job.attempts
        );
        assert!(job.attempts[0].reason.contains("lease expired"));
        assert_one_verified_provenance(&fleet, &mut jobs, &job).await;

        // SIGSTOP mid-job (a partition): the job moves to runner C; when B wakes up its
        // lease is stale and every call it makes is refused.
        let c = fleet.spawn_runner("runner-c", 0, 1);
        let runner_c = c.runner_id();
        let y = submit(&mut jobs, &spec).await;
        let first = running_on(&mut jobs, &y).await;
        let (frozen, other) = if first == runner_b {
            (&b, runner_c.clone())
        } else {
            (&c, runner_b.clone())
        };
        frozen.signal(nix::sys::signal::Signal::SIGSTOP);
        let job = finished(&fleet, 0, &y).await;
        frozen.signal(nix::sys::signal::Signal::SIGCONT);
        assert_eq!(job.runner_id, other);
        assert_eq!(job.attempts[0].state(), pb::JobState::InfraFailed);
        assert_one_verified_provenance(&fleet, &mut jobs, &job).await;
        // The woken runner notices its lease is gone and gives the job up.
        let deadline = Instant::now() + Duration::from_secs(30);
        let noticed = |log: &str| {
            log.lines()
                .any(|l| l.contains("the lease is gone") && l.contains(y.as_str()))
        };
        while !noticed(&frozen.log_text()) {
            assert!(
                Instant::now() < deadline,
                "the frozen runner never noticed:\n{}",
                frozen.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let after = get(&mut jobs, &y).await;
        assert_eq!(after.state(), pb::JobState::Succeeded);
        assert_eq!(after.attempts.len(), 2);
        assert_eq!(after.outputs, job.outputs);
    });
}

fn restart_loses_nothing(postgres: Option<String>) {
    let mut fleet = Fleet::start(postgres.as_deref());
    let _a = fleet.spawn_runner("runner-a", 0, 2);
    let _b = fleet.spawn_runner("runner-b", 0, 2);
    let rt = runtime();
    let job_file = fleet.job_file(
        "restart",
        "[[steps]]\nrun = \"sleep 1; echo ok > /out/result.txt\"",
    );
    let ids = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let mut ids = Vec::new();
        for _ in 0..8 {
            ids.push(submit(&mut jobs, &spec).await);
        }
        running_on(&mut jobs, &ids[0]).await;
        ids
    });
    // Stop the controller mid-run (SIGTERM: graceful) and start it again on the same port.
    let mut controller = fleet.procs.remove(0);
    controller.signal(nix::sys::signal::Signal::SIGTERM);
    let status = controller.child.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown: {status:?}");
    let port = fleet.ports.remove(0);
    fleet.spawn_controller(port);
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        for id in &ids {
            let job = finished(&fleet, 0, id).await;
            assert_one_verified_provenance(&fleet, &mut jobs, &job).await;
        }
    });
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_controller_restart_mid_run_loses_nothing_sqlite() {
    restart_loses_nothing(None);
}

#[test]
#[ignore = "needs root, the base image and PostgreSQL: run scripts/test.sh"]
fn a_controller_restart_mid_run_loses_nothing_postgres() {
    restart_loses_nothing(Some(postgres_database()));
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn airlock_cancel_stops_a_running_job_within_two_seconds() {
    let mut fleet = Fleet::start(None);
    let runner = fleet.spawn_runner("runner-a", 0, 1);
    let job_file = fleet.job_file(
        "endless",
        "[[steps]]\nrun = \"sleep 600; echo never > /out/result.txt\"",
    );
    let rt = runtime();
    let id = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let id = submit(&mut jobs, &spec).await;
        step_started(&mut jobs, &id).await;
        id
    });
    let asked = Instant::now();
    let mut cancel = airlock();
    cancel
        .args([
            "cancel",
            &id,
            "--reason",
            "e2e",
            "--controller",
            &fleet.url(0),
        ])
        .arg("--token-file")
        .arg(fleet.dir.join("admin.token"));
    let o = run(cancel);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let job = rt.block_on(finished(&fleet, 0, &id));
    let took = asked.elapsed();
    assert_eq!(job.state(), pb::JobState::Cancelled, "{}", job.message);
    assert!(
        took < Duration::from_secs(2),
        "the job's processes were stopped only after {took:?}; runner log:\n{}",
        runner.log_text()
    );
    assert!(job.cancel_requested);
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn sigterm_drains_a_runner_its_running_job_finishes_then_it_exits() {
    let mut fleet = Fleet::start(None);
    let mut runner = fleet.spawn_runner("runner-a", 0, 1);
    let job_file = fleet.job_file(
        "drain",
        "[[steps]]\nrun = \"sleep 1; echo drained > /out/result.txt\"",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let id = submit(&mut jobs, &spec).await;
        let queued_after = submit(&mut jobs, &spec).await;
        step_started(&mut jobs, &id).await;
        runner.signal(nix::sys::signal::Signal::SIGTERM);
        let job = finished(&fleet, 0, &id).await;
        assert_one_verified_provenance(&fleet, &mut jobs, &job).await;
        // The draining runner took no new work: the second job is still queued.
        assert_eq!(
            get(&mut jobs, &queued_after).await.state(),
            pb::JobState::Queued
        );
    });
    let status = runner.child.0.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", runner.log_text());
    assert!(
        runner.log_text().contains("draining"),
        "{}",
        runner.log_text()
    );
}
