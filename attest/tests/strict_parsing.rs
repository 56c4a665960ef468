//! Strict parsers and byte-stable serialization.

mod common;

use airlock_attest::{
    BUNDLE_MEDIA_TYPE_V03, Bundle, BundleError, Envelope, ProvenanceError, SigningKey, Statement,
    StatementError, sign_statement,
};
use common::{statement_for, statement_value};
use serde_json::{Value, json};

const ARTIFACT: &[u8] = b"artifact";

fn parse(value: &Value) -> Result<Statement, StatementError> {
    Statement::from_json(&serde_json::to_vec(value).expect("value serializes"))
}

#[test]
fn fixed_statement_serializes_to_fixed_bytes() {
    let expected = concat!(
        r#"{"_type":"https://in-toto.io/Statement/v1","#,
        r#""subject":[{"name":"out/app","digest":{"sha256":"#,
        r#""c7c5c1d70c5dec4416ab6158afd0b223ef40c29b1dc1f97ed9428b94d4cadb1c"}}],"#,
        r#""predicateType":"https://slsa.dev/provenance/v1","#,
        r#""predicate":{"buildDefinition":{"#,
        r#""buildType":"https://airlock.example/buildtypes/job/v1","#,
        r#""externalParameters":{"inputs":[],"source":{"ref":"refs/heads/main","#,
        r#""uri":"git+https://git.example/org/repo"},"steps":[{"run":"make"}]},"#,
        r#""internalParameters":{"profile":"default"},"#,
        r#""resolvedDependencies":[{"uri":"git+https://git.example/org/repo","#,
        r#""digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"}}]},"#,
        r#""runDetails":{"builder":{"id":"https://airlock.example/builders/release","#,
        r#""version":{"airlock":"0.1.0"}},"#,
        r#""metadata":{"invocationId":"job-42","startedOn":"2024-05-01T12:00:00Z","#,
        r#""finishedOn":"2024-05-01T12:01:30Z"},"#,
        r#""byproducts":[{"name":"build.log","digest":{"sha256":"#,
        r#""836ff184e7b41b1e13cb5fd89fa1de98dbbab99e9d2918913ff43b86a5c7c213"}}]}}}"#,
    );
    let got = String::from_utf8(statement_for(ARTIFACT).to_json().unwrap()).unwrap();
    assert_eq!(got, expected);
    // The digests above are sha256("artifact") and sha256("log"), checked with sha256sum.
    assert_eq!(
        Statement::from_json(expected.as_bytes()).unwrap(),
        statement_for(ARTIFACT)
    );
}

#[test]
fn rejects_statement_v0_1() {
    let mut v = statement_value(ARTIFACT);
    v["_type"] = json!("https://in-toto.io/Statement/v0.1");
    let err = parse(&v).unwrap_err();
    assert!(
        matches!(err, StatementError::UnsupportedStatementType { ref found } if found.ends_with("v0.1")),
        "{err}"
    );
}

#[test]
fn rejects_provenance_v0_2() {
    let mut v = statement_value(ARTIFACT);
    v["predicateType"] = json!("https://slsa.dev/provenance/v0.2");
    let err = parse(&v).unwrap_err();
    assert!(
        matches!(err, StatementError::UnsupportedPredicateType { .. }),
        "{err}"
    );
}

#[test]
fn dispatch_happens_before_schema_checks() {
    // A v0.2 predicate body under a v0.2 predicateType reports the version, not a field error.
    let v = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "subject": [],
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "predicate": {"builder": {"id": "x"}, "buildType": "y", "invocation": {}},
    });
    assert!(matches!(
        parse(&v),
        Err(StatementError::UnsupportedStatementType { .. })
    ));
    let mut v = statement_value(ARTIFACT);
    v.as_object_mut().unwrap().remove("predicateType");
    assert!(matches!(
        parse(&v),
        Err(StatementError::MissingField("predicateType"))
    ));
}

#[test]
fn rejects_unknown_standard_fields_everywhere() {
    let paths: &[&[&str]] = &[
        &[],
        &["predicate"],
        &["predicate", "buildDefinition"],
        &["predicate", "runDetails"],
        &["predicate", "runDetails", "builder"],
        &["predicate", "runDetails", "metadata"],
    ];
    for path in paths {
        let mut v = statement_value(ARTIFACT);
        let mut target = &mut v;
        for key in *path {
            target = &mut target[*key];
        }
        target["bogusField"] = json!(1);
        let err = parse(&v).unwrap_err();
        assert!(matches!(err, StatementError::Json(_)), "{path:?}: {err}");
        assert!(err.to_string().contains("bogusField"), "{err}");
    }
    let mut v = statement_value(ARTIFACT);
    v["subject"][0]["bogusField"] = json!(1);
    assert!(matches!(parse(&v), Err(StatementError::Json(_))));
    let mut v = statement_value(ARTIFACT);
    v["predicate"]["runDetails"]["byproducts"][0]["bogusField"] = json!(1);
    assert!(matches!(parse(&v), Err(StatementError::Json(_))));
}

#[test]
fn ignores_vendor_extension_fields() {
    // SLSA: `<vendor>_<field>` extensions SHOULD be ignored by consumers.
    let mut v = statement_value(ARTIFACT);
    v["acme_note"] = json!("x");
    v["predicate"]["buildDefinition"]["acme_cache"] = json!({"hit": true});
    v["predicate"]["runDetails"]["builder"]["acme_region"] = json!("eu");
    v["subject"][0]["acme_size"] = json!(3);
    assert_eq!(parse(&v).unwrap(), statement_for(ARTIFACT));
    // ...but inside free-form externalParameters nothing is dropped.
    let mut v = statement_value(ARTIFACT);
    v["predicate"]["buildDefinition"]["externalParameters"]["acme_flag"] = json!(true);
    let s = parse(&v).unwrap();
    assert!(
        s.predicate
            .build_definition
            .external_parameters
            .get("acme_flag")
            .is_some()
    );
}

#[test]
fn rejects_duplicate_keys() {
    let json = String::from_utf8(statement_for(ARTIFACT).to_json().unwrap()).unwrap();
    let dup = json.replacen(
        r#""id":"https://airlock.example/builders/release""#,
        r#""id":"https://airlock.example/builders/release","id":"https://evil.example/b""#,
        1,
    );
    assert_ne!(dup, json);
    assert!(matches!(
        Statement::from_json(dup.as_bytes()),
        Err(StatementError::Json(_))
    ));
}

#[test]
fn rejects_bad_digests() {
    let good = statement_value(ARTIFACT)["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in [
        good.to_uppercase(),
        good[..63].to_owned(),
        format!("{good}0"),
        String::new(),
    ] {
        let mut v = statement_value(ARTIFACT);
        v["subject"][0]["digest"]["sha256"] = json!(bad);
        let err = parse(&v).unwrap_err();
        assert!(
            matches!(err, StatementError::Subject { index: 0, .. }),
            "{bad}: {err}"
        );
    }
    let mut v = statement_value(ARTIFACT);
    v["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] =
        json!("0123456789ABCDEF0123456789abcdef01234567");
    assert!(matches!(
        parse(&v),
        Err(StatementError::Provenance(ProvenanceError::Descriptor {
            index: 0,
            ..
        }))
    ));
    let mut v = statement_value(ARTIFACT);
    v["subject"][0]["digest"] = json!({});
    assert!(parse(&v).is_err());
}

#[test]
fn rejects_invalid_provenance_values() {
    let cases: &[(&[&str], Value)] = &[
        (
            &["predicate", "buildDefinition", "externalParameters"],
            json!({}),
        ),
        (
            &["predicate", "buildDefinition", "externalParameters"],
            json!(["x"]),
        ),
        (&["predicate", "buildDefinition", "buildType"], json!("")),
        (&["predicate", "runDetails", "builder", "id"], json!("")),
        (
            &["predicate", "runDetails", "metadata", "startedOn"],
            json!("2024-05-01 12:00:00"),
        ),
        (
            &["predicate", "runDetails", "metadata", "finishedOn"],
            json!("2024-05-01T12:00:00+02:00"),
        ),
        (&["subject"], json!([])),
    ];
    for (path, value) in cases {
        let mut v = statement_value(ARTIFACT);
        let mut target = &mut v;
        for key in *path {
            target = &mut target[*key];
        }
        *target = value.clone();
        assert!(parse(&v).is_err(), "{path:?} = {value}");
    }
}

#[test]
fn bundle_strict_parsing() {
    let key = SigningKey::generate().unwrap();
    let (env, _) = sign_statement(&statement_for(ARTIFACT), &key).unwrap();
    let bundle = Bundle::from_envelope(&env).unwrap();
    let text = bundle.to_json().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["mediaType"], BUNDLE_MEDIA_TYPE_V03);
    assert_eq!(v["verificationMaterial"]["publicKey"]["hint"], key.keyid());
    assert_eq!(v["verificationMaterial"]["tlogEntries"], json!([]));
    assert!(
        v["verificationMaterial"]
            .get("timestampVerificationData")
            .is_none()
    );
    assert_eq!(Bundle::from_json(text.as_bytes()).unwrap(), bundle);

    let reparse = |v: &Value| Bundle::from_json(&serde_json::to_vec(v).unwrap());
    let mut bad = v.clone();
    bad["mediaType"] = json!("application/vnd.dev.sigstore.bundle+json;version=0.2");
    assert!(matches!(
        reparse(&bad),
        Err(BundleError::UnsupportedMediaType { .. })
    ));
    let mut bad = v.clone();
    bad["verificationMaterial"] = json!({"certificate": {"rawBytes": "AA=="}, "tlogEntries": []});
    assert!(matches!(
        reparse(&bad),
        Err(BundleError::UnsupportedVerificationMaterial { .. })
    ));
    let mut bad = v.clone();
    bad["verificationMaterial"]["publicKey"]["hint"] = json!("someone-else");
    assert!(matches!(
        reparse(&bad),
        Err(BundleError::HintMismatch { .. })
    ));
    let mut bad = v.clone();
    bad["extra"] = json!(1);
    assert!(matches!(reparse(&bad), Err(BundleError::Json(_))));
    let mut bad = v.clone();
    bad["dsseEnvelope"]["signatures"] = json!([]);
    assert!(reparse(&bad).is_err());

    // Exactly one signature is required to build a bundle.
    let mut two = env.clone();
    two.signatures.push(env.signatures[0].clone());
    assert!(matches!(
        Bundle::from_envelope(&two),
        Err(BundleError::SignatureCount { found: 2 })
    ));
    let mut anonymous: Envelope = env.clone();
    anonymous.signatures[0].keyid.clear();
    assert!(matches!(
        Bundle::from_envelope(&anonymous),
        Err(BundleError::MissingKeyid)
    ));
}
