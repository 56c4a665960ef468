//! Unit tests of the VSA types, builder and checker.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use serde_json::Value;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::json;

use super::*;
use crate::dsse::Envelope;
use crate::keys::{SigningKey, VerifyingKey};
use crate::resource_descriptor::ResourceDescriptor;
use crate::sign::sign_envelope;
use crate::statement::IN_TOTO_PAYLOAD_TYPE;
use crate::statement::Statement;
use crate::verify::Policy;

const HOSTED: &str = "https://ci.example/builders/release";
const VERIFIER: &str = "https://ci.example/verifiers/release-gate";

fn key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[7; 32])
}

fn clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn policy() -> Policy {
    Policy {
        builder_id: Some(HOSTED.to_owned()),
        source_uri: Some("git+https://git.example/app".to_owned()),
        build_type: None,
        allowed_external_parameters: Some(vec!["source".to_owned(), "job".to_owned()]),
    }
}

fn artifact() -> (String, Sha256Digest) {
    ("app".to_owned(), Sha256Digest::of(b"the artifact"))
}

fn builder() -> VsaBuilder {
    let (name, digest) = artifact();
    VsaBuilder::new(
        VERIFIER,
        default_resource_uri(&name, &digest),
        policy_descriptor(&policy(), &[key().verifying_key().clone()]),
        clock(),
    )
    .verifier_version("airlock", "0.1.0")
    .subject(ResourceDescriptor::sha256(name, &digest))
    .input_attestation_file("app.intoto.jsonl", b"{\"payloadType\":\"...\"}\n")
}

fn signed(outcome: VsaOutcome) -> Envelope {
    sign_vsa(&builder().build(outcome).unwrap(), &key())
        .unwrap()
        .0
}

fn keys() -> Vec<VerifyingKey> {
    vec![key().verifying_key().clone()]
}

/// `envelope` with its payload replaced (signature kept).
fn with_payload(envelope: &Envelope, payload: &[u8]) -> Envelope {
    let mut forged = envelope.clone();
    forged.payload = STANDARD.encode(payload);
    forged
}

/// `statement` as JSON, changed by `edit`, re-signed with the real key.
fn resigned(edit: impl FnOnce(&mut Value)) -> Envelope {
    let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
    let mut value: Value = serde_json::from_slice(&envelope.payload_bytes().unwrap()).unwrap();
    edit(&mut value);
    sign_envelope(
        IN_TOTO_PAYLOAD_TYPE,
        &serde_json::to_vec(&value).unwrap(),
        &key(),
    )
    .unwrap()
}

#[test]
fn round_trip_and_every_requirement_passes() {
    let statement = builder()
        .build(VsaOutcome::Passed(SlsaBuildLevel::L3))
        .unwrap();
    let (envelope, body) = sign_vsa(&statement, &key()).unwrap();
    assert_eq!(VsaStatement::from_json(&body).unwrap(), statement);
    assert_eq!(envelope.signatures[0].keyid, key().keyid());
    let (name, digest) = artifact();
    let required = VsaRequirements {
        verifier_id: Some(VERIFIER.to_owned()),
        resource_uri: Some(default_resource_uri(&name, &digest)),
        build_level: Some(SlsaBuildLevel::L3),
    };
    let report = verify_vsa(&envelope, &keys(), &[artifact()], &required).unwrap();
    assert_eq!(report.statement, statement);
    assert!(report.not_checked.is_empty());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "signature",
            "payloadType",
            "predicateType",
            "subject",
            "verifier.id",
            "resourceUri",
            "verificationResult",
            "verifiedLevels"
        ]
    );
    // A lower requirement is met by a higher level; no requirement is a SKIP.
    let lower = VsaRequirements {
        build_level: Some(SlsaBuildLevel::L2),
        ..VsaRequirements::default()
    };
    let report = verify_vsa(&envelope, &keys(), &[artifact()], &lower).unwrap();
    assert_eq!(report.not_checked.len(), 2);
}

#[test]
fn deterministic_bytes_with_an_injected_clock() {
    let a = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
    let b = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
    assert_eq!(a.to_json_line().unwrap(), b.to_json_line().unwrap());
    let policy_digest = Sha256Digest::of(&policy_document(&policy(), &keys()));
    let expected = format!(
        concat!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","#,
            r#""subject":[{{"name":"app","digest":{{"sha256":"{artifact}"}}}}],"#,
            r#""predicateType":"https://slsa.dev/verification_summary/v1","#,
            r#""predicate":{{"verifier":{{"id":"https://ci.example/verifiers/release-gate","#,
            r#""version":{{"airlock":"0.1.0"}}}},"timeVerified":"2023-11-14T22:13:20Z","#,
            r#""resourceUri":"pkg:generic/app?checksum=sha256:{artifact}","#,
            r#""policy":{{"uri":"https://airlock.dev/verification-policies/provenance/v1","#,
            r#""digest":{{"sha256":"{policy}"}}}},"#,
            r#""inputAttestations":[{{"uri":"app.intoto.jsonl","digest":{{"sha256":"{input}"}}}}],"#,
            r#""verificationResult":"PASSED","verifiedLevels":["SLSA_BUILD_LEVEL_3"],"#,
            r#""slsaVersion":"1.0"}}}}"#
        ),
        artifact = artifact().1,
        policy = policy_digest,
        input = Sha256Digest::of(b"{\"payloadType\":\"...\"}\n"),
    );
    assert_eq!(
        String::from_utf8(a.payload_bytes().unwrap()).unwrap(),
        expected
    );
    // A different clock is a different statement.
    let later = VsaBuilder::new(
        VERIFIER,
        "r",
        policy_descriptor(&policy(), &keys()),
        clock() + Duration::from_secs(1),
    )
    .subject(ResourceDescriptor::sha256("app", &artifact().1))
    .build(VsaOutcome::Failed)
    .unwrap();
    assert_eq!(
        later.predicate.time_verified.as_deref(),
        Some("2023-11-14T22:13:21Z")
    );
}

#[test]
fn policy_document_is_canonical() {
    let doc = policy_document(&policy(), &keys());
    assert_eq!(
        String::from_utf8(doc).unwrap(),
        format!(
            concat!(
                r#"{{"allowedExternalParameters":["job","source"],"buildType":null,"#,
                r#""builderId":"https://ci.example/builders/release","#,
                r#""sourceUri":"git+https://git.example/app","trustedKeyids":["{}"]}}"#
            ),
            key().keyid()
        )
    );
    // Order and repetition of the inputs do not matter; what was checked does.
    let mut shuffled = policy();
    shuffled.allowed_external_parameters =
        Some(vec!["source".into(), "job".into(), "source".into()]);
    let twice = [key().verifying_key().clone(), key().verifying_key().clone()];
    assert_eq!(
        policy_document(&shuffled, &twice),
        policy_document(&policy(), &keys())
    );
    let relaxed = Policy {
        allowed_external_parameters: None,
        ..policy()
    };
    assert_ne!(
        policy_descriptor(&relaxed, &keys()),
        policy_descriptor(&policy(), &keys())
    );
    let d = policy_descriptor(&Policy::default(), &[]);
    assert_eq!(d.uri.as_deref(), Some(VSA_POLICY_URI));
    assert_eq!(d.name, None);
    assert_eq!(
        d.sha256_digest(),
        Some(Sha256Digest::of(
            br#"{"allowedExternalParameters":null,"buildType":null,"builderId":null,"sourceUri":null,"trustedKeyids":[]}"#
        ))
    );
}

#[test]
fn tampered_payload_is_refused() {
    let envelope = signed(VsaOutcome::Failed);
    let forged = String::from_utf8(envelope.payload_bytes().unwrap())
        .unwrap()
        .replace(
            r#""verificationResult":"FAILED""#,
            r#""verificationResult":"PASSED""#,
        )
        .replace(r#"["FAILED"]"#, r#"["SLSA_BUILD_LEVEL_3"]"#);
    let err = verify_vsa(
        &with_payload(&envelope, forged.as_bytes()),
        &keys(),
        &[artifact()],
        &VsaRequirements::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, VsaError::Signature(VerifyError::BadSignature { .. })),
        "{err}"
    );
}

#[test]
fn wrong_key_is_refused() {
    let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
    let other = SigningKey::from_ed25519_seed(&[8; 32]);
    let err = verify_vsa(
        &envelope,
        &[other.verifying_key().clone()],
        &[artifact()],
        &VsaRequirements::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, VsaError::Signature(VerifyError::UnknownKey { .. })),
        "{err}"
    );
    let err = verify_vsa(&envelope, &[], &[artifact()], &VsaRequirements::default()).unwrap_err();
    assert!(matches!(
        err,
        VsaError::Signature(VerifyError::NoTrustedKeys)
    ));
}

#[test]
fn failed_result_is_refused_by_the_checker() {
    let envelope = signed(VsaOutcome::Failed);
    let err = verify_vsa(
        &envelope,
        &keys(),
        &[artifact()],
        &VsaRequirements::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, VsaError::NotPassed { result: VerificationResult::Failed, levels } if levels == &["FAILED"]),
        "{err}"
    );
    assert!(err.to_string().contains("do not use it"));
}

#[test]
fn unknown_predicate_type_is_refused() {
    let envelope =
        resigned(|v| v["predicateType"] = "https://slsa.dev/verification_summary/v0.2".into());
    let err = verify_vsa(
        &envelope,
        &keys(),
        &[artifact()],
        &VsaRequirements::default(),
    )
    .unwrap_err();
    assert!(matches!(err, VsaError::PredicateType { .. }), "{err}");
    // Provenance is not a VSA, and a VSA is not provenance.
    let envelope = resigned(|v| v["predicateType"] = crate::SLSA_PROVENANCE_V1.into());
    let err = verify_vsa(
        &envelope,
        &keys(),
        &[artifact()],
        &VsaRequirements::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--provenance"), "{err}");
    let vsa = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
    assert!(Statement::from_json(&vsa.payload_bytes().unwrap()).is_err());
    // The right statement under another payload type is not an in-toto attestation.
    let other_type =
        sign_envelope("application/json", &vsa.payload_bytes().unwrap(), &key()).unwrap();
    let err = verify_vsa(&other_type, &keys(), &[artifact()], &Default::default()).unwrap_err();
    assert!(
        matches!(err, VsaError::Signature(VerifyError::PayloadType { .. })),
        "{err}"
    );
    let envelope = resigned(|v| v["_type"] = "https://in-toto.io/Statement/v0.1".into());
    let err = verify_vsa(
        &envelope,
        &keys(),
        &[artifact()],
        &VsaRequirements::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            VsaError::Statement(StatementError::UnsupportedStatementType { .. })
        ),
        "{err}"
    );
}

#[test]
fn requirements_and_subjects_are_enforced() {
    let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L1));
    let check = |required: VsaRequirements| {
        verify_vsa(&envelope, &keys(), &[artifact()], &required).unwrap_err()
    };
    let err = check(VsaRequirements {
        build_level: Some(SlsaBuildLevel::L3),
        ..Default::default()
    });
    assert!(
        matches!(
            err,
            VsaError::Level {
                required: SlsaBuildLevel::L3,
                ..
            }
        ),
        "{err}"
    );
    let err = check(VsaRequirements {
        verifier_id: Some("https://other.example/verifier".into()),
        ..Default::default()
    });
    assert!(matches!(err, VsaError::VerifierId { .. }), "{err}");
    let err = check(VsaRequirements {
        resource_uri: Some("pkg:generic/other".into()),
        ..Default::default()
    });
    assert!(matches!(err, VsaError::ResourceUri { .. }), "{err}");
    let other = ("other".to_owned(), Sha256Digest::of(b"another artifact"));
    let err = verify_vsa(
        &envelope,
        &keys(),
        &[artifact(), other],
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, VsaError::SubjectMismatch { artifact, .. } if artifact == "other"),
        "{err}"
    );
    let err = verify_vsa(&envelope, &keys(), &[], &Default::default()).unwrap_err();
    assert!(matches!(err, VsaError::NoArtifacts));
    // An unevaluated Build track meets no level requirement.
    let envelope =
        resigned(|v| v["predicate"]["verifiedLevels"] = json!([BUILD_LEVEL_UNEVALUATED]));
    let err = verify_vsa(
        &envelope,
        &keys(),
        &[artifact()],
        &VsaRequirements {
            build_level: Some(SlsaBuildLevel::L0),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, VsaError::Level { .. }), "{err}");
}

#[test]
fn strict_parsing() {
    let body = |edit: fn(&mut Value)| {
        let envelope = signed(VsaOutcome::Passed(SlsaBuildLevel::L3));
        let mut v: Value = serde_json::from_slice(&envelope.payload_bytes().unwrap()).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    // Extension fields named by URIs are ignored, as the spec says.
    let ok = body(|v| {
        v["predicate"]["https://acme.example/ticket"] = json!(42);
        v["predicate"]["verifier"]["https://acme.example/region"] = json!("eu");
    });
    assert!(VsaStatement::from_json(&ok).is_ok());
    let bad: [fn(&mut Value); 12] = [
        |v| v["predicate"]["surprise"] = json!(1),
        |v| v["predicate"]["verifier"]["name"] = json!("x"),
        |v| v["predicate"]["verificationResult"] = json!("MAYBE"),
        |v| v["predicate"]["verifiedLevels"] = json!([]),
        |v| v["predicate"]["verifiedLevels"] = json!(["SLSA_BUILD_LEVEL_3", "SLSA_BUILD_LEVEL_2"]),
        |v| v["predicate"]["verifiedLevels"] = json!(["SLSA_BUILD_LEVEL_4"]),
        |v| v["predicate"]["verifiedLevels"] = json!(["FAILED"]),
        |v| v["predicate"]["timeVerified"] = json!("2023-11-14 22:13:20"),
        |v| v["predicate"]["slsaVersion"] = json!("1"),
        |v| v["predicate"]["policy"] = json!({"digest": {"sha256": "ab"}}),
        |v| v["predicate"]["inputAttestations"] = json!([{"name": "p.intoto.jsonl"}]),
        |v| v["subject"] = json!([]),
    ];
    for (i, edit) in bad.into_iter().enumerate() {
        assert!(VsaStatement::from_json(&body(edit)).is_err(), "case {i}");
    }
    // Duplicate keys: two readers could see two different results.
    let text = String::from_utf8(body(|_| {})).unwrap().replace(
        r#""verificationResult":"PASSED""#,
        r#""verificationResult":"FAILED","verificationResult":"PASSED""#,
    );
    assert!(VsaStatement::from_json(text.as_bytes()).is_err());
    assert!(VsaStatement::from_json(b"not json").is_err());
    // dependencyLevels, which airlock never writes, parses when others do.
    let with_deps = body(|v| v["predicate"]["dependencyLevels"] = json!({"SLSA_BUILD_LEVEL_3": 2}));
    let parsed = VsaStatement::from_json(&with_deps).unwrap();
    assert_eq!(
        parsed.predicate.dependency_levels,
        Some(BTreeMap::from([("SLSA_BUILD_LEVEL_3".to_owned(), 2)]))
    );
}

#[test]
fn builder_refuses_what_the_parser_would() {
    let no_subject = VsaBuilder::new(
        VERIFIER,
        "r",
        policy_descriptor(&policy(), &keys()),
        clock(),
    );
    assert!(matches!(
        no_subject.build(VsaOutcome::Failed),
        Err(VsaError::Statement(StatementError::NoSubject))
    ));
    let empty_id = VsaBuilder::new("", "r", policy_descriptor(&policy(), &keys()), clock())
        .subject(ResourceDescriptor::sha256("app", &artifact().1));
    assert!(matches!(
        empty_id.build(VsaOutcome::Failed),
        Err(VsaError::EmptyField("verifier.id"))
    ));
    let before_epoch = VsaBuilder::new(
        VERIFIER,
        "r",
        policy_descriptor(&policy(), &keys()),
        UNIX_EPOCH - Duration::from_secs(1),
    )
    .subject(ResourceDescriptor::sha256("app", &artifact().1));
    assert!(matches!(
        before_epoch.build(VsaOutcome::Failed),
        Err(VsaError::TimeVerified(_))
    ));
}

#[test]
fn level_rule() {
    for hosted in [
        HOSTED,
        "http://127.0.0.1:7070/builders/untrusted-pr",
        "https://ci.example/airlock/builders/trusted",
    ] {
        assert!(is_hosted_builder_id(hosted), "{hosted}");
    }
    for not_hosted in [
        "https://localhost/builders/local/trusted",
        "https://ci.example/builders/local/release",
        "https://ci.example/builders/local",
        "https://ci.example/builders/",
        "https://ci.example/builders/Release",
        "https://ci.example/builders/release?x=1",
        "https://ci.example/runners/release",
        "https:///builders/release",
        "ftp://ci.example/builders/release",
        "ci.example/builders/release",
        "",
    ] {
        assert!(!is_hosted_builder_id(not_hosted), "{not_hosted}");
    }
}

#[test]
fn level_of_a_verification_needs_a_pinned_hosted_builder() {
    use crate::{KeyAlgorithm, sign_statement, verify_provenance};
    let provenance_key = SigningKey::generate_with(KeyAlgorithm::Ed25519).unwrap();
    let statement_for = |builder_id: &str| {
        let json = format!(
            concat!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"app","digest":{{"sha256":"{}"}}}}],"#,
                r#""predicateType":"https://slsa.dev/provenance/v1","predicate":{{"buildDefinition":{{"#,
                r#""buildType":"https://airlock.dev/build-types/job/v1","externalParameters":{{"job":{{}}}}}},"#,
                r#""runDetails":{{"builder":{{"id":"{}"}},"metadata":{{"invocationId":"i","#,
                r#""startedOn":"2024-05-01T12:00:00Z","finishedOn":"2024-05-01T12:00:01Z"}}}}}}}}"#
            ),
            artifact().1,
            builder_id
        );
        Statement::from_json(json.as_bytes()).unwrap()
    };
    let level = |builder_id: &str, policy: &Policy| {
        let (envelope, _) = sign_statement(&statement_for(builder_id), &provenance_key).unwrap();
        let result = verify_provenance(
            &envelope,
            &[provenance_key.verifying_key().clone()],
            &[artifact()],
            policy,
        );
        VsaOutcome::of(&result, policy)
    };
    let pinned = |id: &str| Policy {
        builder_id: Some(id.to_owned()),
        ..Policy::default()
    };
    assert_eq!(
        level(HOSTED, &pinned(HOSTED)),
        VsaOutcome::Passed(SlsaBuildLevel::L3)
    );
    // Not pinned: the trusted key could be anyone's, so the id proves nothing.
    assert_eq!(
        level(HOSTED, &Policy::default()),
        VsaOutcome::Passed(SlsaBuildLevel::L1)
    );
    let local = "https://localhost/builders/local/trusted";
    assert_eq!(
        level(local, &pinned(local)),
        VsaOutcome::Passed(SlsaBuildLevel::L1)
    );
    assert_eq!(level(local, &pinned(HOSTED)), VsaOutcome::Failed);
}

#[test]
fn default_resource_uri_is_a_purl() {
    let d = Sha256Digest::of(b"x");
    assert_eq!(
        default_resource_uri("hello", &d),
        format!("pkg:generic/hello?checksum=sha256:{d}")
    );
    assert_eq!(
        default_resource_uri("my app/v1.0+b?#é", &d),
        format!("pkg:generic/my%20app%2Fv1.0%2Bb%3F%23%C3%A9?checksum=sha256:{d}")
    );
}

#[test]
fn build_levels_parse() {
    for level in SlsaBuildLevel::ALL {
        assert_eq!(level.as_str().parse::<SlsaBuildLevel>().unwrap(), level);
    }
    assert!("SLSA_BUILD_LEVEL_4".parse::<SlsaBuildLevel>().is_err());
    assert!(SlsaBuildLevel::L3 > SlsaBuildLevel::L2);
}
