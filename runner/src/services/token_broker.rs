//! The token broker: a per-job HTTP/1.1 server on a unix socket that a job's steps ask for
//! OIDC build tokens, mounted into the sandbox at `/run/airlock/oidc.sock`.
//!
//! Contract (`ARCHITECTURE.md`): `GET /token?audience=AUD[&lifetime=S]` answers
//! `200 {"value": "<jwt>", "expires_at": <unix seconds>}`; `403` with a reason for an audience
//! the job did not declare or a profile without build tokens; `410` once the job has ended
//! ([`TokenBroker::close`]); `400` for a malformed query; `404`/`405` for other paths/methods;
//! `503` when the controller cannot be reached. The broker checks what it can locally (declared
//! audiences, the profile's permission, the lifetime bound) before asking its [`TokenSource`]
//! (the controller, which checks everything again); it fails closed on any doubt.
//!
//! The sandbox is hostile: requests are bounded (8 KiB of head, no body read, 10 s to send the
//! head, 30 s per connection, 16 connections at once), and the broker never logs a token, and
//! logs an audience only once it matched a declared one.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

/// File name of the socket inside the job's broker directory.
pub const SOCKET_NAME: &str = "oidc.sock";
/// Where a step finds the socket (the broker directory is mounted at `/run/airlock`).
pub const SANDBOX_SOCKET_PATH: &str = "/run/airlock/oidc.sock";
/// Environment variable naming the token URL, for `curl --unix-socket`.
pub const TOKEN_URL_ENV: &str = "AIRLOCK_ID_TOKEN_URL";
/// Environment variable naming the socket path inside the sandbox.
pub const TOKEN_SOCKET_ENV: &str = "AIRLOCK_ID_TOKEN_SOCKET";
/// The token URL a step uses over the socket (the host part is ignored).
pub const TOKEN_URL: &str = "http://localhost/token";

/// Largest request head accepted (request line and headers).
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// Longest audience accepted (as the job file allows).
const MAX_AUDIENCE_LEN: usize = 256;

/// The environment a step gets when the broker is mounted.
pub fn step_env() -> [(&'static str, &'static str); 2] {
    [
        (TOKEN_URL_ENV, TOKEN_URL),
        (TOKEN_SOCKET_ENV, SANDBOX_SOCKET_PATH),
    ]
}

/// A step's request, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The audience wanted (one the job declared).
    pub audience: String,
    /// The lifetime wanted, if any.
    pub lifetime: Option<Duration>,
}

/// A token obtained for a step. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokeredToken {
    value: String,
    expires_at: u64,
}

impl BrokeredToken {
    /// A token and its expiry (unix seconds).
    pub fn new(value: String, expires_at: u64) -> Self {
        Self { value, expires_at }
    }

    /// The token. Treat as a secret: never log it.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Expiry, unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

impl fmt::Debug for BrokeredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokeredToken")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why the token source gave no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// The job's profile does not allow build tokens.
    #[error("the job's profile does not allow build tokens")]
    ProfileWithoutTokens,
    /// The audience is not declared in the job's `[oidc] audiences`.
    #[error("the audience is not declared in the job's [oidc] audiences")]
    UndeclaredAudience,
    /// The job has ended.
    #[error("the job has ended")]
    JobEnded,
    /// The lifetime is out of bounds.
    #[error("lifetime must be between 1 and {max_secs} seconds")]
    Lifetime {
        /// The maximum, in seconds.
        max_secs: u64,
    },
    /// The controller could not be asked (network, auth, server error).
    #[error("the token service is unavailable: {0}")]
    Unavailable(String),
}

/// Where the broker gets tokens: the runner backs it with a controller RPC made with the job
/// token; tests use a fake.
pub trait TokenSource: Send + Sync + 'static {
    /// A token for `request` on behalf of this job.
    fn token(
        &self,
        request: &TokenRequest,
    ) -> impl Future<Output = Result<BrokeredToken, TokenRefusal>> + Send;
}

impl<T: TokenSource> TokenSource for Arc<T> {
    fn token(
        &self,
        request: &TokenRequest,
    ) -> impl Future<Output = Result<BrokeredToken, TokenRefusal>> + Send {
        T::token(self, request)
    }
}

/// What the broker checks locally before asking the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPolicy {
    /// The job id (for logs and the directory name).
    pub job_id: String,
    /// Whether the job's profile allows build tokens.
    pub tokens_allowed: bool,
    /// The job's declared `[oidc] audiences`.
    pub audiences: Vec<String>,
    /// The longest lifetime the controller will grant.
    pub max_lifetime: Duration,
}

/// Who may connect to the socket: the step's host uid and gid (`host_base + 1000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOwner {
    /// Host uid of the sandboxed step.
    pub uid: u32,
    /// Host gid of the sandboxed step.
    pub gid: u32,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The job id cannot be a directory name.
    #[error("job id {0:?} cannot name a broker directory")]
    JobId(String),
    /// Creating the directory or socket, or handing them to the step's uid, failed.
    #[error("token broker {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A running broker for one job. Dropping it without [`shutdown`](Self::shutdown) stops
/// accepting connections but leaves the directory behind.
pub struct TokenBroker {
    dir: PathBuf,
    closed: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TokenBroker {
    /// Creates `dir` (mode 0711: the step needs only to reach the socket; its parent must
    /// exist and `dir` must not: one directory per job attempt), binds `oidc.sock` in it
    /// (mode 0600, owned by `owner` when running as root, so only the job's step uid and root
    /// can connect; a rootless runner has the sandbox helper chown it from a user namespace)
    /// and starts serving. Keep `dir` short: the socket path must fit in 108 bytes.
    pub async fn start<S: TokenSource>(
        dir: &Path,
        policy: BrokerPolicy,
        owner: Option<SocketOwner>,
        source: S,
    ) -> Result<Self, BrokerError> {
        if !is_dir_name(&policy.job_id) {
            return Err(BrokerError::JobId(policy.job_id.clone()));
        }
        let dir = dir.to_owned();
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| BrokerError::Io { path, source }
        };
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .map_err(io_err(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
            .map_err(io_err(&dir))?;
        let socket = dir.join(SOCKET_NAME);
        let listener = UnixListener::bind(&socket).map_err(io_err(&socket))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&socket))?;
        if let Some(owner) = owner
            && nix::unistd::geteuid().is_root()
        {
            nix::unistd::chown(
                &socket,
                Some(nix::unistd::Uid::from_raw(owner.uid)),
                Some(nix::unistd::Gid::from_raw(owner.gid)),
            )
            .map_err(|e| BrokerError::Io {
                path: socket.clone(),
                source: e.into(),
            })?;
        }

        let closed = Arc::new(AtomicBool::new(false));
        let (stop, stop_rx) = watch::channel(false);
        let handler = Arc::new(Handler {
            policy,
            closed: closed.clone(),
            source,
        });
        let span = tracing::info_span!("token_broker", job_id = %handler.policy.job_id);
        let task = tokio::spawn(accept_loop(listener, handler, stop_rx).instrument(span));
        Ok(Self {
            dir,
            closed,
            stop,
            task: Some(task),
        })
    }

    /// The directory to mount at `/run/airlock` (the sandbox plan's `oidc_socket_dir`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The socket's host path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join(SOCKET_NAME)
    }

    /// The job has ended: every request from now on gets `410 Gone`, including those whose
    /// token was still being fetched.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Closes, stops serving (aborting open connections) and removes the directory.
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        self.close();
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BrokerError::Io {
                path: self.dir.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for TokenBroker {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
    }
}

impl fmt::Debug for TokenBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBroker")
            .field("dir", &self.dir)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

async fn accept_loop<S: TokenSource>(
    listener: UnixListener,
    handler: Arc<Handler<S>>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(job_id = %handler.policy.job_id, error = %e, "token broker: accept failed");
                    continue;
                }
            },
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let handler = handler.clone();
        let span = tracing::Span::current();
        connections.spawn(
            async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler.respond(req).await) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .max_buf_size(MAX_HEAD_BYTES)
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            }
            .instrument(span),
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

struct Handler<S> {
    policy: BrokerPolicy,
    closed: Arc<AtomicBool>,
    source: S,
}

impl<S: TokenSource> Handler<S> {
    async fn respond(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, body) = self.decide(&req).await;
        let response = Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .header(CACHE_CONTROL, "no-store")
            .header(CONNECTION, "close")
            .body(Full::new(Bytes::from(body)));
        // Every header value above is a valid constant, so building cannot fail; fall back to
        // an empty 500 rather than panic.
        response.unwrap_or_else(|_| {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }

    async fn decide(&self, req: &Request<Incoming>) -> (StatusCode, Vec<u8>) {
        let job_id = &self.policy.job_id;
        if req.uri().path() != "/token" {
            return error(
                StatusCode::NOT_FOUND,
                "not found; use GET /token?audience=AUD",
            );
        }
        if req.method() != Method::GET {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        }
        if self.closed.load(Ordering::SeqCst) {
            return error(StatusCode::GONE, "the job has ended");
        }
        let request = match parse_query(req.uri().query().unwrap_or("")) {
            Ok(r) => r,
            Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
        };
        if !self.policy.tokens_allowed {
            tracing::info!(%job_id, status = 403, "build token refused: profile without tokens");
            return error(
                StatusCode::FORBIDDEN,
                &TokenRefusal::ProfileWithoutTokens.to_string(),
            );
        }
        if !self.policy.audiences.contains(&request.audience) {
            tracing::info!(%job_id, status = 403, "build token refused: undeclared audience");
            return error(
                StatusCode::FORBIDDEN,
                &TokenRefusal::UndeclaredAudience.to_string(),
            );
        }
        let max = self.policy.max_lifetime;
        if request.lifetime.is_some_and(|l| l > max) {
            let refusal = TokenRefusal::Lifetime {
                max_secs: max.as_secs(),
            };
            return error(StatusCode::BAD_REQUEST, &refusal.to_string());
        }
        let audience = &request.audience;
        let result = self.source.token(&request).await;
        // The job may have ended while the token was being fetched: do not hand it out.
        if self.closed.load(Ordering::SeqCst) {
            return error(StatusCode::GONE, "the job has ended");
        }
        match result {
            Ok(token) => {
                tracing::info!(%job_id, %audience, expires_at = token.expires_at(), status = 200, "build token issued");
                let body = serde_json::json!({
                    "value": token.value(),
                    "expires_at": token.expires_at(),
                });
                (
                    StatusCode::OK,
                    serde_json::to_vec(&body).unwrap_or_default(),
                )
            }
            Err(refusal) => {
                let status = match refusal {
                    TokenRefusal::ProfileWithoutTokens | TokenRefusal::UndeclaredAudience => {
                        StatusCode::FORBIDDEN
                    }
                    TokenRefusal::JobEnded => {
                        self.closed.store(true, Ordering::SeqCst);
                        StatusCode::GONE
                    }
                    TokenRefusal::Lifetime { .. } => StatusCode::BAD_REQUEST,
                    TokenRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                tracing::info!(%job_id, %audience, status = status.as_u16(), reason = %refusal, "build token refused");
                error(status, &refusal.to_string())
            }
        }
    }
}

fn error(status: StatusCode, reason: &str) -> (StatusCode, Vec<u8>) {
    let body = serde_json::json!({ "error": reason });
    (status, serde_json::to_vec(&body).unwrap_or_default())
}

/// Parses `audience=AUD[&lifetime=S]`: each at most once, nothing else, audience 1-256
/// printable characters, lifetime 1 or more whole seconds.
fn parse_query(query: &str) -> Result<TokenRequest, &'static str> {
    let mut audience = None;
    let mut lifetime = None;
    let mut seen = HashSet::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if !seen.insert(key.clone()) {
            return Err("each query parameter may appear once");
        }
        match key.as_ref() {
            "audience" => audience = Some(value.into_owned()),
            "lifetime" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| "lifetime must be a whole number of seconds")?;
                if secs == 0 {
                    return Err("lifetime must be at least 1 second");
                }
                lifetime = Some(Duration::from_secs(secs));
            }
            _ => return Err("unknown query parameter; use audience and lifetime"),
        }
    }
    let audience = audience.ok_or("audience is required: GET /token?audience=AUD")?;
    if audience.is_empty()
        || audience.len() > MAX_AUDIENCE_LEN
        || audience
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err("audience must be 1-256 characters without whitespace or control characters");
    }
    Ok(TokenRequest { audience, lifetime })
}

/// A plain directory name: letters, digits, `-`, `_`, `.`; not starting with `.`.
fn is_dir_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_is_strict() {
        assert_eq!(
            parse_query("audience=sts.amazonaws.com"),
            Ok(TokenRequest {
                audience: "sts.amazonaws.com".into(),
                lifetime: None
            })
        );
        assert_eq!(
            parse_query("audience=https%3A%2F%2Fvault.example&lifetime=60"),
            Ok(TokenRequest {
                audience: "https://vault.example".into(),
                lifetime: Some(Duration::from_secs(60))
            })
        );
        for bad in [
            "",
            "lifetime=60",
            "audience=",
            "audience=a&audience=b",
            "audience=a&lifetime=0",
            "audience=a&lifetime=-1",
            "audience=a&lifetime=1.5",
            "audience=a&lifetime=99999999999999999999999",
            "audience=a&x=1",
            "audience=a%20b",
            "audience=a%0Ab",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
        assert!(parse_query(&format!("audience={}", "a".repeat(257))).is_err());
    }

    #[test]
    fn brokered_token_debug_is_redacted() {
        let t = BrokeredToken::new("eyJhbGciOi.secret.sig".into(), 5);
        let debug = format!("{t:?}");
        assert!(!debug.contains("secret"));
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn job_ids_must_be_plain_names() {
        assert!(is_dir_name("00000000-0000-4000-8000-000000000001"));
        for bad in ["", ".", "..", "a/b", ".hidden", "a b"] {
            assert!(!is_dir_name(bad), "{bad}");
        }
    }
}
