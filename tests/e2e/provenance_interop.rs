//! Provenance of a real sandboxed build, accepted by verifiers airlock did not write and
//! refused by all of them when tampered with: `airlock verify`, PyPI securesystemslib (DSSE,
//! ECDSA P-256 and Ed25519), PyPI in-toto-attestation (Statement v1 and SLSA provenance v1
//! structure) and npm @sigstore/verify (Sigstore bundle v0.3 with a public-key hint).

use std::path::Path;

use airlock_attest::{KeyAlgorithm, SigningKey, load_signing_key};

use crate::common::*;
use crate::provenance_fixtures::*;

const BUILDER_ID: &str = "https://localhost/builders/local/trusted";
const BUILD_TYPE: &str = "https://airlock.dev/build-types/job/v1";

fn accepted_by_all(b: &HelloBuild, jsonl: &Path, bundle: &Path) {
    let source = format!("file://{}", b.job.parent().unwrap().display());
    for provenance in [jsonl, bundle] {
        let o = airlock_verify(
            &b.artifact,
            provenance,
            &[&b.public_key],
            &[
                "--builder-id",
                BUILDER_ID,
                "--build-type",
                BUILD_TYPE,
                "--source-uri",
                &source,
            ],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "airlock verify refused good provenance"
        );
        let t = text(&o);
        for check in [
            "PASS signature",
            "PASS subject",
            "PASS builder.id",
            "PASS buildType",
            "PASS source",
            "PASS externalParameters",
        ] {
            assert!(t.contains(check), "missing {check:?}: {t}");
        }
        assert!(!t.contains("SKIP"), "every check was asked for: {t}");
        let o = third_party_verify(provenance, &b.public_key, &b.artifact);
        assert!(
            o.status.success(),
            "securesystemslib/in-toto refused good provenance"
        );
        let t = text(&o);
        assert!(t.contains("securesystemslib verified"), "{t}");
        assert!(t.contains("in-toto-attestation validated"), "{t}");
    }
    let o = sigstore_js_verify(bundle, &b.public_key, &b.artifact);
    assert!(
        o.status.success(),
        "@sigstore/verify refused the good bundle"
    );
    assert!(text(&o).contains("@sigstore/verify verified"));
}

fn refused_by_all(b: &HelloBuild, jsonl: &Path, bundle: &Path, key: &Path, what: &str) {
    for provenance in [jsonl, bundle] {
        let o = airlock_verify(&b.artifact, provenance, &[key], &[]);
        assert_eq!(o.status.code(), Some(1), "airlock verify accepted {what}");
        let o = third_party_verify(provenance, key, &b.artifact);
        assert_eq!(
            o.status.code(),
            Some(1),
            "securesystemslib/in-toto accepted {what}"
        );
    }
    let o = sigstore_js_verify(bundle, key, &b.artifact);
    assert_eq!(o.status.code(), Some(1), "@sigstore/verify accepted {what}");
}

fn check_build(algorithm: &str) {
    let b = build_hello(Some(algorithm));
    let key = load_signing_key(&b.private_key).unwrap();
    let expected = match algorithm {
        "ed25519" => KeyAlgorithm::Ed25519,
        _ => KeyAlgorithm::EcdsaP256Sha256,
    };
    assert_eq!(key.algorithm(), expected);
    let envelope = read_envelope(&b.envelope);
    assert_eq!(envelope.signatures[0].keyid, key.keyid());

    // The files airlock wrote, as they are.
    accepted_by_all(&b, &b.envelope, &b.bundle);
    let o = third_party_verify(&b.envelope, &b.public_key, &b.artifact);
    let scheme = if algorithm == "ed25519" {
        "(ed25519,"
    } else {
        "(ecdsa-sha2-nistp256,"
    };
    assert!(text(&o).contains(scheme), "verified with the wrong scheme");

    let dir = b.home.path();
    // 1. A forged payload under the original signature (builder id raised to release).
    let payload = envelope.payload_bytes().unwrap();
    let forged = String::from_utf8(payload)
        .unwrap()
        .replace("/builders/local/trusted", "/builders/release");
    let (jsonl, bundle) = write_both(dir, "forged", &with_payload(&envelope, forged.as_bytes()));
    refused_by_all(&b, &jsonl, &bundle, &b.public_key, "a forged payload");

    // 2. One bit of the signature flipped.
    let (jsonl, bundle) = write_both(dir, "flipped", &with_flipped_signature(&envelope));
    refused_by_all(&b, &jsonl, &bundle, &b.public_key, "a flipped signature");

    // 3. Another key of the same algorithm (its keyid differs, and so does the signature).
    let other = SigningKey::generate_with(expected).unwrap();
    let other_pub = dir.join("other.pub");
    std::fs::write(&other_pub, other.verifying_key().to_spki_pem().unwrap()).unwrap();
    refused_by_all(
        &b,
        &b.envelope,
        &b.bundle,
        &other_pub,
        "a signature by another key",
    );

    // 4. A tampered artifact: not a subject.
    let evil = dir.join("hello-tampered");
    let mut bytes = std::fs::read(&b.artifact).unwrap();
    bytes.push(0);
    std::fs::write(&evil, bytes).unwrap();
    let o = airlock_verify(&evil, &b.envelope, &[&b.public_key], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("FAIL artifact"), "{}", text(&o));
    assert_eq!(
        third_party_verify(&b.envelope, &b.public_key, &evil)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        sigstore_js_verify(&b.bundle, &b.public_key, &evil)
            .status
            .code(),
        Some(1)
    );

    // 5. Structurally broken provenance, validly signed by the real key: in-toto-attestation
    //    (and airlock verify) must refuse what the signature alone would let through.
    let mut statement = statement_json(&envelope);
    statement["predicate"]["runDetails"]["builder"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    let (jsonl, _) = write_both(dir, "no-builder-id", &resign(&statement, &key));
    let o = third_party_verify(&jsonl, &b.public_key, &b.artifact);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a predicate without builder.id was accepted"
    );
    assert!(
        text(&o).contains("securesystemslib verified"),
        "the signature itself is fine"
    );
    assert_eq!(
        airlock_verify(&b.artifact, &jsonl, &[&b.public_key], &[])
            .status
            .code(),
        Some(1)
    );
    let mut statement = statement_json(&envelope);
    statement["_type"] = "https://in-toto.io/Statement/v0.1".into();
    let (jsonl, _) = write_both(dir, "old-type", &resign(&statement, &key));
    let o = third_party_verify(&jsonl, &b.public_key, &b.artifact);
    assert_eq!(o.status.code(), Some(1), "a v0.1 statement was accepted");
    assert!(
        text(&o).contains("in-toto-attestation rejects"),
        "{}",
        text(&o)
    );
    assert_eq!(
        airlock_verify(&b.artifact, &jsonl, &[&b.public_key], &[])
            .status
            .code(),
        Some(1)
    );
    let mut statement = statement_json(&envelope);
    statement["predicate"]["buildDefinition"]["surprise"] = 1.into();
    let (jsonl, _) = write_both(dir, "unknown-field", &resign(&statement, &key));
    let o = third_party_verify(&jsonl, &b.public_key, &b.artifact);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unknown predicate field was accepted"
    );
    assert!(
        text(&o).contains("no field named \"surprise\""),
        "{}",
        text(&o)
    );
    assert_eq!(
        airlock_verify(&b.artifact, &jsonl, &[&b.public_key], &[])
            .status
            .code(),
        Some(1)
    );
}

#[test]
#[ignore = "needs root, the base image, the venv and @sigstore/verify: run scripts/test.sh"]
fn p256_provenance_of_a_real_build_passes_third_party_verifiers_and_tampering_fails() {
    check_build("ecdsa-p256");
}

#[test]
#[ignore = "needs root, the base image, the venv and @sigstore/verify: run scripts/test.sh"]
fn ed25519_provenance_of_a_real_build_passes_third_party_verifiers_and_tampering_fails() {
    check_build("ed25519");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn verify_refuses_unknown_external_parameters_unless_allowed_and_takes_several_keys() {
    let b = build_hello(None);
    let key = load_signing_key(&b.private_key).unwrap();
    let dir = b.home.path();
    let mut statement = statement_json(&read_envelope(&b.envelope));
    statement["predicate"]["buildDefinition"]["externalParameters"]["cacheFrom"] =
        "https://cache.example/poisoned".into();
    let (jsonl, bundle) = write_both(dir, "extra-param", &resign(&statement, &key));
    for provenance in [&jsonl, &bundle] {
        let o = airlock_verify(&b.artifact, provenance, &[&b.public_key], &[]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "an unknown external parameter was accepted"
        );
        let t = text(&o);
        assert!(
            t.contains("FAIL externalParameters has unexpected key(s) cacheFrom"),
            "{t}"
        );
        let o = airlock_verify(
            &b.artifact,
            provenance,
            &[&b.public_key],
            &["--allow-unknown-external-parameters"],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "--allow-unknown-external-parameters relaxes it"
        );
        assert!(text(&o).contains("SKIP externalParameters"));
    }

    // Several --key: rotation. Any one trusted key that verifies is enough; none is not.
    let old = SigningKey::generate().unwrap();
    let old_pub = dir.join("old.pub");
    std::fs::write(&old_pub, old.verifying_key().to_spki_pem().unwrap()).unwrap();
    let ed = SigningKey::generate_with(KeyAlgorithm::Ed25519).unwrap();
    let ed_pub = dir.join("ed.pub");
    std::fs::write(&ed_pub, ed.verifying_key().to_spki_pem().unwrap()).unwrap();
    let o = airlock_verify(
        &b.artifact,
        &b.envelope,
        &[&old_pub, &ed_pub, &b.public_key],
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o).contains(key.keyid()),
        "names the key that verified"
    );
    let o = airlock_verify(&b.artifact, &b.envelope, &[&old_pub, &ed_pub], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("none of them is trusted"), "{}", text(&o));
    // A private key is not a verification key.
    let o = airlock_verify(&b.artifact, &b.envelope, &[&b.private_key], &[]);
    assert_eq!(o.status.code(), Some(2));
}
