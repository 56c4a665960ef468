//! Fleet benchmarks (see BENCHMARKS.md and bench/fleet.sh).
//!
//! `throughput`: an in-process controller (real gRPC on loopback, a real SQLite file or
//! PostgreSQL) with N jobs queued; K lightweight runner clients (no sandbox) do lease+complete
//! cycles as fast as they can. Two cycle kinds: `bare` (AcquireJob + CompleteJob(FAILED): the
//! lease and fencing path alone) and `full` (AcquireJob + ReportEvents + UploadOutput +
//! CompleteJob(SUCCEEDED), which re-hashes the output and signs provenance).
//!
//! `latency`: submit -> signed provenance available (GetProvenance answers), one job at a time,
//! either against the in-process controller with a lightweight runner, or (`--controller URL
//! --token-file F --job FILE`) against a running controller whose real runners execute FILE in
//! the sandbox.
//!
//! Usage:
//!   fleet_bench throughput [--backend sqlite|postgres] [--jobs N] [--runners K] [--cycle bare|full]
//!   fleet_bench latency [--jobs N] [--controller URL --token-file F --job FILE]
//!
//! PostgreSQL comes from AIRLOCK_TEST_POSTGRES_URL (scripts/postgres.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool, not product code

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_attest::{Sha256Digest, write_keypair};
use airlock_controller::database::DatabaseUrl;
use airlock_controller::scheduling::SchedulingConfig;
use airlock_controller::{Controller, ControllerConfig, RandomIds, SystemClock};
use airlock_job::{JobSpec, SourceSpec};
use airlock_proto::auth::{AuthedChannel, BearerAuth, connect, job_client, runner_client};
use airlock_proto::v1 as pb;
use airlock_proto::v1::job_service_client::JobServiceClient;
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use tokio_stream::StreamExt;

type Jobs = JobServiceClient<AuthedChannel>;
type Runners = RunnerServiceClient<AuthedChannel>;

const API: &str = "bench-api-token";
/// The registration secret of the in-process controller's `default` runner registration.
const RUNNER: &str = "bench-runner-secret";
const IMAGE: &str = "d25532a1161d70c830d6254870e0173f8495a4a3dd166ea5ad7ec62a816db802";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct InProcess {
    url: String,
    _dir: tempfile::TempDir,
    shutdown: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

async fn start_controller(backend: &str) -> InProcess {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = write_keypair(dir.path(), "provenance").unwrap();
    let mut config = ControllerConfig::local(dir.path().join("state"), key, API, RUNNER);
    config.scheduling = SchedulingConfig::default();
    if backend == "postgres" {
        let base = std::env::var("AIRLOCK_TEST_POSTGRES_URL")
            .expect("set AIRLOCK_TEST_POSTGRES_URL (eval \"$(scripts/postgres.sh)\")");
        let name = format!("bench_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let (prefix, _) = base.rsplit_once('/').unwrap();
        config.database_url = Some(DatabaseUrl::new(format!("{prefix}/{name}")));
        config.database_max_connections = 16;
    }
    let controller = Controller::open_with(&config, Arc::new(SystemClock), Arc::new(RandomIds))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        controller
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    InProcess {
        url,
        _dir: dir,
        shutdown: tx,
        handle,
    }
}

async fn jobs(url: &str, token: &str) -> Jobs {
    job_client(connect(url).await.unwrap(), BearerAuth::new(token).unwrap())
}

/// A lightweight runner: registered with the registration secret; calls with its runner
/// token, and with the lease's job token for calls about a job.
struct LightRunner {
    channel: tonic::transport::Channel,
    auth: BearerAuth,
    id: String,
    client: Runners,
}

impl LightRunner {
    /// A client for calls about `lease`'s job.
    fn for_job(&self, lease: &pb::Lease) -> Runners {
        runner_client(
            self.channel.clone(),
            self.auth.with_job_token(&lease.job_token).unwrap(),
        )
    }
}

/// A trivial spec over an uploaded source (the lightweight runner never reads it).
async fn light_spec(jobs: &mut Jobs) -> Vec<u8> {
    let source = b"bench source".to_vec();
    let resp = jobs
        .upload_source(tokio_stream::iter(vec![pb::BlobChunk { data: source }]))
        .await
        .unwrap()
        .into_inner();
    serde_json::to_vec(&serde_json::json!({
        "job": {"name": "bench", "profile": "trusted", "timeout": "5m"},
        "source": {"path": "/src/bench", "sha256": resp.sha256},
        "image": {"ref": format!("oci-layout:/images/base@sha256:{IMAGE}")},
        "steps": [{"run": "true"}],
        "outputs": {"paths": ["out"]}
    }))
    .unwrap()
}

async fn register(url: &str, name: &str) -> LightRunner {
    let channel = connect(url).await.unwrap();
    let resp = runner_client(channel.clone(), BearerAuth::new(RUNNER).unwrap())
        .register_runner(pb::RegisterRunnerRequest {
            name: name.into(),
            labels: vec![],
            version: "bench".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let auth = BearerAuth::new(&resp.runner_token).unwrap();
    LightRunner {
        client: runner_client(channel.clone(), auth.clone()),
        channel,
        auth,
        id: resp.runner_id,
    }
}

/// A lightweight runner's whole job: report, upload one output, complete successfully.
async fn full_cycle(runners: &mut Runners, lease: &pb::Lease) {
    let data = format!("output of {}", lease.job_id).into_bytes();
    let sha = Sha256Digest::of(&data).hex();
    runners
        .report_events(pb::ReportEventsRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            events: vec![pb::RunnerEvent {
                kind: Some(pb::runner_event::Kind::Log(pb::LogChunk {
                    step_index: 0,
                    stream: pb::LogStream::Stdout as i32,
                    data: b"ok\n".to_vec(),
                })),
            }],
        })
        .await
        .unwrap();
    use pb::upload_output_request::Kind;
    let messages = vec![
        pb::UploadOutputRequest {
            kind: Some(Kind::Header(pb::OutputHeader {
                job_id: lease.job_id.clone(),
                lease_token: lease.lease_token.clone(),
                path: "out".into(),
                size: data.len() as u64,
                sha256: sha.clone(),
                executable: false,
            })),
        },
        pb::UploadOutputRequest {
            kind: Some(Kind::Data(data.clone())),
        },
    ];
    runners
        .upload_output(tokio_stream::iter(messages))
        .await
        .unwrap();
    let done = runners
        .complete_job(pb::CompleteJobRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            outcome: pb::Outcome::Succeeded as i32,
            outputs: vec![pb::OutputFile {
                path: "out".into(),
                sha256: sha,
                size: data.len() as u64,
                executable: false,
            }],
            image_manifest_sha256: IMAGE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::Succeeded);
}

async fn throughput(args: &[String]) {
    let backend = arg(args, "--backend").unwrap_or_else(|| "sqlite".into());
    let n: usize = arg(args, "--jobs").map_or(2000, |s| s.parse().unwrap());
    let k: usize = arg(args, "--runners").map_or(8, |s| s.parse().unwrap());
    let cycle = arg(args, "--cycle").unwrap_or_else(|| "bare".into());
    let ctl = start_controller(&backend).await;
    let mut client = jobs(&ctl.url, API).await;
    let spec = light_spec(&mut client).await;
    let queued = Instant::now();
    let mut submitters = Vec::new();
    for i in 0..8 {
        let mut client = jobs(&ctl.url, API).await;
        let spec = spec.clone();
        let count = n / 8 + usize::from(i < n % 8);
        submitters.push(tokio::spawn(async move {
            for _ in 0..count {
                client
                    .submit_job(pb::SubmitJobRequest {
                        spec_json: spec.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for s in submitters {
        s.await.unwrap();
    }
    let submit_secs = queued.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..k {
        let mut r = register(&ctl.url, &format!("bench-{w}")).await;
        let id = r.id.clone();
        let cycle = cycle.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let lease = r
                    .client
                    .acquire_job(pb::AcquireJobRequest {
                        runner_id: id.clone(),
                        wait_ms: 0,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .lease;
                let Some(lease) = lease else { break };
                if cycle == "full" {
                    full_cycle(&mut r.for_job(&lease), &lease).await;
                } else {
                    r.for_job(&lease)
                        .complete_job(pb::CompleteJobRequest {
                            job_id: lease.job_id.clone(),
                            lease_token: lease.lease_token.clone(),
                            outcome: pb::Outcome::Failed as i32,
                            message: "bench".into(),
                            exit_code: 1,
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(total, n, "every job leased and completed exactly once");
    println!(
        "throughput backend={backend} cycle={cycle} jobs={n} runners={k}: {:.0} lease+complete/s \
         ({secs:.2} s); submit {:.0} jobs/s",
        n as f64 / secs,
        n as f64 / submit_secs
    );
    let _ = ctl.shutdown.send(());
    ctl.handle.await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Submits, follows until the job ends, fetches the provenance: the latency of one job.
async fn one_job(client: &mut Jobs, spec: &[u8]) -> Duration {
    let t0 = Instant::now();
    let id = client
        .submit_job(pb::SubmitJobRequest {
            spec_json: spec.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut stream = client
        .watch_job(pb::WatchJobRequest {
            job_id: id.clone(),
            after_seq: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    while stream.next().await.is_some() {}
    client
        .get_provenance(pb::GetProvenanceRequest { job_id: id })
        .await
        .expect("the job succeeded and has provenance");
    t0.elapsed()
}

/// Packs `job_file`'s source directory, uploads it, and returns the spec to submit.
async fn real_spec(client: &mut Jobs, job_file: &Path) -> Vec<u8> {
    let mut spec = JobSpec::from_toml_file(job_file).unwrap();
    spec.resolve_relative_paths(job_file.parent().unwrap());
    let SourceSpec::Path { path, sha256 } = &mut spec.source else {
        panic!("the bench job needs a path source");
    };
    let tar = tempfile::NamedTempFile::new().unwrap();
    let (digest, _) =
        airlock_runner::fetch::source_archive::pack_dir(Path::new(&*path), tar.path()).unwrap();
    let bytes = std::fs::read(tar.path()).unwrap();
    client
        .upload_source(tokio_stream::iter(vec![pb::BlobChunk { data: bytes }]))
        .await
        .unwrap();
    *sha256 = Some(digest);
    spec.to_json()
}

async fn latency(args: &[String]) {
    let n: usize = arg(args, "--jobs").map_or(200, |s| s.parse().unwrap());
    let mut samples = Vec::with_capacity(n);
    let label;
    if let Some(url) = arg(args, "--controller") {
        let token_file = PathBuf::from(arg(args, "--token-file").expect("--token-file"));
        let token = std::fs::read_to_string(token_file).unwrap();
        let job = PathBuf::from(arg(args, "--job").expect("--job FILE"));
        let mut client = jobs(&url, token.trim()).await;
        let spec = real_spec(&mut client, &job).await;
        // One warm-up job (image unpacking, first connections).
        one_job(&mut client, &spec).await;
        for _ in 0..n {
            samples.push(one_job(&mut client, &spec).await);
        }
        label = format!("sandboxed runner, job {}", job.display());
    } else {
        let ctl = start_controller("sqlite").await;
        let mut client = jobs(&ctl.url, API).await;
        let spec = light_spec(&mut client).await;
        let mut r = register(&ctl.url, "bench").await;
        let id = r.id.clone();
        let worker = tokio::spawn(async move {
            loop {
                let lease = r
                    .client
                    .acquire_job(pb::AcquireJobRequest {
                        runner_id: id.clone(),
                        wait_ms: 30_000,
                    })
                    .await;
                match lease.map(|l| l.into_inner().lease) {
                    Ok(Some(lease)) => full_cycle(&mut r.for_job(&lease), &lease).await,
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
        });
        one_job(&mut client, &spec).await;
        for _ in 0..n {
            samples.push(one_job(&mut client, &spec).await);
        }
        worker.abort();
        let _ = ctl.shutdown.send(());
        label = "lightweight runner, in-process controller (SQLite)".into();
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(n).unwrap();
    println!(
        "latency submit->signed provenance, {label}, {n} jobs: p50 {:.1} ms, p99 {:.1} ms, \
         mean {:.1} ms, max {:.1} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        samples[n - 1].as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(&args).await,
        Some("latency") => latency(&args).await,
        _ => {
            eprintln!(
                "usage: fleet_bench throughput [--backend sqlite|postgres] [--jobs N] \
                 [--runners K] [--cycle bare|full]\n       fleet_bench latency [--jobs N] \
                 [--controller URL --token-file F --job FILE]"
            );
            std::process::exit(2);
        }
    }
}
