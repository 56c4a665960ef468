//! Sign-then-verify round trips and every rejection stage of provenance verification.

mod common;

use airlock_attest::{
    Bundle, Envelope, IN_TOTO_PAYLOAD_TYPE, Policy, Sha256Digest, SigningKey, Statement,
    VerifyError, sign_envelope, sign_statement, verify_envelope, verify_provenance,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{BUILD_TYPE, BUILDER_ID, SOURCE_URI, statement_for};

const ARTIFACT: &[u8] = b"the built artifact";

fn artifacts() -> Vec<(String, Sha256Digest)> {
    vec![("app".to_owned(), Sha256Digest::of(ARTIFACT))]
}

fn strict_policy() -> Policy {
    Policy {
        builder_id: Some(BUILDER_ID.to_owned()),
        source_uri: Some(SOURCE_URI.to_owned()),
        build_type: Some(BUILD_TYPE.to_owned()),
        allowed_external_parameters: Some(
            ["inputs", "source", "steps"].map(str::to_owned).to_vec(),
        ),
    }
}

fn signed() -> (SigningKey, Envelope, Vec<u8>) {
    let key = SigningKey::generate().expect("generate");
    let (env, body) = sign_statement(&statement_for(ARTIFACT), &key).expect("sign");
    (key, env, body)
}

#[test]
fn round_trip_with_full_policy() {
    let (key, env, body) = signed();
    assert_eq!(env.payload_type, IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, key.keyid());
    assert_eq!(env.payload_bytes().unwrap(), body);
    assert_eq!(
        Statement::from_json(&body).unwrap(),
        statement_for(ARTIFACT)
    );

    // Through the .intoto.jsonl line and the Sigstore bundle forms too.
    let line = env.to_json_line().unwrap();
    let from_line = Envelope::from_json(line.trim_end().as_bytes()).unwrap();
    let bundle = Bundle::from_envelope(&env).unwrap();
    let from_bundle = Bundle::from_json(bundle.to_json().unwrap().as_bytes())
        .unwrap()
        .into_envelope();
    for e in [&env, &from_line, &from_bundle] {
        let report = verify_provenance(
            e,
            &[key.verifying_key().clone()],
            &artifacts(),
            &strict_policy(),
        )
        .unwrap();
        assert_eq!(report.keyid, key.keyid());
        let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "signature",
                "payloadType",
                "_type",
                "predicateType",
                "statement",
                "subject",
                "builder.id",
                "buildType",
                "source",
                "externalParameters"
            ]
        );
        assert!(report.not_checked.is_empty());
    }
}

#[test]
fn lenient_policy_reports_what_was_not_checked() {
    let (key, env, _) = signed();
    let report = verify_provenance(
        &env,
        &[key.verifying_key().clone()],
        &artifacts(),
        &Policy::default(),
    )
    .unwrap();
    let skipped: Vec<_> = report.not_checked.iter().map(|c| c.name).collect();
    assert_eq!(
        skipped,
        ["builder.id", "buildType", "source", "externalParameters"]
    );
    assert!(report.not_checked[0].detail.contains(BUILDER_ID));
}

#[test]
fn verifies_exact_payload_bytes_without_reserializing() {
    // Whitespace and key order the serializer would never produce still verify, because the
    // signature covers the bytes as sent.
    let key = SigningKey::generate().unwrap();
    let compact = statement_for(ARTIFACT).to_json().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&compact).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    let env = sign_envelope(IN_TOTO_PAYLOAD_TYPE, &pretty, &key).unwrap();
    let verified = verify_envelope(&env, &[key.verifying_key().clone()]).unwrap();
    assert_eq!(verified.payload, pretty);
    verify_provenance(
        &env,
        &[key.verifying_key().clone()],
        &artifacts(),
        &strict_policy(),
    )
    .unwrap();
}

#[test]
fn tampered_payload_is_bad_signature() {
    let (key, mut env, body) = signed();
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("builders/release", "builders/relaxed");
    env.payload = STANDARD.encode(tampered);
    let err = verify_provenance(
        &env,
        &[key.verifying_key().clone()],
        &artifacts(),
        &strict_policy(),
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::BadSignature { ref keyid } if keyid == key.keyid()),
        "{err}"
    );
}

#[test]
fn tampered_signature_is_bad_signature() {
    let (key, mut env, _) = signed();
    let mut sig = env.signatures[0].sig_bytes().unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 0x80;
    env.signatures[0].sig = STANDARD.encode(sig);
    assert!(matches!(
        verify_envelope(&env, &[key.verifying_key().clone()]),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn payload_type_is_bound_by_the_signature() {
    let (key, mut env, _) = signed();
    env.payload_type = "application/json".to_owned();
    assert!(matches!(
        verify_envelope(&env, &[key.verifying_key().clone()]),
        Err(VerifyError::BadSignature { .. })
    ));
    // Signed honestly under another type: signature fine, payloadType check fails.
    let body = statement_for(ARTIFACT).to_json().unwrap();
    let env = sign_envelope("application/json", &body, &key).unwrap();
    assert!(matches!(
        verify_provenance(
            &env,
            &[key.verifying_key().clone()],
            &artifacts(),
            &Policy::default()
        ),
        Err(VerifyError::PayloadType { .. })
    ));
}

#[test]
fn wrong_key_and_unknown_keyid() {
    let (_, env, _) = signed();
    let other = SigningKey::generate().unwrap();
    // The keyid names a key we do not trust.
    let err = verify_envelope(&env, &[other.verifying_key().clone()]).unwrap_err();
    assert!(
        matches!(err, VerifyError::UnknownKey { ref keyids } if keyids == &[env.signatures[0].keyid.clone()]),
        "{err}"
    );

    // A keyid claiming the trusted key, but signed by another key.
    let mut forged = env.clone();
    forged.signatures[0].keyid = other.keyid().to_owned();
    assert!(matches!(
        verify_envelope(&forged, &[other.verifying_key().clone()]),
        Err(VerifyError::BadSignature { .. })
    ));

    // No keyid: every trusted key is tried, none verifies.
    let mut anonymous = env.clone();
    anonymous.signatures[0].keyid.clear();
    assert!(matches!(
        verify_envelope(&anonymous, &[other.verifying_key().clone()]),
        Err(VerifyError::BadSignature { ref keyid }) if keyid == "<none>"
    ));
    assert!(matches!(
        verify_envelope(&env, &[]),
        Err(VerifyError::NoTrustedKeys)
    ));
}

#[test]
fn one_good_signature_among_several_suffices() {
    let (key, mut env, _) = signed();
    let other = SigningKey::generate().unwrap();
    let extra = sign_envelope(&env.payload_type, &env.payload_bytes().unwrap(), &other).unwrap();
    env.signatures.insert(0, extra.signatures[0].clone());
    let verified = verify_envelope(&env, &[key.verifying_key().clone()]).unwrap();
    assert_eq!(verified.keyid, key.keyid());
}

#[test]
fn subject_mismatch() {
    let (key, env, _) = signed();
    let wrong = vec![("app".to_owned(), Sha256Digest::of(b"something else"))];
    let err = verify_provenance(
        &env,
        &[key.verifying_key().clone()],
        &wrong,
        &Policy::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::SubjectMismatch { ref artifact, digest } if artifact == "app" && digest == wrong[0].1),
        "{err}"
    );
    assert!(matches!(
        verify_provenance(
            &env,
            &[key.verifying_key().clone()],
            &[],
            &Policy::default()
        ),
        Err(VerifyError::NoArtifacts)
    ));
}

#[test]
fn builder_id_build_type_and_source_mismatch() {
    let (key, env, _) = signed();
    let keys = [key.verifying_key().clone()];
    let check = |policy: Policy| verify_provenance(&env, &keys, &artifacts(), &policy).unwrap_err();

    let err = check(Policy {
        builder_id: Some("https://airlock.example/builders/local/alice".to_owned()),
        ..Policy::default()
    });
    assert!(
        matches!(err, VerifyError::BuilderId { ref found, .. } if found == BUILDER_ID),
        "{err}"
    );

    let err = check(Policy {
        build_type: Some("https://other.example/type".to_owned()),
        ..Policy::default()
    });
    assert!(matches!(err, VerifyError::BuildType { .. }), "{err}");

    let err = check(Policy {
        source_uri: Some("git+https://git.example/evil/repo".to_owned()),
        ..Policy::default()
    });
    assert!(
        matches!(err, VerifyError::SourceUri { found: Some(ref f), .. } if f == SOURCE_URI),
        "{err}"
    );
}

#[test]
fn source_policy_fails_when_source_is_not_recorded() {
    let key = SigningKey::generate().unwrap();
    let mut statement = statement_for(ARTIFACT);
    statement.predicate.build_definition.external_parameters = serde_json::json!({"steps": []});
    let (env, _) = sign_statement(&statement, &key).unwrap();
    let err = verify_provenance(
        &env,
        &[key.verifying_key().clone()],
        &artifacts(),
        &Policy {
            source_uri: Some(SOURCE_URI.to_owned()),
            ..Policy::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::SourceUri { found: None, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not recorded"));
}

#[test]
fn unknown_external_parameter_rejected_when_allow_list_given() {
    let key = SigningKey::generate().unwrap();
    let mut statement = statement_for(ARTIFACT);
    statement.predicate.build_definition.external_parameters["debugShell"] = true.into();
    let (env, _) = sign_statement(&statement, &key).unwrap();
    let keys = [key.verifying_key().clone()];
    let err = verify_provenance(&env, &keys, &artifacts(), &strict_policy()).unwrap_err();
    assert!(
        matches!(err, VerifyError::ExternalParameters { ref unknown } if unknown == &["debugShell"]),
        "{err}"
    );
    // Without an allow list the same provenance passes (and says so).
    verify_provenance(&env, &keys, &artifacts(), &Policy::default()).unwrap();
}

#[test]
fn signing_refuses_invalid_statements() {
    let key = SigningKey::generate().unwrap();
    let mut statement = statement_for(ARTIFACT);
    statement.predicate.build_definition.external_parameters = serde_json::json!({});
    assert!(sign_statement(&statement, &key).is_err());
    let mut statement = statement_for(ARTIFACT);
    statement.subject.clear();
    assert!(sign_statement(&statement, &key).is_err());
}

#[test]
fn error_messages_say_what_to_do() {
    let (_, env, _) = signed();
    let other = SigningKey::generate().unwrap();
    let msg = verify_envelope(&env, &[other.verifying_key().clone()])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("public key"), "{msg}");
}
