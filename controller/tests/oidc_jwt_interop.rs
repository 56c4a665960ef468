//! PyPI `PyJWT[crypto]` (`PyJWKClient`) reads the discovery document and JWKS over HTTP from a
//! running controller (its gRPC listen address, next to `/metrics` and `/healthz`) and verifies
//! an airlock build token (issuer, audience, expiry, required claims); each forgery or bad
//! token is refused by PyJWT and by airlock's verifier.
//!
//! Runs when `AIRLOCK_VENV_PYTHON` names a Python with PyJWT (scripts/setup-test-env.sh).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod oidc_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use airlock_controller::oidc::{MintRequest, OidcHttp, VerifyError};
use airlock_controller::{Clock, Controller, ControllerConfig, ManualClock, SystemClock};
use oidc_support::*;

struct Case {
    name: &'static str,
    token: String,
    audience: &'static str,
    /// `None`: both must accept; `Some(e)`: airlock's verifier must refuse with `e` and PyJWT
    /// must refuse too.
    refused_as: Option<VerifyError>,
}

fn clock_at(t: SystemTime) -> Arc<ManualClock> {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Arc::new(ManualClock::at_unix_ms(u64::try_from(ms).unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn pyjwt_verifies_airlock_tokens_and_refuses_forgeries() {
    let Ok(python) = std::env::var("AIRLOCK_VENV_PYTHON") else {
        eprintln!("skipping: set AIRLOCK_VENV_PYTHON (see scripts/setup-test-env.sh)");
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_url = format!("http://{}", listener.local_addr().unwrap());

    // The ring's first key signs from an hour ago, so tokens minted "in the past" verify.
    let now = SystemTime::now();
    let past = clock_at(now - Duration::from_secs(3600));
    let issuer = Issuer::new(&issuer_url, past.clone());
    let system: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = tempfile::tempdir().unwrap();
    let (provenance_key, _) = airlock_attest::write_keypair(state.path(), "provenance").unwrap();
    let config =
        ControllerConfig::local(state.path().join("state"), provenance_key, "api", "runner");
    let controller = Controller::open(&config)
        .await
        .unwrap()
        .with_oidc(OidcHttp::new(
            &issuer_url,
            issuer.ring.clone(),
            system.clone(),
        ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(controller.serve(listener, async {
        let _ = stopped.await;
    }));

    let mint_at = |t: SystemTime, aud: &str| {
        let clock = clock_at(t);
        let minter = issuer.minter_with_issuer(&issuer_url, clock.clone());
        let request = MintRequest {
            audience: aud.to_owned(),
            lifetime: None,
        };
        minter
            .mint(&job(far(clock.now())), &request)
            .unwrap()
            .value()
            .to_owned()
    };
    let good = mint_at(now, AUDIENCES[0]);
    let kid = issuer.kid(now);
    let evil_clock = clock_at(now);
    let wrong_issuer = issuer
        .minter_with_issuer("https://evil.example", evil_clock.clone())
        .mint(
            &job(far(evil_clock.now())),
            &MintRequest {
                audience: AUDIENCES[0].to_owned(),
                lifetime: None,
            },
        )
        .unwrap()
        .value()
        .to_owned();

    let cases = vec![
        Case {
            name: "valid",
            token: good.clone(),
            audience: AUDIENCES[0],
            refused_as: None,
        },
        Case {
            name: "valid_second_audience",
            token: mint_at(now, AUDIENCES[1]),
            audience: AUDIENCES[1],
            refused_as: None,
        },
        Case {
            name: "unknown_key",
            token: unknown_key(&good, None),
            audience: AUDIENCES[0],
            refused_as: Some(VerifyError::UnknownKey),
        },
        Case {
            name: "stranger_signature_with_published_kid",
            token: unknown_key(&good, Some(&kid)),
            audience: AUDIENCES[0],
            refused_as: Some(VerifyError::Signature),
        },
        Case {
            name: "alg_none",
            token: alg_none(&good, &kid),
            audience: AUDIENCES[0],
            refused_as: Some(VerifyError::Algorithm),
        },
        Case {
            name: "hs256_with_public_key_as_secret",
            token: hs256_with_public_key(&good, &kid, &issuer.public_pem(now)),
            audience: AUDIENCES[0],
            refused_as: Some(VerifyError::Algorithm),
        },
        Case {
            name: "expired",
            token: mint_at(now - Duration::from_secs(1000), AUDIENCES[0]),
            audience: AUDIENCES[0],
            refused_as: Some(VerifyError::Expired),
        },
        Case {
            name: "not_yet_valid",
            token: mint_at(now + Duration::from_secs(1000), AUDIENCES[0]),
            audience: AUDIENCES[0],
            refused_as: Some(VerifyError::NotYetValid),
        },
        Case {
            name: "wrong_audience",
            token: good.clone(),
            audience: "https://other.example",
            refused_as: Some(VerifyError::Audience),
        },
        Case {
            name: "wrong_issuer",
            token: wrong_issuer,
            audience: AUDIENCES[0],
            refused_as: Some(VerifyError::Issuer),
        },
    ];

    // airlock's own verifier, on the real clock.
    let verifier = airlock_controller::oidc::Verifier::new(
        issuer.settings.clone(),
        issuer.ring.clone(),
        system,
    );
    for case in &cases {
        let result = verifier.verify(&case.token, case.audience);
        match &case.refused_as {
            None => assert!(result.is_ok(), "{}: {result:?}", case.name),
            Some(e) => assert_eq!(result.as_ref().err(), Some(e), "{}", case.name),
        }
    }

    // PyJWT, over HTTP.
    let dir = tempfile::tempdir().unwrap();
    let cases_file = dir.path().join("cases.json");
    let json: Vec<_> = cases
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "token": c.token, "audience": c.audience}))
        .collect();
    std::fs::write(&cases_file, serde_json::to_vec(&json).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/verify_jwt.py");
    let mut command = Command::new(&python);
    command.arg(&script).arg(&issuer_url).arg(&cases_file);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let _ = stop.send(());
    served.await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify_jwt.py failed:\n{stderr}");
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{results:#}");
    for case in &cases {
        let r = &results[case.name];
        let ok = r["ok"].as_bool().unwrap();
        assert_eq!(
            ok,
            case.refused_as.is_none(),
            "{}: PyJWT said {r}",
            case.name
        );
    }
    let claims = &results["valid"]["claims"];
    assert_eq!(claims["iss"], issuer_url.as_str());
    assert_eq!(claims["aud"], AUDIENCES[0]);
    assert_eq!(claims["sub"], format!("repo:{REPO}:ref:refs/heads/main"));
    assert_eq!(claims["sha"], SHA);
    assert_eq!(claims["ref"], "refs/heads/main");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 300);
    // The reasons PyJWT gives match the case.
    for (name, needle) in [
        ("unknown_key", "Unable to find a signing key"),
        ("alg_none", "algorithm"),
        ("hs256_with_public_key_as_secret", "algorithm"),
        ("expired", "ExpiredSignatureError"),
        ("not_yet_valid", "ImmatureSignatureError"),
        ("wrong_audience", "InvalidAudienceError"),
        ("wrong_issuer", "InvalidIssuerError"),
        (
            "stranger_signature_with_published_kid",
            "InvalidSignatureError",
        ),
    ] {
        let error = results[name]["error"].as_str().unwrap_or_default();
        assert!(
            error.to_lowercase().contains(&needle.to_lowercase()),
            "{name}: {error}"
        );
    }
}

/// `GET path` over plain HTTP/1.1; returns (status line, headers+body text).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (status, rest) = response.split_once("\r\n").unwrap();
    (status.to_owned(), rest.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_serves_discovery_and_the_published_keys() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer_url = format!("http://{addr}");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let issuer = Issuer::new(&issuer_url, clock.clone());
    let kid = issuer.kid(clock.now());
    let state = tempfile::tempdir().unwrap();
    let (provenance_key, _) = airlock_attest::write_keypair(state.path(), "provenance").unwrap();
    let provenance_keyid = airlock_attest::load_signing_key(&provenance_key)
        .unwrap()
        .keyid()
        .to_owned();
    issuer
        .ring
        .read()
        .unwrap()
        .ensure_distinct_from(&provenance_keyid)
        .unwrap();
    let config =
        ControllerConfig::local(state.path().join("state"), provenance_key, "api", "runner");
    let controller = Controller::open(&config)
        .await
        .unwrap()
        .with_oidc(OidcHttp::new(&issuer_url, issuer.ring.clone(), clock));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(controller.serve(listener, async {
        let _ = stopped.await;
    }));

    let (status, text) = http_get(addr, "/.well-known/openid-configuration").await;
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(
        text.to_lowercase()
            .contains("content-type: application/json"),
        "{text}"
    );
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(doc["issuer"], issuer_url.as_str());
    assert_eq!(
        doc["jwks_uri"],
        format!("{issuer_url}/.well-known/jwks.json")
    );

    let (status, text) = http_get(addr, "/.well-known/jwks.json").await;
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(
        text.to_lowercase()
            .contains("cache-control: public, max-age=300"),
        "{text}"
    );
    let jwks: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], kid.as_str());
    assert_ne!(
        keys[0]["kid"],
        provenance_keyid.as_str(),
        "token and provenance keys differ"
    );
    assert!(keys[0].get("d").is_none());

    // The issue-5 routes are still there.
    let (status, _) = http_get(addr, "/healthz").await;
    assert!(status.ends_with("200 OK"), "{status}");

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
