//! Runner credentials over real gRPC against a fake controller (only the credential logic is
//! faked: a registration secret, issued runner tokens, revocation): the secret is sent only to
//! register, later calls carry the runner token (and the job token when scoped to a job), the
//! token is renewed before it expires and every client switches to the fresh one, a refused
//! renewal registers again with the secret, a refused secret fails closed (and cancels the
//! running jobs), a step printing
//! the registration secret, the job token or any runner token (renewed ones too) shows only
//! `[REDACTED]`, and a lease without a job token is refused before anything runs.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airlock_proto::auth::{JOB_TOKEN_HEADER, connect};
use airlock_proto::v1 as pb;
use airlock_proto::v1::runner_service_server::{RunnerService, RunnerServiceServer};
use airlock_runner::config::Secret;
use airlock_runner::control::credentials::{CredentialError, Credentials};
use tonic::{Request, Response, Status, Streaming};

const SECRET: &str = "registration-secret-0123456789";

/// One call the fake saw: method, bearer, job token.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    method: &'static str,
    bearer: Option<String>,
    job_token: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    revoked: bool,
    refuse_renewal: bool,
    empty_tokens: bool,
    ttl_secs: u64,
    issued: u64,
    valid: Vec<String>,
    calls: Vec<Call>,
    /// Handed out by the next AcquireJob.
    lease: Option<pb::Lease>,
    /// (outcome, message) of each CompleteJob.
    completions: Vec<(i32, String)>,
    /// Every log byte ReportEvents delivered.
    logs: Vec<u8>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Fake {
    fn record<T>(&self, method: &'static str, req: &Request<T>) -> Call {
        let get = |k: &str| {
            req.metadata()
                .get(k)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let call = Call {
            method,
            bearer: get("authorization").map(|b| b.trim_start_matches("Bearer ").to_owned()),
            job_token: get(JOB_TOKEN_HEADER),
        };
        self.0.lock().unwrap().calls.push(call.clone());
        call
    }

    fn issue(&self) -> (String, u64) {
        let mut s = self.0.lock().unwrap();
        s.issued += 1;
        if s.empty_tokens {
            return (String::new(), 0);
        }
        let token = format!("airlock-rt_fake{}", s.issued);
        s.valid.push(token.clone());
        (token, now_unix() + s.ttl_secs)
    }

    fn check_runner_token<T>(&self, method: &'static str, req: &Request<T>) -> Result<(), Status> {
        let call = self.record(method, req);
        let s = self.0.lock().unwrap();
        match call.bearer {
            Some(b) if s.valid.contains(&b) && !s.revoked => Ok(()),
            _ => Err(Status::unauthenticated("unknown or expired runner token")),
        }
    }

    fn calls(&self, method: &str) -> Vec<Call> {
        let s = self.0.lock().unwrap();
        s.calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }
}

#[tonic::async_trait]
impl RunnerService for Fake {
    async fn register_runner(
        &self,
        request: Request<pb::RegisterRunnerRequest>,
    ) -> Result<Response<pb::RegisterRunnerResponse>, Status> {
        let call = self.record("RegisterRunner", &request);
        let revoked = self.0.lock().unwrap().revoked;
        if call.bearer.as_deref() != Some(SECRET) || revoked {
            return Err(Status::unauthenticated(
                "the registration secret is unknown or its registration was revoked",
            ));
        }
        let (token, expires) = self.issue();
        let n = self.0.lock().unwrap().issued;
        Ok(Response::new(pb::RegisterRunnerResponse {
            runner_id: format!("runner-{n}"),
            runner_token: token,
            runner_token_expires_at_unix: expires,
        }))
    }

    async fn renew_runner_token(
        &self,
        request: Request<pb::RenewRunnerTokenRequest>,
    ) -> Result<Response<pb::RenewRunnerTokenResponse>, Status> {
        self.check_runner_token("RenewRunnerToken", &request)?;
        if self.0.lock().unwrap().refuse_renewal {
            return Err(Status::unauthenticated("the runner token expired"));
        }
        let (token, expires) = self.issue();
        Ok(Response::new(pb::RenewRunnerTokenResponse {
            runner_token: token,
            runner_token_expires_at_unix: expires,
        }))
    }

    async fn acquire_job(
        &self,
        request: Request<pb::AcquireJobRequest>,
    ) -> Result<Response<pb::AcquireJobResponse>, Status> {
        self.check_runner_token("AcquireJob", &request)?;
        let lease = self.0.lock().unwrap().lease.take();
        Ok(Response::new(pb::AcquireJobResponse { lease }))
    }

    async fn report_events(
        &self,
        request: Request<pb::ReportEventsRequest>,
    ) -> Result<Response<pb::ReportEventsResponse>, Status> {
        self.check_runner_token("ReportEvents", &request)?;
        let mut s = self.0.lock().unwrap();
        for event in request.into_inner().events {
            if let Some(pb::runner_event::Kind::Log(chunk)) = event.kind {
                s.logs.extend(chunk.data);
            }
        }
        Ok(Response::new(pb::ReportEventsResponse {
            cancel_requested: false,
        }))
    }

    type DownloadSourceStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::BlobChunk, Status>>;

    async fn download_source(
        &self,
        _request: Request<pb::DownloadSourceRequest>,
    ) -> Result<Response<Self::DownloadSourceStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn upload_output(
        &self,
        _request: Request<Streaming<pb::UploadOutputRequest>>,
    ) -> Result<Response<pb::UploadOutputResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type RestoreCacheStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::RestoreCacheResponse, Status>>;

    async fn restore_cache(
        &self,
        _request: Request<pb::RestoreCacheRequest>,
    ) -> Result<Response<Self::RestoreCacheStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn save_cache(
        &self,
        _request: Request<Streaming<pb::SaveCacheRequest>>,
    ) -> Result<Response<pb::SaveCacheResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::CompleteJobResponse>, Status> {
        self.check_runner_token("CompleteJob", &request)?;
        let r = request.into_inner();
        self.0
            .lock()
            .unwrap()
            .completions
            .push((r.outcome, r.message));
        Ok(Response::new(pb::CompleteJobResponse {
            state: pb::JobState::InfraFailed as i32,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.check_runner_token("Heartbeat", &request)?;
        Ok(Response::new(pb::HeartbeatResponse {
            cancel_requested: false,
            lease_ttl_ms: 30_000,
        }))
    }

    async fn mint_build_token(
        &self,
        _request: Request<pb::MintBuildTokenRequest>,
    ) -> Result<Response<pb::MintBuildTokenResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// Serves `fake` on a loopback port; returns a connected channel.
async fn serve(fake: Fake) -> tonic::transport::Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RunnerServiceServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    connect(&url).await.unwrap()
}

fn request() -> pb::RegisterRunnerRequest {
    pb::RegisterRunnerRequest {
        name: "test".into(),
        labels: vec![],
        version: "0".into(),
    }
}

async fn registered(fake: &Fake, ttl_secs: u64) -> Credentials {
    fake.0.lock().unwrap().ttl_secs = ttl_secs;
    let channel = serve(fake.clone()).await;
    Credentials::register(channel, Secret::new(SECRET), request())
        .await
        .unwrap()
}

/// Polls `cond` for up to 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_secret_is_sent_only_to_register_and_later_calls_carry_the_runner_token() {
    let fake = Fake::default();
    let creds = registered(&fake, 600).await;
    assert_eq!(creds.runner_id(), "runner-1");
    let register = fake.calls("RegisterRunner");
    assert_eq!(register.len(), 1);
    assert_eq!(register[0].bearer.as_deref(), Some(SECRET));

    creds
        .client()
        .acquire_job(pb::AcquireJobRequest {
            runner_id: creds.runner_id(),
            wait_ms: 0,
        })
        .await
        .unwrap();
    let acquire = fake.calls("AcquireJob");
    assert_eq!(acquire[0].bearer.as_deref(), Some("airlock-rt_fake1"));
    assert_eq!(acquire[0].job_token, None, "no job token outside a job");

    creds
        .job_client("airlock-jt_job1")
        .unwrap()
        .heartbeat(pb::HeartbeatRequest::default())
        .await
        .unwrap();
    let hb = fake.calls("Heartbeat");
    assert_eq!(hb[0].bearer.as_deref(), Some("airlock-rt_fake1"));
    assert_eq!(hb[0].job_token.as_deref(), Some("airlock-jt_job1"));

    // Debug output never shows a secret or token.
    let debug = format!("{creds:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("airlock-rt_"),
        "{debug}"
    );
    // Nothing but RegisterRunner ever carried the secret.
    let s = fake.0.lock().unwrap();
    assert!(
        s.calls
            .iter()
            .all(|c| c.method == "RegisterRunner" || c.bearer.as_deref() != Some(SECRET)),
        "{:?}",
        s.calls
    );
}

#[tokio::test]
async fn the_runner_token_is_renewed_before_it_expires_and_every_client_switches() {
    let fake = Fake::default();
    // 2 s tokens: renewed after 1 s (half the remaining lifetime, at least 1 s).
    let creds = registered(&fake, 2).await;
    let mut old_client = creds.client();
    let job_client = creds.job_client("airlock-jt_job1").unwrap();
    let renewal = tokio::spawn(creds.clone().keep_renewed());
    eventually("two renewals", || fake.calls("RenewRunnerToken").len() >= 2).await;
    let renewals = fake.calls("RenewRunnerToken");
    // Each renewal presented the token the previous call gave.
    assert_eq!(renewals[0].bearer.as_deref(), Some("airlock-rt_fake1"));
    assert_eq!(renewals[1].bearer.as_deref(), Some("airlock-rt_fake2"));
    // Clients made before a renewal now send the fresh token.
    eventually("the third token installed", || {
        creds.runner_token().borrow().expose() == "airlock-rt_fake3"
    })
    .await;
    old_client
        .acquire_job(pb::AcquireJobRequest::default())
        .await
        .unwrap();
    let latest = fake.calls("AcquireJob").pop().unwrap();
    assert_eq!(latest.bearer.as_deref(), Some("airlock-rt_fake3"));
    job_client
        .clone()
        .heartbeat(pb::HeartbeatRequest::default())
        .await
        .unwrap();
    let hb = fake.calls("Heartbeat").pop().unwrap();
    assert_eq!(hb.bearer.as_deref(), Some("airlock-rt_fake3"));
    assert_eq!(hb.job_token.as_deref(), Some("airlock-jt_job1"));
    // Renewal alone never re-registers.
    assert_eq!(fake.calls("RegisterRunner").len(), 1);
    assert!(!creds.is_revoked());
    renewal.abort();
}

#[tokio::test]
async fn a_refused_renewal_registers_again_with_the_secret() {
    let fake = Fake::default();
    let creds = registered(&fake, 2).await;
    fake.0.lock().unwrap().refuse_renewal = true;
    let generation = creds.generation();
    let renewal = tokio::spawn(creds.clone().keep_renewed());
    eventually("a second registration", || {
        fake.calls("RegisterRunner").len() >= 2
    })
    .await;
    let register = fake.calls("RegisterRunner");
    assert_eq!(register[1].bearer.as_deref(), Some(SECRET));
    eventually("the new registration installed", || {
        creds.generation() != generation
    })
    .await;
    assert_eq!(creds.runner_id(), "runner-2");
    assert_eq!(creds.runner_token().borrow().expose(), "airlock-rt_fake2");
    assert!(!creds.is_revoked());
    // A caller that saw the old generation does not register a third time.
    creds.register_again(generation).await.unwrap();
    assert_eq!(creds.runner_id(), "runner-2");
    renewal.abort();
}

#[tokio::test]
async fn a_revoked_registration_fails_closed() {
    let fake = Fake::default();
    let creds = registered(&fake, 2).await;
    let mut revoked = creds.revoked();
    // A running job's guard: it must cancel the job on revocation.
    let (sink, _reporter) = airlock_runner::report::events::EventReporter::start(
        creds.job_client("airlock-jt_job1").unwrap(),
        "job-1".into(),
        "lease-1".into(),
        Arc::new(tokio::sync::watch::channel(false).0),
    );
    let (cancel, mut cancelled) = tokio::sync::watch::channel(false);
    let guard = tokio::spawn(airlock_runner::control::credentials::guard_job(
        creds.clone(),
        sink,
        Arc::new(cancel),
    ));
    {
        let mut s = fake.0.lock().unwrap();
        s.revoked = true;
    }
    let renewal = tokio::spawn(creds.clone().keep_renewed());
    tokio::time::timeout(Duration::from_secs(10), revoked.wait_for(|r| *r))
        .await
        .expect("revocation noticed")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), cancelled.wait_for(|c| *c))
        .await
        .expect("the running job is cancelled")
        .unwrap();
    guard.await.unwrap();
    // The renewal task ends: nothing keeps calling with a dead registration.
    tokio::time::timeout(Duration::from_secs(5), renewal)
        .await
        .expect("renewal task ends")
        .unwrap();
    assert!(creds.is_revoked());
    // The renewal was refused, then exactly one registration attempt with the secret.
    let register = fake.calls("RegisterRunner");
    assert_eq!(register.len(), 2, "{register:?}");
    assert_eq!(register[1].bearer.as_deref(), Some(SECRET));
    let err = creds.register_again(creds.generation()).await.unwrap_err();
    assert!(matches!(err, CredentialError::Revoked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("registration revoked or secret wrong"),
        "{err}"
    );
    // No further attempt reached the controller.
    assert_eq!(fake.calls("RegisterRunner").len(), 2);
}

#[tokio::test]
async fn a_wrong_secret_or_a_controller_without_tokens_is_refused_at_registration() {
    let fake = Fake::default();
    let channel = serve(fake.clone()).await;
    let err = Credentials::register(channel.clone(), Secret::new("wrong-secret"), request())
        .await
        .unwrap_err();
    assert!(matches!(err, CredentialError::Revoked { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-secret"), "{err}");

    fake.0.lock().unwrap().empty_tokens = true;
    let err = Credentials::register(channel, Secret::new(SECRET), request())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialError::NoRunnerToken { .. }),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs root (the runner's sandbox launcher): run with --include-ignored as root"]
async fn a_lease_without_a_job_token_is_refused_and_nothing_runs() {
    let fake = Fake::default();
    fake.0.lock().unwrap().ttl_secs = 600;
    fake.0.lock().unwrap().lease = Some(pb::Lease {
        job_id: "0b6f3c1e-0000-4000-8000-000000000001".into(),
        lease_token: "lease-1".into(),
        attempt: 1,
        spec_json: b"{}".to_vec(),
        lease_ttl_ms: 30_000,
        job_token: String::new(),
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RunnerServiceServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let state = tempfile::tempdir().unwrap();
    let mut cfg = airlock_runner::config::RunnerConfig::new(
        &url,
        Secret::new(SECRET),
        state.path().join("runner"),
        std::env::current_exe().unwrap(),
    );
    cfg.ephemeral = true;
    cfg.id_lock_dir = Some(state.path().join("ids"));
    cfg.poll_wait = Duration::from_millis(100);
    let runner = airlock_runner::agent::Runner::connect(cfg, Duration::from_secs(5))
        .await
        .unwrap();
    let (_keep, shutdown) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(30), runner.run(shutdown))
        .await
        .expect("the ephemeral runner ends")
        .unwrap();

    let completions = fake.0.lock().unwrap().completions.clone();
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0].0, pb::Outcome::InfraFailed as i32);
    assert!(
        completions[0].1.contains("without a job token"),
        "{completions:?}"
    );
    // Nothing about the job ran: no heartbeat, no events, no source download.
    let calls = fake.0.lock().unwrap().calls.clone();
    let methods: Vec<_> = calls.iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        ["RegisterRunner", "AcquireJob", "CompleteJob"],
        "{calls:?}"
    );
    assert!(
        !state
            .path()
            .join("runner/jobs/0b6f3c1e-0000-4000-8000-000000000001")
            .exists()
    );
}

#[tokio::test]
async fn a_step_printing_the_runner_credentials_leaves_only_redacted_text() {
    use airlock_proto::v1::LogStream;
    use airlock_runner::report::events::EventReporter;

    const JOB_TOKEN: &str = "airlock-jt_jobtoken123";
    let fake = Fake::default();
    let creds = registered(&fake, 2).await;
    let (cancel, _cancelled) = tokio::sync::watch::channel(false);
    let (sink, reporter) = EventReporter::start(
        creds.job_client(JOB_TOKEN).unwrap(),
        "job-1".into(),
        "lease-1".into(),
        Arc::new(cancel),
    );
    creds.redact_in(&sink, JOB_TOKEN).await;
    let (guard_cancel, _) = tokio::sync::watch::channel(false);
    let guard = tokio::spawn(airlock_runner::control::credentials::guard_job(
        creds.clone(),
        sink.clone(),
        Arc::new(guard_cancel),
    ));
    let renewal = tokio::spawn(creds.clone().keep_renewed());
    let line = |s: &str| format!("printed: {s}\n").into_bytes();
    sink.log(0, LogStream::Stdout, line(SECRET)).await;
    sink.log(0, LogStream::Stdout, line(JOB_TOKEN)).await;
    sink.log(0, LogStream::Stdout, line("airlock-rt_fake1"))
        .await;
    // A token issued while the job runs is redacted from then on.
    eventually("a renewal", || {
        creds.runner_token().borrow().expose() == "airlock-rt_fake2"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    sink.log(0, LogStream::Stdout, line("airlock-rt_fake2"))
        .await;
    renewal.abort();
    guard.abort();
    let _ = guard.await;
    drop(sink);
    reporter.finish().await.unwrap();

    let logs = String::from_utf8(fake.0.lock().unwrap().logs.clone()).unwrap();
    assert_eq!(logs, "printed: [REDACTED]\n".repeat(4), "{logs}");
}
