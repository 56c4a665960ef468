//! The token broker over a real unix socket: the HTTP contract (200/400/403/404/405/410/503),
//! bounded requests, socket permissions, that the step's host uid (and only it) can connect,
//! and that tokens never reach the logs.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_runner::services::token_broker::{
    BrokerPolicy, BrokeredToken, SocketOwner, TokenBroker, TokenRefusal, TokenRequest, TokenSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Notify;

const AUD: &str = "sts.amazonaws.com";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA";

/// A fake controller: records requests, answers with `TOKEN` or a fixed refusal, and can be
/// held mid-request.
#[derive(Clone, Default)]
struct FakeSource {
    calls: Arc<Mutex<Vec<TokenRequest>>>,
    refusal: Arc<Mutex<Option<TokenRefusal>>>,
    hold: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl TokenSource for FakeSource {
    async fn token(&self, request: &TokenRequest) -> Result<BrokeredToken, TokenRefusal> {
        self.calls.lock().unwrap().push(request.clone());
        if let Some((entered, release)) = &self.hold {
            entered.notify_one();
            release.notified().await;
        }
        match self.refusal.lock().unwrap().clone() {
            Some(r) => Err(r),
            None => Ok(BrokeredToken::new(TOKEN.to_owned(), 1_800_000_300)),
        }
    }
}

fn policy(tokens_allowed: bool) -> BrokerPolicy {
    BrokerPolicy {
        job_id: "00000000-0000-4000-8000-000000000001".to_owned(),
        tokens_allowed,
        audiences: vec![AUD.to_owned(), "https://vault.example".to_owned()],
        max_lifetime: Duration::from_secs(300),
    }
}

/// Sends raw request bytes and returns (status, body as JSON or Null).
async fn raw(socket: &Path, request: &[u8]) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, body)
}

async fn get(socket: &Path, target: &str) -> (u16, serde_json::Value) {
    raw(
        socket,
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
    .await
}

/// A broker in `<parent>/broker` (the directory it creates).
async fn start(parent: &Path, allowed: bool, source: FakeSource) -> TokenBroker {
    TokenBroker::start(&parent.join("broker"), policy(allowed), None, source)
        .await
        .unwrap()
}

#[tokio::test]
async fn issues_a_token_for_a_declared_audience() {
    let dir = tempfile::tempdir().unwrap();
    let source = FakeSource::default();
    let broker = start(dir.path(), true, source.clone()).await;
    let (status, body) = get(
        &broker.socket_path(),
        &format!("/token?audience={AUD}&lifetime=60"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], TOKEN);
    assert_eq!(body["expires_at"], 1_800_000_300u64);
    assert_eq!(
        source.calls.lock().unwrap().as_slice(),
        [TokenRequest {
            audience: AUD.to_owned(),
            lifetime: Some(Duration::from_secs(60))
        }]
    );
    // Re-minting during the job works.
    let (status, _) = get(
        &broker.socket_path(),
        "/token?audience=https%3A%2F%2Fvault.example",
    )
    .await;
    assert_eq!(status, 200);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn undeclared_audience_and_profile_without_tokens_get_403_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let source = FakeSource::default();
    let broker = start(dir.path(), true, source.clone()).await;
    let (status, body) = get(&broker.socket_path(), "/token?audience=sts.amazonaws.co").await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("not declared"));
    broker.shutdown().await.unwrap();

    let broker = start(dir.path(), false, source.clone()).await;
    let (status, body) = get(&broker.socket_path(), &format!("/token?audience={AUD}")).await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("profile"));
    assert!(
        source.calls.lock().unwrap().is_empty(),
        "the source was never asked"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_get_400_404_or_405() {
    let dir = tempfile::tempdir().unwrap();
    let source = FakeSource::default();
    let broker = start(dir.path(), true, source.clone()).await;
    let sock = broker.socket_path();
    for target in [
        "/token",
        "/token?audience=",
        &format!("/token?audience={AUD}&lifetime=abc"),
        &format!("/token?audience={AUD}&lifetime=0"),
        &format!("/token?audience={AUD}&lifetime=301"),
        &format!("/token?audience={AUD}&audience={AUD}"),
        &format!("/token?audience={AUD}&scope=x"),
    ] {
        assert_eq!(get(&sock, target).await.0, 400, "{target}");
    }
    assert_eq!(get(&sock, "/").await.0, 404);
    assert_eq!(get(&sock, "/tokens?audience=x").await.0, 404);
    let (status, _) = raw(
        &sock,
        format!("POST /token?audience={AUD} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(status, 405);
    let (status, _) = raw(&sock, b"this is not http\r\n\r\n").await;
    assert_eq!(status, 400);
    assert!(source.calls.lock().unwrap().is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_request_is_refused_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), true, FakeSource::default()).await;
    let sock = broker.socket_path();
    let huge = format!(
        "GET /token?audience={AUD} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _) = raw(&sock, huge.as_bytes()).await;
    assert_ne!(status, 200, "a 64 KiB head is not served");
    assert_eq!(get(&sock, &format!("/token?audience={AUD}")).await.0, 200);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn after_close_every_request_gets_410_even_one_already_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let source = FakeSource {
        hold: Some((entered.clone(), release.clone())),
        ..Default::default()
    };
    let broker = start(dir.path(), true, source.clone()).await;
    let sock = broker.socket_path();
    let in_flight = tokio::spawn({
        let sock = sock.clone();
        async move { get(&sock, &format!("/token?audience={AUD}")).await }
    });
    entered.notified().await;
    broker.close();
    release.notify_one();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(
        status, 410,
        "the token fetched before the job ended is withheld"
    );
    assert!(!body.to_string().contains(TOKEN));
    let (status, _) = get(&sock, &format!("/token?audience={AUD}")).await;
    assert_eq!(status, 410);
    assert_eq!(
        source.calls.lock().unwrap().len(),
        1,
        "not asked after close"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusals_from_the_controller_map_to_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let source = FakeSource::default();
    let broker = start(dir.path(), true, source.clone()).await;
    let sock = broker.socket_path();
    let target = format!("/token?audience={AUD}");
    for (refusal, status) in [
        (TokenRefusal::UndeclaredAudience, 403),
        (TokenRefusal::ProfileWithoutTokens, 403),
        (TokenRefusal::Lifetime { max_secs: 60 }, 400),
        (TokenRefusal::Unavailable("controller down".into()), 503),
        (TokenRefusal::JobEnded, 410),
    ] {
        *source.refusal.lock().unwrap() = Some(refusal.clone());
        assert_eq!(get(&sock, &target).await.0, status, "{refusal:?}");
    }
    // The controller said the job ended: the broker stays closed.
    *source.refusal.lock().unwrap() = None;
    assert_eq!(get(&sock, &target).await.0, 410);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn socket_is_0600_in_a_0711_directory_and_shutdown_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), true, FakeSource::default()).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(broker.socket_dir()), 0o711);
    assert_eq!(mode(&broker.socket_path()), 0o600);
    assert_eq!(broker.socket_dir(), dir.path().join("broker"));
    let sock_dir = broker.socket_dir().to_owned();
    broker.shutdown().await.unwrap();
    assert!(!sock_dir.exists());
    assert!(
        TokenBroker::start(
            &dir.path().join("escape"),
            BrokerPolicy {
                job_id: "../escape".into(),
                ..policy(true)
            },
            None,
            FakeSource::default()
        )
        .await
        .is_err()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_appear_in_the_logs() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let source = FakeSource::default();
    let broker = start(dir.path(), true, source.clone()).await;
    let sock = broker.socket_path();
    assert_eq!(get(&sock, &format!("/token?audience={AUD}")).await.0, 200);
    assert_eq!(
        get(&sock, "/token?audience=secret-undeclared-aud").await.0,
        403
    );
    broker.shutdown().await.unwrap();

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("build token issued"),
        "logs were captured:\n{logs}"
    );
    for secret in TOKEN.split('.') {
        assert!(!logs.contains(secret), "token part in logs:\n{logs}");
    }
    assert!(
        !logs.contains("secret-undeclared-aud"),
        "undeclared audiences are not echoed"
    );
}

/// Runs `curl` as `uid:gid` against the socket; returns the HTTP status (0 if it could not
/// connect).
fn curl_as(uid: u32, gid: u32, socket: &Path) -> u16 {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("curl")
        .uid(uid)
        .gid(gid)
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
        ])
        .arg(socket)
        .arg(format!("http://localhost/token?audience={AUD}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs root (chown of the socket, running curl as another uid) and curl on the host"]
async fn only_the_steps_host_uid_can_connect() {
    let host_base = 300_000;
    let owner = SocketOwner {
        uid: host_base + 1000,
        gid: host_base + 1000,
    };
    let parent = tempfile::tempdir().unwrap();
    // The runner's broker parent must be traversable for host-side clients (inside the
    // sandbox the job directory itself is the mount, so only the socket's mode matters).
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let broker = TokenBroker::start(
        &parent.path().join("broker"),
        policy(true),
        Some(owner),
        FakeSource::default(),
    )
    .await
    .unwrap();
    let sock = broker.socket_path();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (owner.uid, owner.gid));

    let sock2 = sock.clone();
    let ok = tokio::task::spawn_blocking(move || curl_as(owner.uid, owner.gid, &sock2))
        .await
        .unwrap();
    assert_eq!(ok, 200, "the step's host uid connects");
    let sock2 = sock.clone();
    let other = tokio::task::spawn_blocking(move || curl_as(owner.uid + 1, owner.gid + 1, &sock2))
        .await
        .unwrap();
    assert_eq!(other, 0, "another job's uid cannot connect");
    broker.shutdown().await.unwrap();
}
