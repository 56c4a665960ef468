//! `[tls]`: a real controller serving gRPC and HTTP over TLS on one listener, with
//! certificates made by the `openssl` CLI. gRPC clients that trust the CA get through; plain
//! HTTP and clients trusting another CA do not; curl reads `/healthz` and the JWKS over
//! HTTP/1.1 and HTTP/2; with `runner_client_ca`, runner calls need a client certificate the
//! CA signed while job calls need none; a group/world-readable key stops the controller at
//! open. With `AIRLOCK_VENV_PYTHON` set, PyJWT verifies a build token against the https JWKS.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod oidc_support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use airlock_controller::config::TlsConfig;
use airlock_controller::oidc::{MintRequest, OidcHttp};
use airlock_controller::tls::TlsError;
use airlock_controller::{
    Clock, Controller, ControllerConfig, ControllerError, ManualClock, SystemClock,
};
use airlock_proto::auth::{
    BearerAuth, ClientError, connect, connect_with, job_client, runner_client,
};
use airlock_proto::tls::{ClientIdentity, ClientTlsError, ClientTlsOptions, PemFileError};
use airlock_proto::v1 as pb;
use oidc_support::*;
use tonic::Code;

const API_TOKEN: &str = "api-token-for-tls-tests";
const RUNNER_SECRET: &str = "runner-secret-for-tls-tests";

/// Runs `openssl` in `dir`, failing the test with its stderr.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Test certificates: a CA that signs the controller's certificate (127.0.0.1, localhost)
/// and a runner client certificate, and an unrelated CA with its own client certificate.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("openssl.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = airlock test\n\
             [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n\
             [server]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n\
             [client]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = clientAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
            let mut args = vec![
                "req",
                "-x509",
                "-config",
                "openssl.cnf",
                "-extensions",
                "ca",
            ];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &pem, "-days", "2"]);
            openssl(d, &args);
        }
        for (name, ca, ext) in [
            ("server", "ca", "server"),
            ("runner", "ca", "client"),
            ("stranger", "other-ca", "client"),
        ] {
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            let mut args = vec!["req", "-new", "-config", "openssl.cnf"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &csr]);
            openssl(d, &args);
            let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_pem,
                    "-CAkey",
                    &ca_key,
                    "-set_serial",
                    "7",
                    "-days",
                    "2",
                    "-extfile",
                    "openssl.cnf",
                    "-extensions",
                    ext,
                    "-out",
                    &pem,
                ],
            );
            std::fs::set_permissions(d.join(&key), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls(&self, runner_client_ca: bool) -> TlsConfig {
        TlsConfig {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            runner_client_ca: runner_client_ca.then(|| self.path("ca.pem")),
        }
    }

    fn trusting(&self, ca: &str) -> ClientTlsOptions {
        ClientTlsOptions {
            ca_cert: Some(self.path(ca)),
            identity: None,
        }
    }

    fn with_identity(&self, name: &str) -> ClientTlsOptions {
        ClientTlsOptions {
            ca_cert: Some(self.path("ca.pem")),
            identity: Some(ClientIdentity {
                cert: self.path(&format!("{name}.pem")),
                key: self.path(&format!("{name}.key")),
            }),
        }
    }
}

/// A controller serving `config` on 127.0.0.1:0 until dropped.
struct Running {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), ControllerError>>>,
    _state: tempfile::TempDir,
}

impl Running {
    async fn start(tls: TlsConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(tls, listener, |c| c).await
    }

    async fn serve(
        tls: TlsConfig,
        listener: tokio::net::TcpListener,
        adjust: impl FnOnce(Controller) -> Controller,
    ) -> Self {
        let port = listener.local_addr().unwrap().port();
        let state = tempfile::tempdir().unwrap();
        let (key, _) = airlock_attest::write_keypair(state.path(), "provenance").unwrap();
        let mut config =
            ControllerConfig::local(state.path().join("state"), key, API_TOKEN, RUNNER_SECRET);
        config.tls = Some(tls);
        let controller = adjust(Controller::open(&config).await.unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(controller.serve(listener, async {
            let _ = stopped.await;
        }));
        Self {
            port,
            stop: Some(stop),
            served: Some(served),
            _state: state,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
    }
}

/// A GetJob of a job that does not exist: NOT_FOUND proves the call got through TLS and the
/// API token check.
async fn get_missing_job(url: &str, tls: &ClientTlsOptions) -> Result<Code, ClientError> {
    let channel = connect_with(url, tls).await?;
    let mut jobs = job_client(channel, BearerAuth::new(API_TOKEN).unwrap());
    let status = jobs
        .get_job(pb::GetJobRequest {
            job_id: "00000000-0000-4000-8000-000000000000".into(),
        })
        .await
        .unwrap_err();
    Ok(status.code())
}

/// RegisterRunner with the registration secret over `tls`: the status, or the connect error.
async fn register(
    url: &str,
    tls: &ClientTlsOptions,
) -> Result<Result<(), tonic::Status>, ClientError> {
    let channel = connect_with(url, tls).await?;
    let mut runners = runner_client(channel, BearerAuth::new(RUNNER_SECRET).unwrap());
    Ok(runners
        .register_runner(pb::RegisterRunnerRequest {
            name: "tls-test".into(),
            labels: vec![],
            version: "0.0.0".into(),
        })
        .await
        .map(drop))
}

/// `curl` over `http` (`--http1.1` or `--http2`) trusting `ca`: (status code, body).
fn curl(http: &str, ca: &Path, url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", http, "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code} %{http_version}", url])
        .output()
        .expect("curl is needed (scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {http} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_and_http_share_the_tls_listener() {
    let pki = Pki::new();
    let controller = Running::start(pki.tls(false)).await;
    let https = controller.url("https");

    // A gRPC client trusting the CA gets through TLS and the token check.
    let code = get_missing_job(&https, &pki.trusting("ca.pem"))
        .await
        .unwrap();
    assert_eq!(code, Code::NotFound);

    // Plain HTTP/2 to the TLS port fails at connect or at the first call, before any
    // service answers.
    match get_missing_job(&controller.url("http"), &ClientTlsOptions::default()).await {
        Err(ClientError::Connect { .. }) => {}
        Ok(code) => assert!(
            // Which one depends on how far h2 gets before the TLS alert: a closed
            // connection, or a protocol error on the alert's bytes.
            matches!(
                code,
                Code::Cancelled | Code::Unavailable | Code::Unknown | Code::Internal
            ),
            "plain http to a TLS port must fail in transport, got {code:?}"
        ),
        Err(other) => panic!("unexpected {other}"),
    }

    // A client trusting another CA, or only the public web roots, is refused by its own TLS
    // check, with the flag to pass in the message.
    for tls in [pki.trusting("other-ca.pem"), ClientTlsOptions::default()] {
        let err = get_missing_job(&https, &tls).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ClientError::Connect { hint: Some(_), .. }),
            "{tls:?}: {msg}"
        );
        assert!(
            msg.contains("--ca-cert") && msg.contains("AIRLOCK_CA_CERT"),
            "{msg}"
        );
        assert!(!err.is_transient(), "a certificate problem is not retried");
    }

    // TLS files with an http:// URL are refused rather than ignored.
    let err = connect_with(&controller.url("http"), &pki.trusting("ca.pem"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Tls(ClientTlsError::PlainUrl { .. })),
        "{err}"
    );

    // The HTTP routes on the same port, over HTTP/1.1 and HTTP/2.
    for http in ["--http1.1", "--http2"] {
        let version = if http == "--http1.1" { "1.1" } else { "2" };
        let (status, body) = curl(http, &pki.path("ca.pem"), &format!("{https}/healthz"));
        assert_eq!(status, format!("200 {version}"), "{http} /healthz: {body}");
        let (status, body) = curl(
            http,
            &pki.path("ca.pem"),
            &format!("{https}/.well-known/jwks.json"),
        );
        assert_eq!(status, format!("200 {version}"), "{http} JWKS: {body}");
        let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            jwks["keys"].as_array().is_some_and(|k| !k.is_empty()),
            "{body}"
        );
    }
    // curl trusting another CA is refused.
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(pki.path("other-ca.pem"))
        .arg(format!("{https}/healthz"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl with the wrong CA must fail");
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_calls_need_a_client_certificate_the_ca_signed() {
    let pki = Pki::new();
    let controller = Running::start(pki.tls(true)).await;
    let https = controller.url("https");

    // Job clients have no certificate and still connect.
    let code = get_missing_job(&https, &pki.trusting("ca.pem"))
        .await
        .unwrap();
    assert_eq!(code, Code::NotFound);

    // A runner without one is UNAUTHENTICATED, told which CA and which flags.
    let status = register(&https, &pki.trusting("ca.pem"))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status
            .message()
            .contains("requires a runner client certificate signed by ca.pem")
            && status.message().contains("--client-cert"),
        "{status:?}"
    );
    assert!(
        !status.message().contains(pki.dir.path().to_str().unwrap()),
        "the server's directory layout is not shown: {status:?}"
    );

    // With a certificate the CA signed, the call passes the certificate check (and here the
    // registration secret too).
    let result = register(&https, &pki.with_identity("runner"))
        .await
        .unwrap();
    if let Err(status) = &result {
        assert!(
            !status.message().contains("client certificate"),
            "refused for the certificate: {status:?}"
        );
    }
    assert!(result.is_ok(), "{result:?}");

    // A certificate from another CA ends the handshake: the call never reaches the service.
    // (TLS 1.3: the client learns of it when the server closes the connection.)
    match register(&https, &pki.with_identity("stranger")).await {
        Err(ClientError::Connect { .. }) => {}
        Ok(Err(status)) => assert!(
            matches!(
                status.code(),
                Code::Cancelled | Code::Unavailable | Code::Unknown | Code::Internal
            ),
            "a foreign client certificate must fail in transport: {status:?}"
        ),
        other => panic!("a foreign client certificate must fail the handshake: {other:?}"),
    }
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_readable_by_others_is_refused_at_open() {
    let pki = Pki::new();
    let key = pki.path("server.key");
    let key_text = std::fs::read_to_string(&key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (signing, _) = airlock_attest::write_keypair(state.path(), "provenance").unwrap();
    let mut config = ControllerConfig::local(
        state.path().join("state"),
        signing,
        API_TOKEN,
        RUNNER_SECRET,
    );
    config.tls = Some(pki.tls(false));
    let err = Controller::open(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::Tls(TlsError::File {
                field: "tls.key",
                source: PemFileError::InsecurePermissions { mode: 0o644, .. }
            })
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("tls.key") && msg.contains("server.key") && msg.contains("chmod 600"),
        "{msg}"
    );
    // Neither the message nor Debug shows any of the key.
    let body: Vec<&str> = key_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!body.is_empty());
    for line in body {
        assert!(!msg.contains(line) && !format!("{err:?}").contains(line));
    }

    // A certificate file that is not PEM names `tls.cert`.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(pki.path("server.pem"), "not a certificate").unwrap();
    let err = Controller::open(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::Tls(TlsError::File {
                field: "tls.cert",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("server.pem"), "{err}");

    // A key that is not the certificate's is refused too.
    let other = Pki::new();
    config.tls = Some(TlsConfig {
        cert: other.path("server.pem"),
        key,
        runner_client_ca: None,
    });
    let err = Controller::open(&config).await.unwrap_err();
    assert!(
        matches!(err, ControllerError::Tls(TlsError::Config { .. })),
        "{err:?}"
    );
}

fn clock_at(t: SystemTime) -> Arc<ManualClock> {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Arc::new(ManualClock::at_unix_ms(u64::try_from(ms).unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn pyjwt_verifies_a_token_against_the_https_jwks() {
    let Ok(python) = std::env::var("AIRLOCK_VENV_PYTHON") else {
        eprintln!("skipping: set AIRLOCK_VENV_PYTHON (see scripts/setup-test-env.sh)");
        return;
    };
    let pki = Pki::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let now = SystemTime::now();
    let issuer = Issuer::new(&issuer_url, clock_at(now - Duration::from_secs(3600)));
    let system: Arc<dyn Clock> = Arc::new(SystemClock);
    let ring = issuer.ring.clone();
    let http_issuer = issuer_url.clone();
    let controller = Running::serve(pki.tls(true), listener, move |c| {
        c.with_oidc(OidcHttp::new(&http_issuer, ring, system))
    })
    .await;
    let clock = clock_at(now);
    let token = issuer
        .minter_with_issuer(&issuer_url, clock.clone())
        .mint(
            &job(far(clock.now())),
            &MintRequest {
                audience: AUDIENCES[0].to_owned(),
                lifetime: None,
            },
        )
        .unwrap()
        .value()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    let json = serde_json::json!([
        {"name": "valid", "token": token, "audience": AUDIENCES[0]},
        {"name": "wrong_audience", "token": token, "audience": "https://other.example"},
    ]);
    std::fs::write(&cases, serde_json::to_vec(&json).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/verify_jwt.py");
    let mut command = Command::new(&python);
    // Python's urllib offers ALPN http/1.1 only and trusts SSL_CERT_FILE.
    command
        .arg(&script)
        .arg(&issuer_url)
        .arg(&cases)
        .env("SSL_CERT_FILE", pki.path("ca.pem"));
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();

    // Without the CA, Python refuses the certificate.
    let mut plain = Command::new(&python);
    plain.arg("-c").arg(format!(
        "import urllib.request; urllib.request.urlopen('{issuer_url}/healthz')"
    ));
    let refused = tokio::task::spawn_blocking(move || plain.output().unwrap())
        .await
        .unwrap();
    controller.stop().await;
    assert!(
        !refused.status.success(),
        "Python without the CA must refuse"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify_jwt.py failed:\n{stderr}");
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results["valid"]["ok"], true, "{results:#}");
    assert_eq!(results["wrong_audience"]["ok"], false, "{results:#}");
}

#[tokio::test]
async fn the_default_connect_still_speaks_plain_http() {
    // `connect` (no TLS options) is what `airlock run` uses for its loopback controller.
    let err = connect("http://127.0.0.1:1").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Connect { hint: None, .. }),
        "{err}"
    );
    assert!(
        err.is_transient(),
        "an unreachable controller may come up later"
    );
}
