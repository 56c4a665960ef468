//! Helpers shared by the provenance end-to-end tests: a pinned copy of examples/hello, the
//! third-party verifiers, and tampered copies of an attestation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlock_attest::{Envelope, SigningKey, sign_envelope};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::common::*;

/// Copies examples/hello into `root/hello` with its image pinned to the locally built base
/// image, and returns the job file.
pub fn pinned_hello(root: &Path) -> PathBuf {
    let (layout, digest) = base_image();
    let dir = root.join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(repo().join("examples/hello/hello.c"), dir.join("hello.c")).unwrap();
    let toml = std::fs::read_to_string(repo().join("examples/hello/airlock.toml")).unwrap();
    let file = dir.join("airlock.toml");
    let pinned = with_image_ref(&toml, &format!("oci-layout:{}@{digest}", layout.display()));
    std::fs::write(&file, pinned).unwrap();
    file
}

/// What one `airlock run` of hello left behind.
pub struct HelloBuild {
    /// The AIRLOCK_HOME (and scratch root).
    pub home: tempfile::TempDir,
    /// The built binary.
    pub artifact: PathBuf,
    /// `hello.intoto.jsonl`.
    pub envelope: PathBuf,
    /// `hello.sigstore.json`.
    pub bundle: PathBuf,
    /// The local public key.
    pub public_key: PathBuf,
    /// The local private key (the test reads it to re-sign crafted statements).
    pub private_key: PathBuf,
    /// The job file that was built.
    pub job: PathBuf,
}

/// Builds examples/hello with `airlock run` in a fresh AIRLOCK_HOME. With `algorithm`, the
/// local signing key is created first with `airlock keys generate --algorithm`.
pub fn build_hello(algorithm: Option<&str>) -> HelloBuild {
    let home = scratch();
    let keys = home.path().join("keys");
    if let Some(algorithm) = algorithm {
        let mut c = airlock();
        c.args([
            "keys",
            "generate",
            "--name",
            "local-provenance",
            "--algorithm",
        ])
        .arg(algorithm)
        .arg("--out")
        .arg(&keys);
        let o = run(c);
        assert!(o.status.success(), "keys generate failed");
        assert!(text(&o).contains(&format!("algorithm:   {algorithm}")));
    }
    let job = pinned_hello(home.path());
    let out = home.path().join("out");
    let o = airlock_run(&job, home.path(), &out);
    assert_eq!(o.status.code(), Some(0), "airlock run of hello failed");
    HelloBuild {
        artifact: out.join("hello"),
        envelope: out.join("hello.intoto.jsonl"),
        bundle: out.join("hello.sigstore.json"),
        public_key: keys.join("local-provenance.pub"),
        private_key: keys.join("local-provenance.key"),
        job,
        home,
    }
}

/// `airlock verify ARTIFACT --provenance P --key K... EXTRA...`.
pub fn airlock_verify(
    artifact: &Path,
    provenance: &Path,
    keys: &[&Path],
    extra: &[&str],
) -> Output {
    let mut c = airlock();
    c.arg("verify")
        .arg(artifact)
        .arg("--provenance")
        .arg(provenance);
    for k in keys {
        c.arg("--key").arg(k);
    }
    c.args(extra);
    run(c)
}

/// npm @sigstore/verify on a bundle (tests/interop/verify_bundle.js).
pub fn sigstore_js_verify(bundle: &Path, key: &Path, artifact: &Path) -> Output {
    let mut c = Command::new("node");
    c.arg(repo().join("tests/interop/verify_bundle.js"))
        .arg(bundle)
        .arg(key)
        .arg("--artifact")
        .arg(artifact);
    let o = run(c);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "verify_bundle.js crashed (is @sigstore/verify installed? run scripts/setup-test-env.sh)"
    );
    o
}

/// The envelope in an `.intoto.jsonl` file.
pub fn read_envelope(path: &Path) -> Envelope {
    let text = std::fs::read_to_string(path).unwrap();
    Envelope::from_json(text.trim_end().as_bytes()).unwrap()
}

/// The statement inside an envelope, as JSON.
pub fn statement_json(envelope: &Envelope) -> serde_json::Value {
    serde_json::from_slice(&envelope.payload_bytes().unwrap()).unwrap()
}

/// Re-signs `statement` (any JSON, even invalid provenance) with `key`: what a holder of the
/// key could produce, for showing verifiers content they must refuse despite a good signature.
pub fn resign(statement: &serde_json::Value, key: &SigningKey) -> Envelope {
    let body = serde_json::to_vec(statement).unwrap();
    sign_envelope(airlock_attest::IN_TOTO_PAYLOAD_TYPE, &body, key).unwrap()
}

/// Writes `envelope` as `dir/name.intoto.jsonl` and as `dir/name.sigstore.json`.
pub fn write_both(dir: &Path, name: &str, envelope: &Envelope) -> (PathBuf, PathBuf) {
    let jsonl = dir.join(format!("{name}.intoto.jsonl"));
    std::fs::write(&jsonl, envelope.to_json_line().unwrap()).unwrap();
    let bundle = dir.join(format!("{name}.sigstore.json"));
    let json = airlock_attest::Bundle::from_envelope(envelope)
        .unwrap()
        .to_json()
        .unwrap();
    std::fs::write(&bundle, json).unwrap();
    (jsonl, bundle)
}

/// `envelope` with its payload replaced by `payload` (signature kept: a forgery).
pub fn with_payload(envelope: &Envelope, payload: &[u8]) -> Envelope {
    let mut forged = envelope.clone();
    forged.payload = STANDARD.encode(payload);
    forged
}

/// `envelope` with one bit of its signature flipped.
pub fn with_flipped_signature(envelope: &Envelope) -> Envelope {
    let mut forged = envelope.clone();
    let mut sig = forged.signatures[0].sig_bytes().unwrap();
    let i = sig.len() / 2;
    sig[i] ^= 0x01;
    forged.signatures[0].sig = STANDARD.encode(sig);
    forged
}
