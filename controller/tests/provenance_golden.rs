//! Golden provenance: fixed inputs, clock and key produce these exact bytes.
//!
//! Regenerate after an intended format change with
//! `UPDATE_GOLDEN=1 cargo test -p airlock-controller --test provenance_golden`, and review the
//! diff: every changed byte changes what verifiers see.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use airlock_attest::{Envelope, Sha256Digest, SigningKey, verify_envelope};
use airlock_controller::Mode;
use airlock_controller::provenance::caches::CacheReport;
use airlock_controller::provenance::signer::Signer;
use airlock_controller::provenance::statement::{ProvenanceInputs, build_statement};
use airlock_controller::store::OutputRecord;
use airlock_job::JobSpec;

/// Keys deliberately out of order and an input: externalParameters must come out sorted and
/// complete.
const SPEC: &str = r#"{"steps":[{"run":"make && cp hello /out/","name":"build","env":{"CFLAGS":"-O2"}}],
"job":{"profile":"release","name":"hello","labels":["linux"],"timeout":"10m"},
"source":{"sha256":"1111111111111111111111111111111111111111111111111111111111111111","path":"/src/hello"},
"image":{"ref":"registry.example/base@sha256:2222222222222222222222222222222222222222222222222222222222222222"},
"inputs":[{"name":"zlib","url":"https://example.org/zlib-1.3.1.tar.gz","sha256":"3333333333333333333333333333333333333333333333333333333333333333"}],
"outputs":{"paths":["hello","share/*"]}}"#;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check(name: &str, actual: &[u8]) {
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{} differs from the golden file:\n--- expected\n{}\n--- actual\n{}",
        path.display(),
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}

#[test]
fn provenance_matches_golden_bytes() {
    let spec = JobSpec::from_json(SPEC.as_bytes()).unwrap();
    let outputs = [
        OutputRecord {
            path: "share/readme.txt".into(),
            sha256: Sha256Digest::of(b"readme"),
            size: 6,
            executable: false,
        },
        OutputRecord {
            path: "hello".into(),
            sha256: Sha256Digest::of(b"hello binary"),
            size: 12,
            executable: true,
        },
    ];
    let image = *spec.image.reference.digest();
    let log = Sha256Digest::of(b"building hello\n");
    let inputs = ProvenanceInputs {
        issuer: "https://ci.example",
        mode: Mode::Server,
        controller_version: "1.2.3",
        job_id: "00000000-0000-4000-8000-000000000001",
        attempt: 1,
        spec: &spec,
        spec_json: SPEC.as_bytes(),
        runner_id: "00000000-0000-4000-8000-000000000002",
        runner_version: "1.2.3",
        image_digest: &image,
        image_layers: &[],
        dependencies: &[],
        caches: &CacheReport::default(),
        images: &[],
        outputs: &outputs,
        log_sha256: &log,
        started: UNIX_EPOCH + Duration::from_millis(1_700_000_000_999),
        finished: UNIX_EPOCH + Duration::from_millis(1_700_000_062_001),
        admission: None,
        signer_keyid: None,
    };
    let statement = build_statement(&inputs).unwrap();
    let body = statement.to_json().unwrap();
    check("provenance-v1.statement.json", &body);

    // RFC 6979 signatures are deterministic, so the envelope is golden too.
    // So are Ed25519 signatures (RFC 8032), over the same PAE bytes.
    let p256 = SigningKey::from_p256_scalar(&[0x42; 32]).unwrap();
    let ed25519 = SigningKey::from_ed25519_seed(&[0x42; 32]);
    for (key, file) in [
        (p256, "provenance-v1.intoto.jsonl"),
        (ed25519, "provenance-v1.ed25519.intoto.jsonl"),
    ] {
        let signed = Signer::new(key.clone())
            .unwrap()
            .sign("release", &statement)
            .unwrap();
        check(file, signed.envelope_json.as_bytes());
        let envelope = Envelope::from_json(signed.envelope_json.trim_end().as_bytes()).unwrap();
        let verified = verify_envelope(&envelope, &[key.verifying_key().clone()]).unwrap();
        assert_eq!(verified.payload, body);
        assert_eq!(envelope.signatures[0].keyid, key.keyid());
    }

    // Local mode changes only the builder id.
    let local = build_statement(&ProvenanceInputs {
        mode: Mode::Local,
        ..inputs.clone()
    })
    .unwrap();
    assert_eq!(
        local.predicate.run_details.builder.id,
        "https://ci.example/builders/local/release"
    );

    // An admission record lands in internalParameters.admissionPolicy, verbatim.
    let record = serde_json::json!({"digest": {"sha256": "ab".repeat(32)}, "mode": "evaluate",
        "decision": "deny", "messages": ["steps may not curl"]});
    let admitted = build_statement(&ProvenanceInputs {
        admission: Some(&record),
        ..inputs.clone()
    })
    .unwrap();
    let internal = admitted
        .predicate
        .build_definition
        .internal_parameters
        .unwrap();
    assert_eq!(internal["admissionPolicy"], record);
}
