//! SLSA verification summary attestations (VSAs) of a real sandboxed build: `airlock verify
//! --provenance ... --vsa-out` writes one, `airlock verify --vsa` checks it, PyPI
//! securesystemslib verifies its DSSE signature and in-toto-attestation its schema, and every
//! field is what docs/vsa.md says. Tampered summaries, summaries for another artifact and
//! FAILED summaries are refused.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use airlock_attest::{
    Envelope, KeyAlgorithm, Sha256Digest, load_signing_key, load_verifying_key,
    validate_rfc3339_utc, write_keypair, write_keypair_with,
};
use serde_json::{Value, json};

use crate::common::*;
use crate::provenance_fixtures::*;

const LOCAL_BUILDER: &str = "https://localhost/builders/local/trusted";
const HOSTED_BUILDER: &str = "https://ci.example/builders/release";
const VERIFIER: &str = "https://verifier.example/gates/release";

/// Command-line arguments of any mix of strings and paths.
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$(OsString::from($a)),*] };
}

/// `airlock verify ARTIFACT ARGS...`.
fn verify(artifact: &Path, args: &[OsString]) -> Output {
    let mut c = airlock();
    c.arg("verify").arg(artifact).args(args);
    run(c)
}

/// tests/interop/verify_dsse.py --vsa: securesystemslib checks the signature with `key`,
/// in-toto-attestation the Statement and VSA schema, and `artifact` must be a subject.
fn third_party_verify_vsa(vsa: &Path, key: &Path, artifact: &Path) -> Output {
    let mut c = Command::new(venv_python());
    c.arg(repo().join("tests/interop/verify_dsse.py"))
        .arg(vsa)
        .arg(key)
        .arg("--artifact")
        .arg(artifact)
        .arg("--vsa");
    run(c)
}

fn statement_of(vsa: &Path) -> Value {
    statement_json(&read_envelope(vsa))
}

fn write_envelope(dir: &Path, name: &str, envelope: &Envelope) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, envelope.to_json_line().unwrap()).unwrap();
    path
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn vsa_of_a_real_build_is_written_checked_and_refused_when_tampered_or_failed() {
    let b = build_hello(None);
    let dir = b.home.path();
    let (vsa_key, vsa_pub) = write_keypair(dir, "vsa").unwrap();
    let vsa_keyid = load_signing_key(&vsa_key).unwrap().keyid().to_owned();
    let artifact_digest = Sha256Digest::of(&std::fs::read(&b.artifact).unwrap());
    let provenance_bytes = std::fs::read(&b.envelope).unwrap();

    // 1. Verify the provenance and write a VSA.
    let vsa = dir.join("hello.vsa.intoto.jsonl");
    let before = airlock_attest::rfc3339_utc(SystemTime::now()).unwrap();
    let o = verify(
        &b.artifact,
        &args![
            "--provenance",
            &b.envelope,
            "--key",
            &b.public_key,
            "--builder-id",
            &LOCAL_BUILDER,
            "--vsa-out",
            &vsa,
            "--vsa-key",
            &vsa_key,
            "--vsa-verifier-id",
            &VERIFIER,
        ],
    );
    let after = airlock_attest::rfc3339_utc(SystemTime::now()).unwrap();
    assert_eq!(o.status.code(), Some(0), "verify --vsa-out failed");
    let t = text(&o);
    assert!(t.contains("PASS builder.id"), "{t}");
    assert!(
        t.contains("verificationResult PASSED, verifiedLevels [SLSA_BUILD_LEVEL_1]"),
        "{t}"
    );
    assert!(t.contains("SLSA_BUILD_LEVEL_1 only: builder id"), "{t}");

    // 2. Every field.
    let line = std::fs::read_to_string(&vsa).unwrap();
    assert_eq!(line.lines().count(), 1, "one envelope, one line");
    let envelope = read_envelope(&vsa);
    assert_eq!(envelope.payload_type, "application/vnd.in-toto+json");
    assert_eq!(envelope.signatures.len(), 1);
    assert_eq!(envelope.signatures[0].keyid, vsa_keyid);
    let s = statement_of(&vsa);
    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        s["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    assert_eq!(
        s["subject"],
        json!([{"name": "hello", "digest": {"sha256": artifact_digest.hex()}}])
    );
    let p = &s["predicate"];
    assert_eq!(
        p["verifier"],
        json!({"id": VERIFIER, "version": {"airlock": env!("CARGO_PKG_VERSION")}})
    );
    let time = p["timeVerified"].as_str().unwrap();
    validate_rfc3339_utc(time).unwrap();
    assert!(
        before.as_str() <= time && time <= after.as_str(),
        "{before} <= {time} <= {after}"
    );
    let resource_uri = format!("pkg:generic/hello?checksum=sha256:{artifact_digest}");
    assert_eq!(p["resourceUri"], resource_uri.as_str());
    // The policy digest: the canonical document of what was checked, recomputed here.
    let keyid = load_verifying_key(&b.public_key)
        .unwrap()
        .keyid()
        .to_owned();
    let mut allowed: Vec<&str> = airlock_controller::EXTERNAL_PARAMETERS.to_vec();
    allowed.sort_unstable();
    let document = json!({
        "allowedExternalParameters": allowed,
        "buildType": null,
        "builderId": LOCAL_BUILDER,
        "sourceUri": null,
        "trustedKeyids": [keyid],
    })
    .to_string();
    assert!(t.contains(&document), "the policy document is printed: {t}");
    assert_eq!(
        p["policy"],
        json!({
            "uri": "https://airlock.dev/verification-policies/provenance/v1",
            "digest": {"sha256": Sha256Digest::of(document.as_bytes()).hex()},
        })
    );
    assert_eq!(
        p["inputAttestations"],
        json!([{
            "uri": "hello.intoto.jsonl",
            "digest": {"sha256": Sha256Digest::of(&provenance_bytes).hex()},
        }])
    );
    assert_eq!(p["verificationResult"], "PASSED");
    assert_eq!(p["verifiedLevels"], json!(["SLSA_BUILD_LEVEL_1"]));
    assert_eq!(p["slsaVersion"], "1.0");
    assert!(
        p.get("dependencyLevels").is_none(),
        "no claim about dependencies"
    );
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 8, "no other predicate fields: {keys:?}");

    // 3. airlock verify --vsa accepts it with every requirement, and refuses a higher level.
    let o = verify(
        &b.artifact,
        &args![
            "--vsa",
            &vsa,
            "--key",
            &vsa_pub,
            "--vsa-verifier-id",
            &VERIFIER,
            "--vsa-resource-uri",
            &resource_uri,
            "--vsa-level",
            "SLSA_BUILD_LEVEL_1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "verify --vsa refused a good VSA");
    let t = text(&o);
    for check in [
        "PASS signature",
        "PASS predicateType: https://slsa.dev/verification_summary/v1",
        "PASS subject: hello sha256:",
        "PASS verifier.id",
        "PASS resourceUri",
        "PASS verificationResult: PASSED",
        "PASS verifiedLevels",
    ] {
        assert!(t.contains(check), "missing {check:?}: {t}");
    }
    assert!(!t.contains("SKIP"), "{t}");
    let o = verify(
        &b.artifact,
        &args![
            "--vsa",
            &vsa,
            "--key",
            &vsa_pub,
            "--vsa-level",
            "SLSA_BUILD_LEVEL_3",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "a local build reached level 3");
    assert!(text(&o).contains("does not reach SLSA_BUILD_LEVEL_3"));
    for (flag, wrong) in [
        ("--vsa-verifier-id", "https://other.example/verifier"),
        ("--vsa-resource-uri", "pkg:generic/other"),
    ] {
        let o = verify(
            &b.artifact,
            &args!["--vsa", &vsa, "--key", &vsa_pub, &flag, &wrong],
        );
        assert_eq!(o.status.code(), Some(1), "{flag} {wrong} was accepted");
    }

    // 4. securesystemslib verifies the DSSE signature; in-toto-attestation the schema.
    let o = third_party_verify_vsa(&vsa, &vsa_pub, &b.artifact);
    assert!(o.status.success(), "securesystemslib refused the VSA");
    let t = text(&o);
    assert!(t.contains("securesystemslib verified"), "{t}");
    assert!(t.contains("(ecdsa-sha2-nistp256,"), "{t}");
    assert!(
        t.contains("verification summary v1 predicate (verifier.id"),
        "{t}"
    );
    // ... and refuses it under another key (the provenance key is not the VSA key).
    let o = third_party_verify_vsa(&vsa, &b.public_key, &b.artifact);
    assert_eq!(o.status.code(), Some(1));
    let o = verify(&b.artifact, &args!["--vsa", &vsa, "--key", &b.public_key]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("none of them is trusted"), "{}", text(&o));

    // 5. A tampered VSA (level raised under the original signature) is refused by both.
    let forged = String::from_utf8(envelope.payload_bytes().unwrap())
        .unwrap()
        .replace("SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_3");
    let forged = write_envelope(
        dir,
        "forged.vsa.intoto.jsonl",
        &with_payload(&envelope, forged.as_bytes()),
    );
    let o = verify(&b.artifact, &args!["--vsa", &forged, "--key", &vsa_pub]);
    assert_eq!(o.status.code(), Some(1), "a tampered VSA was accepted");
    assert!(text(&o).contains("does not verify"), "{}", text(&o));
    let o = third_party_verify_vsa(&forged, &vsa_pub, &b.artifact);
    assert_eq!(
        o.status.code(),
        Some(1),
        "securesystemslib accepted a forgery"
    );
    let flipped = write_envelope(
        dir,
        "flipped.vsa.intoto.jsonl",
        &with_flipped_signature(&envelope),
    );
    let o = verify(&b.artifact, &args!["--vsa", &flipped, "--key", &vsa_pub]);
    assert_eq!(o.status.code(), Some(1));

    // 6. A VSA for another artifact does not cover this one.
    let other = dir.join("hello-other");
    let mut bytes = std::fs::read(&b.artifact).unwrap();
    bytes.push(0);
    std::fs::write(&other, bytes).unwrap();
    let o = verify(&other, &args!["--vsa", &vsa, "--key", &vsa_pub]);
    assert_eq!(o.status.code(), Some(1), "a VSA covered another artifact");
    assert!(
        text(&o).contains("is not a subject of this verification summary"),
        "{}",
        text(&o)
    );
    assert_eq!(
        third_party_verify_vsa(&vsa, &vsa_pub, &other).status.code(),
        Some(1)
    );

    // 7. Provenance is not a VSA, and a VSA is not provenance.
    let o = verify(
        &b.artifact,
        &args!["--vsa", &b.envelope, "--key", &b.public_key],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("this is not a verification summary"));
    let o = airlock_verify(&b.artifact, &vsa, &[&vsa_pub], &[]);
    assert_eq!(o.status.code(), Some(1), "a VSA passed as provenance");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn vsa_levels_failed_results_and_flag_rules() {
    let b = build_hello(None);
    let dir = b.home.path();
    let (vsa_key, vsa_pub) = write_keypair_with(dir, "vsa", KeyAlgorithm::Ed25519).unwrap();

    // Level 3 needs a pinned hosted builder id. The real build's statement, re-signed with
    // the same (trusted) key under a hosted controller's id, stands in for a hosted build.
    let key = load_signing_key(&b.private_key).unwrap();
    let mut statement = statement_json(&read_envelope(&b.envelope));
    statement["predicate"]["runDetails"]["builder"]["id"] = HOSTED_BUILDER.into();
    let (hosted, _) = write_both(dir, "hosted", &resign(&statement, &key));
    let l3 = dir.join("l3.vsa.intoto.jsonl");
    let base = |out: &Path| {
        args![
            "--provenance",
            &hosted,
            "--key",
            &b.public_key,
            "--vsa-out",
            out,
            "--vsa-key",
            &vsa_key,
        ]
    };
    let pinned = [&base(&l3)[..], &args!["--builder-id", HOSTED_BUILDER]].concat();
    let o = verify(&b.artifact, &pinned);
    assert_eq!(o.status.code(), Some(0));
    let s = statement_of(&l3);
    assert_eq!(
        s["predicate"]["verifiedLevels"],
        json!(["SLSA_BUILD_LEVEL_3"])
    );
    assert_eq!(
        s["predicate"]["verifier"]["id"], "https://airlock.dev/verifiers/airlock-verify",
        "the documented default"
    );
    let o = verify(
        &b.artifact,
        &args![
            "--vsa",
            &l3,
            "--key",
            &vsa_pub,
            "--vsa-level",
            "SLSA_BUILD_LEVEL_3",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = third_party_verify_vsa(&l3, &vsa_pub, &b.artifact);
    assert!(o.status.success());
    assert!(text(&o).contains("(ed25519,"), "{}", text(&o));
    // The same provenance without --builder-id: the id is not pinned, so level 1 only.
    let unpinned = dir.join("unpinned.vsa.intoto.jsonl");
    let o = verify(&b.artifact, &base(&unpinned));
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("--builder-id was not given"));
    assert_eq!(
        statement_of(&unpinned)["predicate"]["verifiedLevels"],
        json!(["SLSA_BUILD_LEVEL_1"])
    );

    // FAILED: the provenance does not verify (wrong builder id). A signed FAILED summary is
    // still written, so a pipeline can publish the negative result, and verify exits 1.
    let failed = dir.join("failed.vsa.intoto.jsonl");
    let o = verify(
        &b.artifact,
        &args![
            "--provenance",
            &b.envelope,
            "--key",
            &b.public_key,
            "--builder-id",
            &HOSTED_BUILDER,
            "--vsa-out",
            &failed,
            "--vsa-key",
            &vsa_key,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "failed verification exited 0");
    let t = text(&o);
    assert!(t.contains("FAIL builder.id"), "{t}");
    assert!(
        t.contains("verificationResult FAILED, verifiedLevels [FAILED]"),
        "{t}"
    );
    let p = statement_of(&failed)["predicate"].clone();
    assert_eq!(p["verificationResult"], "FAILED");
    assert_eq!(p["verifiedLevels"], json!(["FAILED"]));
    // Validly signed (securesystemslib agrees), yet refused by the checker.
    let o = third_party_verify_vsa(&failed, &vsa_pub, &b.artifact);
    assert!(o.status.success(), "the FAILED summary is validly signed");
    assert!(text(&o).contains("verificationResult FAILED"));
    let o = verify(&b.artifact, &args!["--vsa", &failed, "--key", &vsa_pub]);
    assert_eq!(o.status.code(), Some(1), "a FAILED VSA was accepted");
    assert!(
        text(&o).contains("FAIL the verification summary says verificationResult FAILED"),
        "{}",
        text(&o)
    );

    // Flags: the modes exclude each other, and the VSA flags need their mode.
    let usage_errors = [
        args!["--key", &vsa_pub].to_vec(),
        args!["--vsa", &l3, "--provenance", &b.envelope, "--key", &vsa_pub,].to_vec(),
        args![
            "--provenance",
            &b.envelope,
            "--key",
            &b.public_key,
            "--vsa-out",
            &failed,
        ]
        .to_vec(),
        args![
            "--provenance",
            &b.envelope,
            "--key",
            &b.public_key,
            "--vsa-level",
            "SLSA_BUILD_LEVEL_1",
        ]
        .to_vec(),
        args![
            "--provenance",
            &b.envelope,
            "--key",
            &b.public_key,
            "--vsa-verifier-id",
            &VERIFIER,
        ]
        .to_vec(),
        args![
            "--vsa",
            &l3,
            "--key",
            &vsa_pub,
            "--builder-id",
            &HOSTED_BUILDER,
        ]
        .to_vec(),
    ];
    for args in usage_errors {
        let o = verify(&b.artifact, &args);
        assert_eq!(o.status.code(), Some(2), "not a usage error");
    }
    // Several artifacts need an explicit resourceUri; a usage error writes nothing.
    let none = dir.join("none.vsa.intoto.jsonl");
    let o = verify(
        &b.artifact,
        &args![
            &b.artifact,
            "--provenance",
            &b.envelope,
            "--key",
            &b.public_key,
            "--vsa-out",
            &none,
            "--vsa-key",
            &vsa_key,
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("needs --vsa-resource-uri"),
        "{}",
        text(&o)
    );
    assert!(!none.exists());
}
