//! A real sandboxed step asks the token broker at `/run/airlock/oidc.sock` for a build token;
//! the token, minted by the controller's issuer, is verified by airlock's verifier and by PyPI
//! `PyJWT[crypto]` reading discovery and JWKS from a running controller. The same step is
//! refused an undeclared audience (403) and, once the job has ended, any token (410).
//!
//! The broker's token source here mints in-process (as `airlock run`'s embedded controller
//! will); the runner-to-controller mint RPC is the next round's work.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use airlock_attest::{Sha256Digest, SigningKey};
use airlock_controller::oidc::{
    JobTokenContext, KeyRing, MintError, MintRequest, Minter, OidcHttp, OidcSettings,
    SourceIdentity, Verifier,
};
use airlock_controller::{Clock, Controller, ControllerConfig, RandomIds, SystemClock};
use airlock_job::SourceSpec;
use airlock_runner::fetch::image::ImageCache;
use airlock_runner::sandbox::{IdMap, Launcher, OutputChunk, SandboxPlan};
use airlock_runner::services::token_broker::{
    BrokerPolicy, BrokeredToken, SocketOwner, TokenBroker, TokenRefusal, TokenRequest, TokenSource,
    step_env,
};
use tokio::sync::{mpsc, watch};

use crate::common::*;

const AUD: &str = "sts.amazonaws.com";
const JOB_ID: &str = "00000000-0000-4000-8000-0000000000b7";

/// A C client for the broker: connects to `$AIRLOCK_ID_TOKEN_SOCKET`, sends `GET argv[1]`,
/// prints the raw HTTP response (the base image has gcc, not curl or python).
pub(crate) const CLIENT_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *path = getenv("AIRLOCK_ID_TOKEN_SOCKET");
    if (argc < 2 || !path) return 2;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 3; }
    char req[2048];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", argv[1]);
    if (write(fd, req, n) != n) return 4;
    char buf[8192];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, r, stdout);
    return 0;
}
"#;

/// The broker's token source: the controller's minter, in process.
struct InProcessMinter {
    minter: Minter,
    job: JobTokenContext,
}

impl TokenSource for InProcessMinter {
    async fn token(&self, request: &TokenRequest) -> Result<BrokeredToken, TokenRefusal> {
        let request = MintRequest {
            audience: request.audience.clone(),
            lifetime: request.lifetime,
        };
        match self.minter.mint(&self.job, &request) {
            Ok(t) => Ok(BrokeredToken::new(t.value().to_owned(), t.expires_at())),
            Err(MintError::ProfileWithoutTokens { .. }) => Err(TokenRefusal::ProfileWithoutTokens),
            Err(MintError::UndeclaredAudience) => Err(TokenRefusal::UndeclaredAudience),
            Err(MintError::JobEnded) => Err(TokenRefusal::JobEnded),
            Err(MintError::Lifetime { max_secs }) => Err(TokenRefusal::Lifetime { max_secs }),
            Err(e) => Err(TokenRefusal::Unavailable(e.to_string())),
        }
    }
}

/// (status code, body) of a raw HTTP response the client printed.
pub(crate) fn parse_response(raw: &str) -> (u16, serde_json::Value) {
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, body)
}

async fn run_step(launcher: &Launcher, id: &str, plan: &SandboxPlan) -> String {
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk.data);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let (_keep, cancel) = watch::channel(false);
    let outcome = launcher
        .run_step(id, plan, Duration::from_secs(120), cancel, tx)
        .await
        .unwrap();
    let output = collector.await.unwrap();
    assert!(outcome.success(), "{outcome:?}\n{output}");
    output
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_sandboxed_step_gets_a_build_token_that_pyjwt_verifies() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(scenario());
}

async fn scenario() {
    let home = scratch();
    let (layout, digest) = base_image();
    let digest = Sha256Digest::from_hex(digest.trim_start_matches("sha256:")).unwrap();
    let image = ImageCache::new(home.path().join("images"))
        .prepare_from_layout(&layout, &digest, &mut |_| {})
        .unwrap();

    // The issuer: a controller serving discovery and JWKS on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_url = format!("http://{}", listener.local_addr().unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let settings = OidcSettings::new(&issuer_url).unwrap();
    let mut ring = KeyRing::new(settings.rotation_lead_time(), settings.max_token_lifetime());
    ring.rotate(SigningKey::generate().unwrap(), clock.now())
        .unwrap();
    let ring = Arc::new(RwLock::new(ring));
    let (provenance_key, _) = airlock_attest::write_keypair(home.path(), "provenance").unwrap();
    let config =
        ControllerConfig::local(home.path().join("state"), provenance_key, "api", "runner");
    let controller = Controller::open(&config)
        .await
        .unwrap()
        .with_oidc(OidcHttp::new(&issuer_url, ring.clone(), clock.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(controller.serve(listener, async {
        let _ = stopped.await;
    }));

    // The job: a local path source under the trusted profile, declaring one audience.
    let source_dir = home.path().join("src");
    let job = JobTokenContext {
        job_id: JOB_ID.to_owned(),
        source: SourceIdentity::from_source(&SourceSpec::Path {
            path: source_dir.display().to_string(),
            sha256: Some(Sha256Digest::of(b"source tree")),
        })
        .unwrap(),
        profile: "trusted".to_owned(),
        profile_allows_tokens: true,
        audiences: vec![AUD.to_owned()],
        builder_id: format!("{issuer_url}/builders/local/trusted"),
        runner_id: "runner-e2e".to_owned(),
        job_definition_sha256: Sha256Digest::of(b"job definition"),
        ended: false,
        deadline: clock.now() + Duration::from_secs(600),
    };
    let minter = Minter::new(
        settings.clone(),
        ring.clone(),
        clock.clone(),
        Arc::new(RandomIds),
    );

    // The sandbox's step uid, and its work/out directories.
    let id_map = IdMap {
        host_base: 5_111_808,
        size: 65_536,
    };
    let (work, out) = (home.path().join("work"), home.path().join("out"));
    for d in [&work, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(work.join("client.c"), CLIENT_C).unwrap();
    let mut plan = SandboxPlan::new(
        &image.rootfs,
        &work,
        &out,
        vec![
            "/bin/bash".into(),
            "-c".into(),
            format!(
                "set -e; gcc -O0 -o /work/client /work/client.c; \
                 /work/client '/token?audience={AUD}&lifetime=120' > /out/ok.txt; \
                 /work/client '/token?audience=evil.example' > /out/forbidden.txt; \
                 echo \"$AIRLOCK_ID_TOKEN_URL\" > /out/env.txt"
            ),
        ],
        id_map,
    );
    for d in [&work, &out] {
        std::os::unix::fs::chown(d, Some(plan.host_uid()), Some(plan.host_gid())).unwrap();
    }

    // The broker, owned by the step's host uid, mounted at /run/airlock.
    // `start` creates the attempt's broker directory itself (mode 0711).
    let broker_parent = home.path().join("broker");
    let broker = TokenBroker::start(
        &broker_parent,
        BrokerPolicy {
            job_id: JOB_ID.to_owned(),
            tokens_allowed: true,
            audiences: vec![AUD.to_owned()],
            max_lifetime: settings.max_token_lifetime(),
        },
        Some(SocketOwner {
            uid: plan.host_uid(),
            gid: plan.host_gid(),
        }),
        InProcessMinter { minter, job },
    )
    .await
    .unwrap();
    plan.oidc_socket_dir = Some(broker.socket_dir().to_owned());
    plan.env = step_env()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();

    let launcher =
        Launcher::new(env!("CARGO_BIN_EXE_airlock"), home.path().join("launcher")).unwrap();
    let log = run_step(&launcher, "token-e2e-1", &plan).await;

    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let (status, body) = parse_response(&read("ok.txt"));
    assert_eq!(status, 200, "{}\n{log}", read("ok.txt"));
    let token = body["value"].as_str().unwrap().to_owned();
    assert_eq!(parse_response(&read("forbidden.txt")).0, 403);
    assert_eq!(read("env.txt").trim(), "http://localhost/token");
    assert!(
        !log.contains(&token),
        "the step printed nothing of the token to its log"
    );

    // airlock's verifier accepts it and it names this job and source.
    let claims = Verifier::new(settings.clone(), ring.clone(), clock.clone())
        .verify(&token, AUD)
        .unwrap();
    assert_eq!(claims.iss, issuer_url);
    assert_eq!(claims.job_id, JOB_ID);
    assert_eq!(
        claims.sub,
        format!("repo:file://{}:ref:local", source_dir.display())
    );
    assert_eq!(claims.exp - claims.iat, 120);

    // PyJWT, reading discovery and JWKS from the running controller, accepts it too.
    let cases = home.path().join("cases.json");
    let json = serde_json::json!([{"name": "sandbox", "token": token, "audience": AUD}]);
    std::fs::write(&cases, serde_json::to_vec(&json).unwrap()).unwrap();
    let script = repo().join("tests/interop/verify_jwt.py");
    let mut command = std::process::Command::new(venv_python());
    command.arg(&script).arg(&issuer_url).arg(&cases);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results["sandbox"]["ok"], true, "{results:#}");
    assert_eq!(results["sandbox"]["claims"]["aud"], AUD);

    // The job ends: the same step now gets 410.
    broker.close();
    plan.argv = vec![
        "/bin/bash".into(),
        "-c".into(),
        format!("/work/client '/token?audience={AUD}' > /out/gone.txt"),
    ];
    run_step(&launcher, "token-e2e-2", &plan).await;
    assert_eq!(parse_response(&read("gone.txt")).0, 410);

    broker.shutdown().await.unwrap();
    let _ = stop.send(());
    served.await.unwrap().unwrap();
    // Shut down, the broker leaves nothing: its socket and directory are gone.
    assert!(!broker_parent.exists());
}
