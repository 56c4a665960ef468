//! Third-party interop: the envelopes and bundles airlock writes are verified by
//! securesystemslib and validated by in-toto-attestation (tests/interop/verify_dsse.py).
//!
//! Runs only when `AIRLOCK_VENV_PYTHON` names a Python with those packages
//! (`scripts/setup-test-env.sh` prints the value to use); otherwise it says so and passes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_attest::{Bundle, Envelope, KeyAlgorithm, SigningKey, sign_statement};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::statement_for;

const ARTIFACT: &[u8] = b"interop artifact bytes\n";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/verify_dsse.py")
}

/// Runs the verifier; returns (success, stdout+stderr).
fn run(python: &str, envelope: &Path, pubkey: &Path, artifact: &Path) -> (bool, String) {
    let out = Command::new(python)
        .arg(script())
        .arg(envelope)
        .arg(pubkey)
        .arg("--artifact")
        .arg(artifact)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        other => panic!("verify_dsse.py exited {other:?} (expected 0 or 1):\n{text}"),
    }
}

fn write_jsonl(dir: &Path, name: &str, env: &Envelope) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, env.to_json_line().expect("serialize")).expect("write envelope");
    path
}

#[test]
fn securesystemslib_and_in_toto_attestation_accept_airlock_output() {
    let Ok(python) = std::env::var("AIRLOCK_VENV_PYTHON") else {
        eprintln!("skipping: set AIRLOCK_VENV_PYTHON (see scripts/setup-test-env.sh)");
        return;
    };
    for algorithm in [KeyAlgorithm::EcdsaP256Sha256, KeyAlgorithm::Ed25519] {
        eprintln!("=== {algorithm}");
        check_algorithm(&python, algorithm);
    }
}

fn check_algorithm(python: &str, algorithm: KeyAlgorithm) {
    let python = python.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let key = SigningKey::generate_with(algorithm).unwrap();
    let pubkey = d.join("builder.pub");
    std::fs::write(&pubkey, key.verifying_key().to_spki_pem().unwrap()).unwrap();
    let artifact = d.join("app");
    std::fs::write(&artifact, ARTIFACT).unwrap();
    let (env, body) = sign_statement(&statement_for(ARTIFACT), &key).unwrap();

    // Good: as .intoto.jsonl and as a Sigstore bundle.
    let good = write_jsonl(d, "good.intoto.jsonl", &env);
    let (ok, log) = run(&python, &good, &pubkey, &artifact);
    assert!(ok, "good envelope rejected:\n{log}");
    eprintln!("{log}");
    assert!(log.contains("securesystemslib verified"), "{log}");
    let scheme = match algorithm {
        KeyAlgorithm::Ed25519 => "ed25519",
        _ => "ecdsa-sha2-nistp256",
    };
    assert!(
        log.contains(scheme),
        "verified with the wrong scheme: {log}"
    );
    assert!(log.contains("in-toto-attestation validated"), "{log}");

    let bundle = d.join("good.bundle.json");
    std::fs::write(
        &bundle,
        Bundle::from_envelope(&env).unwrap().to_json().unwrap(),
    )
    .unwrap();
    let (ok, log) = run(&python, &bundle, &pubkey, &artifact);
    assert!(ok, "good bundle rejected:\n{log}");

    // Tampered payload: still a valid statement, but not the one that was signed.
    let mut tampered = env.clone();
    let edited = String::from_utf8(body)
        .unwrap()
        .replace("builders/release", "builders/relaxed");
    tampered.payload = STANDARD.encode(edited);
    let path = write_jsonl(d, "tampered-payload.intoto.jsonl", &tampered);
    let (ok, log) = run(&python, &path, &pubkey, &artifact);
    assert!(!ok, "tampered payload accepted:\n{log}");
    assert!(log.contains("does not verify"), "{log}");
    eprintln!("{log}");

    // Tampered signature: one bit of s flipped.
    let mut tampered = env.clone();
    let mut sig = tampered.signatures[0].sig_bytes().unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    tampered.signatures[0].sig = STANDARD.encode(sig);
    let path = write_jsonl(d, "tampered-sig.intoto.jsonl", &tampered);
    let (ok, log) = run(&python, &path, &pubkey, &artifact);
    assert!(!ok, "tampered signature accepted:\n{log}");

    // Another key's public half, and an artifact that is not a subject.
    let other = d.join("other.pub");
    let other_key = SigningKey::generate_with(algorithm).unwrap();
    std::fs::write(&other, other_key.verifying_key().to_spki_pem().unwrap()).unwrap();
    let (ok, log) = run(&python, &good, &other, &artifact);
    assert!(!ok, "wrong key accepted:\n{log}");
    let stranger = d.join("stranger");
    std::fs::write(&stranger, b"not built here").unwrap();
    let (ok, log) = run(&python, &good, &pubkey, &stranger);
    assert!(
        !ok && log.contains("is not a subject"),
        "unrelated artifact accepted:\n{log}"
    );
}
