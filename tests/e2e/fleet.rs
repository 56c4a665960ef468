//! The fleet as separate processes, for the fleet and chaos tests: a controller directory
//! (`controller init`) with its controllers, runners with the real sandbox, and clients over
//! real gRPC on loopback.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_attest::{Envelope, Policy, Sha256Digest, load_verifying_key, verify_provenance};
use airlock_job::{JobSpec, SourceSpec};
use airlock_proto::auth::{AuthedChannel, BearerAuth, connect, job_client};
use airlock_proto::v1 as pb;
use airlock_proto::v1::job_service_client::JobServiceClient;
use tokio_stream::StreamExt;

use crate::common::*;

/// A job-service client with the fleet's admin token.
pub type Jobs = JobServiceClient<AuthedChannel>;

/// A child process killed (SIGKILL) and reaped when dropped, and the file its stderr goes to.
pub struct Proc {
    pub child: Kill,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.0.id()).unwrap())
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    pub fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits for the runner's registration line and returns its runner id.
    pub fn runner_id(&self) -> String {
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

pub fn strip_ansi(s: &str) -> String {
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
pub const FAST_SCHEDULING: &str = "\n[scheduling]\nlease_ttl = \"3s\"\nheartbeat_wait = \"1s\"\n\
     retry_backoff = \"200ms\"\nsweep_interval = \"100ms\"\n";

/// A controller directory (`controller init`) plus its processes.
pub struct Fleet {
    pub root: tempfile::TempDir,
    pub dir: PathBuf,
    pub procs: Vec<Proc>,
    pub ports: Vec<u16>,
}

impl Fleet {
    /// `controller init`, fast leases, optionally PostgreSQL; starts one controller.
    pub fn start(postgres: Option<&str>) -> Self {
        let top = postgres.map_or_else(String::new, |url| format!("database_url = \"{url}\"\n"));
        Self::start_with(&top)
    }

    /// [`Fleet::start`] with `top` (top-level keys, e.g. `blob_dir = ...`) added to the
    /// controller's configuration.
    pub fn start_with(top: &str) -> Self {
        let root = scratch();
        let dir = root.path().join("controller");
        let port = init_controller(&dir);
        let config = dir.join("controller.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        // Top-level keys must come before the first table.
        text = format!("{top}{text}");
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

    pub fn url(&self, replica: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[replica])
    }

    /// Starts a controller on `port` with the fleet's configuration (a replica when another
    /// one runs already: same database, blob directory and keys).
    pub fn spawn_controller(&mut self, port: u16) -> usize {
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
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = start_controller_with(&config, port, |c| {
            c.stderr(file);
        });
        self.procs.push(Proc { child, log });
        self.ports.push(port);
        self.ports.len() - 1
    }

    /// A runner on replica `replica` with its own state dir (`<root>/<name>`).
    pub fn spawn_runner(&mut self, name: &str, replica: usize, max_jobs: u32) -> Proc {
        let state = self.root.path().join(name);
        self.spawn_runner_on(name, replica, max_jobs, &state)
    }

    /// A runner on replica `replica` with state dir `state` (which other runners may share);
    /// its log is `<root>/<name>.log` (appended to, so a restarted runner keeps one log).
    pub fn spawn_runner_on(&self, name: &str, replica: usize, max_jobs: u32, state: &Path) -> Proc {
        let log = self.root.path().join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = runner_command(&self.url(replica), &self.dir.join("runner.secret"), state)
            .args(["--max-jobs", &max_jobs.to_string()])
            .env("RUST_LOG", "info")
            .stderr(file)
            .spawn()
            .unwrap();
        Proc {
            child: Kill(child),
            log,
        }
    }

    /// SIGKILLs controller `replica` (no graceful shutdown) and waits until it is gone.
    pub fn kill_controller(&mut self, replica: usize) {
        let proc = &mut self.procs[replica];
        let _ = proc.child.0.kill();
        proc.child.0.wait().unwrap();
    }

    /// Starts controller `replica` again on its port (after [`Fleet::kill_controller`]).
    pub fn restart_controller(&mut self, replica: usize) {
        let port = self.ports[replica];
        self.spawn_controller(port);
        let proc = self.procs.pop().unwrap();
        self.ports.pop();
        self.procs[replica] = proc;
    }

    pub fn api_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub async fn jobs(&self, replica: usize) -> Jobs {
        let channel = connect(&self.url(replica)).await.unwrap();
        job_client(channel, BearerAuth::new(&self.api_token()).unwrap())
    }

    pub fn job_file(&self, name: &str, steps: &str) -> PathBuf {
        job_dir(self.root.path(), name, steps, "\"result.txt\"")
    }
}

/// Packs and uploads the job's source once; returns the spec JSON to submit.
pub async fn prepared_spec(jobs: &mut Jobs, job_file: &Path) -> Vec<u8> {
    let mut spec = JobSpec::from_toml_file(job_file).unwrap();
    spec.resolve_relative_paths(job_file.parent().unwrap());
    let SourceSpec::Path { path, sha256 } = &mut spec.source else {
        panic!("path source expected");
    };
    let tar = tempfile::NamedTempFile::new().unwrap();
    let (digest, _) =
        airlock_runner::fetch::source_archive::pack_dir(Path::new(&*path), tar.path()).unwrap();
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

pub async fn submit(jobs: &mut Jobs, spec: &[u8]) -> String {
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: spec.to_vec(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .job_id
}

pub async fn get(jobs: &mut Jobs, id: &str) -> pb::Job {
    jobs.get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Follows the job's events until it ends (reconnecting if the controller restarts); returns
/// the final record.
pub async fn finished(fleet: &Fleet, replica: usize, id: &str) -> pb::Job {
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
pub async fn running_on(jobs: &mut Jobs, id: &str) -> String {
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
pub async fn step_started(jobs: &mut Jobs, id: &str) {
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

/// How many provenance envelopes the controller holds for `job`; each one must verify with
/// the profile's key and builder id for the job's outputs (a bad one fails the test).
pub async fn verified_provenances(fleet: &Fleet, jobs: &mut Jobs, job: &pb::Job) -> usize {
    let docs = jobs
        .get_provenance(pb::GetProvenanceRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let key = load_verifying_key(&fleet.dir.join("keys/untrusted-pr.pub")).unwrap();
    let subjects: Vec<_> = job
        .outputs
        .iter()
        .map(|o| (o.path.clone(), Sha256Digest::from_hex(&o.sha256).unwrap()))
        .collect();
    let policy = Policy {
        builder_id: Some(format!("{}/builders/untrusted-pr", fleet.url(0))),
        ..Default::default()
    };
    let mut count = 0;
    for line in docs.envelope_json.lines() {
        let envelope = Envelope::from_json(line.as_bytes()).unwrap();
        verify_provenance(&envelope, std::slice::from_ref(&key), &subjects, &policy)
            .unwrap_or_else(|e| panic!("provenance of job {}: {e}", job.job_id));
        count += 1;
    }
    count
}

/// The job succeeded once: one provenance envelope, which verifies with the profile's key
/// and builder id, for the outputs the job wrote.
pub async fn assert_one_verified_provenance(fleet: &Fleet, jobs: &mut Jobs, job: &pb::Job) {
    assert_eq!(job.state(), pb::JobState::Succeeded, "{}", job.message);
    assert_eq!(verified_provenances(fleet, jobs, job).await, 1);
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh database on the test server (`AIRLOCK_TEST_POSTGRES_URL`) for one test.
pub fn postgres_database() -> String {
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
