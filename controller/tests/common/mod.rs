//! A real controller for tests: SQLite file and blobs in a temp dir, gRPC on 127.0.0.1:0.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use airlock_attest::{Sha256Digest, VerifyingKey, load_verifying_key, write_keypair};
use airlock_controller::{
    Controller, ControllerConfig, ControllerError, ManualClock, SequentialIds,
};
use airlock_proto::auth::BearerAuth;
use airlock_proto::v1 as pb;
use airlock_proto::v1::job_service_client::JobServiceClient;
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub const API_TOKEN: &str = "api-token-for-tests";
/// The registration secret of the `default` runner registration.
pub const RUNNER_TOKEN: &str = "runner-token-for-tests";
/// 2023-11-14T22:13:20Z
pub const START_MS: u64 = 1_700_000_000_000;

/// Adds `authorization: Bearer <token>` (or nothing) to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

pub type Jobs = JobServiceClient<InterceptedService<Channel, Bearer>>;

/// The credentials of a runner client: a bearer token (registration secret or runner token)
/// and, for calls about a job, its job token; `None` sends nothing.
#[derive(Clone, Debug)]
pub struct RunnerCreds(pub Option<BearerAuth>);

impl Interceptor for RunnerCreds {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        match &mut self.0 {
            Some(auth) => auth.call(req),
            None => Ok(req),
        }
    }
}

/// A raw runner-service client with fixed credentials.
pub type RunnerClient = RunnerServiceClient<InterceptedService<Channel, RunnerCreds>>;

/// Tokens a test's runners were given, shared by clones of a [`Runners`].
#[derive(Default, Debug)]
struct Issued {
    /// runner id -> its runner token.
    runners: HashMap<String, BearerAuth>,
    /// job id -> runner token plus that lease's job token.
    jobs: HashMap<String, BearerAuth>,
}

/// What the tests' runners talk through: [`register`] keeps each runner's token, [`acquire`]
/// each lease's job token, and calls through `Deref` use the credentials of the last lease
/// acquired (or runner registered). [`Runners::job`] picks a lease explicitly.
#[derive(Clone)]
pub struct Runners {
    channel: Channel,
    secret: Option<String>,
    issued: Arc<Mutex<Issued>>,
    current: RunnerCreds,
    client: RunnerClient,
}

impl Deref for Runners {
    type Target = RunnerClient;
    fn deref(&self) -> &RunnerClient {
        &self.client
    }
}

impl DerefMut for Runners {
    fn deref_mut(&mut self) -> &mut RunnerClient {
        &mut self.client
    }
}

impl Runners {
    /// Runners that register with `secret` (none: send no credentials at all).
    pub fn new(channel: Channel, secret: Option<&str>) -> Self {
        let current = RunnerCreds(secret.map(|s| BearerAuth::new(s).unwrap()));
        Self {
            client: RunnerServiceClient::with_interceptor(channel.clone(), current.clone()),
            channel,
            secret: secret.map(str::to_owned),
            issued: Arc::default(),
            current,
        }
    }

    /// The same runners and tokens over another channel (another replica, a restart).
    pub fn on(&self, channel: Channel) -> Self {
        Self {
            client: RunnerServiceClient::with_interceptor(channel.clone(), self.current.clone()),
            channel,
            ..self.clone()
        }
    }

    /// A client with `creds` on this channel.
    pub fn client_with(&self, creds: Option<BearerAuth>) -> RunnerClient {
        RunnerServiceClient::with_interceptor(self.channel.clone(), RunnerCreds(creds))
    }

    /// These runners, with calls through `Deref` carrying `creds` (e.g. wrong ones).
    pub fn with_creds(&self, creds: Option<BearerAuth>) -> Self {
        let mut other = self.clone();
        other.current = RunnerCreds(creds);
        other.client = other.client_with(other.current.0.clone());
        other
    }

    fn use_creds(&mut self, creds: BearerAuth) {
        self.current = RunnerCreds(Some(creds));
        self.client =
            RunnerServiceClient::with_interceptor(self.channel.clone(), self.current.clone());
    }

    /// The registration secret these runners register with.
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// The runner token `runner_id` was given (shared: renewal replaces it everywhere).
    pub fn runner_auth(&self, runner_id: &str) -> BearerAuth {
        self.issued.lock().unwrap().runners[runner_id].clone()
    }

    /// Runner token plus job token of `lease`.
    pub fn job_auth(&self, lease: &pb::Lease) -> BearerAuth {
        self.issued.lock().unwrap().jobs[&lease.job_id].clone()
    }

    /// A client carrying the credentials of `lease` (its runner's token and its job token).
    pub fn job(&self, lease: &pb::Lease) -> RunnerClient {
        self.client_with(Some(self.job_auth(lease)))
    }

    /// Makes calls through `Deref` carry the credentials of `lease`.
    pub fn use_job(&mut self, lease: &pb::Lease) {
        let auth = self.job_auth(lease);
        self.use_creds(auth);
    }
}

pub struct TestController {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: ControllerConfig,
    pub public_key: VerifyingKey,
    pub clock: Arc<ManualClock>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ControllerError>>>,
}

impl TestController {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = write_keypair(dir.path(), "provenance").unwrap();
        let config =
            ControllerConfig::local(dir.path().join("state"), key, API_TOKEN, RUNNER_TOKEN);
        let public_key = load_verifying_key(&public).unwrap();
        Self::start_with(dir, config, public_key).await
    }

    /// A controller with `config` (e.g. other signing keys) whose state lives in `dir`;
    /// `public_key` is what [`TestController::public_key`] reports.
    pub async fn start_with(
        dir: tempfile::TempDir,
        config: ControllerConfig,
        public_key: VerifyingKey,
    ) -> Self {
        let clock = Arc::new(ManualClock::at_unix_ms(START_MS));
        let controller =
            Controller::open_with(&config, clock.clone(), Arc::new(SequentialIds::default()))
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(controller.serve(listener, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            public_key,
            dir,
            config,
            clock,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn jobs_with(&self, token: Option<&str>) -> Jobs {
        JobServiceClient::with_interceptor(self.channel().await, Bearer(token.map(str::to_owned)))
    }

    pub async fn jobs(&self) -> Jobs {
        self.jobs_with(Some(API_TOKEN)).await
    }

    /// Runners that register with `secret` (a registration secret, or `None` for none).
    pub async fn runners_with(&self, secret: Option<&str>) -> Runners {
        Runners::new(self.channel().await, secret)
    }

    pub async fn runners(&self) -> Runners {
        self.runners_with(Some(RUNNER_TOKEN)).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

pub const IMAGE_DIGEST: &str = "d25532a1161d70c830d6254870e0173f8495a4a3dd166ea5ad7ec62a816db802";

/// A valid spec JSON for a path source with digest `source`.
pub fn spec_json(source: &Sha256Digest, labels: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "job": {"name": "hello", "profile": "trusted", "labels": labels, "timeout": "5m"},
        "source": {"path": "/src/hello", "sha256": source.hex()},
        "image": {"ref": format!("oci-layout:/images/base@sha256:{IMAGE_DIGEST}")},
        "steps": [{"name": "compile", "run": "cc -o /out/hello hello.c"}, {"argv": ["/out/hello"]}],
        "outputs": {"paths": ["hello", "docs/*"]}
    }))
    .unwrap()
}

pub async fn upload_source(jobs: &mut Jobs, data: &[u8]) -> Sha256Digest {
    let chunks: Vec<pb::BlobChunk> = data
        .chunks(7)
        .map(|c| pb::BlobChunk { data: c.to_vec() })
        .collect();
    let resp = jobs
        .upload_source(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.size, data.len() as u64);
    Sha256Digest::from_hex(&resp.sha256).unwrap()
}

/// Registers a runner with the registration secret; later calls carry its runner token.
pub async fn register(runners: &mut Runners, labels: &[&str]) -> String {
    let secret = runners
        .secret
        .as_deref()
        .map(|s| BearerAuth::new(s).unwrap());
    let r = runners
        .client_with(secret)
        .register_runner(pb::RegisterRunnerRequest {
            name: "test-runner".into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            version: "0.1.0-runner".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.runner_token.starts_with("airlock-rt_"), "a runner token");
    let auth = BearerAuth::new(&r.runner_token).unwrap();
    runners
        .issued
        .lock()
        .unwrap()
        .runners
        .insert(r.runner_id.clone(), auth.clone());
    runners.use_creds(auth);
    r.runner_id
}

/// AcquireJob as `runner_id` (with its runner token); later calls carry the lease's job token.
pub async fn acquire(runners: &mut Runners, runner_id: &str, wait_ms: u32) -> Option<pb::Lease> {
    let auth = runners.runner_auth(runner_id);
    let lease = runners
        .client_with(Some(auth.clone()))
        .acquire_job(pb::AcquireJobRequest {
            runner_id: runner_id.into(),
            wait_ms,
        })
        .await
        .unwrap()
        .into_inner()
        .lease?;
    assert!(lease.job_token.starts_with("airlock-jt_"), "a job token");
    let job_auth = auth.with_job_token(&lease.job_token).unwrap();
    runners
        .issued
        .lock()
        .unwrap()
        .jobs
        .insert(lease.job_id.clone(), job_auth.clone());
    runners.use_creds(job_auth);
    Some(lease)
}

/// Uploads one output with the runner's claimed digest/size (normally the true ones).
pub async fn upload_output_claiming(
    runners: &mut Runners,
    lease: &pb::Lease,
    path: &str,
    data: &[u8],
    claimed_sha256: &str,
    claimed_size: u64,
) -> Result<pb::UploadOutputResponse, tonic::Status> {
    use pb::upload_output_request::Kind;
    let mut messages = vec![pb::UploadOutputRequest {
        kind: Some(Kind::Header(pb::OutputHeader {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            path: path.into(),
            size: claimed_size,
            sha256: claimed_sha256.into(),
            executable: path == "hello",
        })),
    }];
    messages.extend(data.chunks(5).map(|c| pb::UploadOutputRequest {
        kind: Some(Kind::Data(c.to_vec())),
    }));
    runners
        .upload_output(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

pub async fn upload_output(
    runners: &mut Runners,
    lease: &pb::Lease,
    path: &str,
    data: &[u8],
) -> pb::UploadOutputResponse {
    let digest = Sha256Digest::of(data).hex();
    upload_output_claiming(runners, lease, path, data, &digest, data.len() as u64)
        .await
        .unwrap()
}

pub fn output_file(path: &str, data: &[u8]) -> pb::OutputFile {
    pb::OutputFile {
        path: path.into(),
        sha256: Sha256Digest::of(data).hex(),
        size: data.len() as u64,
        executable: path == "hello",
    }
}

pub fn log_event(step: u32, data: &[u8]) -> pb::RunnerEvent {
    pb::RunnerEvent {
        kind: Some(pb::runner_event::Kind::Log(pb::LogChunk {
            step_index: step,
            stream: pb::LogStream::Stdout as i32,
            data: data.to_vec(),
        })),
    }
}

pub fn step_event(step: u32, name: &str, phase: pb::step_event::Phase) -> pb::RunnerEvent {
    pb::RunnerEvent {
        kind: Some(pb::runner_event::Kind::Step(pb::StepEvent {
            step_index: step,
            step_name: name.into(),
            phase: phase as i32,
            exit_code: 0,
            duration_ms: 0,
        })),
    }
}

pub fn complete_request(
    lease: &pb::Lease,
    outcome: pb::Outcome,
    outputs: Vec<pb::OutputFile>,
) -> pb::CompleteJobRequest {
    pb::CompleteJobRequest {
        job_id: lease.job_id.clone(),
        lease_token: lease.lease_token.clone(),
        outcome: outcome as i32,
        message: String::new(),
        exit_code: 0,
        outputs,
        image_manifest_sha256: IMAGE_DIGEST.into(),
        image_layers_sha256: Vec::new(),
        dependencies: Vec::new(),
        restored_caches: Vec::new(),
        saved_caches: Vec::new(),
        ..Default::default()
    }
}
