//! Property-based fuzzing (proptest, run by `cargo test`) of everything that reads untrusted
//! attestation bytes: the DSSE envelope, the in-toto statement, the verification summary, the
//! Sigstore bundle, and the whole verification path `airlock verify` runs. Properties:
//!
//! - no input makes a parser or the verifier panic;
//! - strictness holds: anything accepted after a mutation carries exactly the bytes that were
//!   signed (a mutation can change the encoding, never the meaning);
//! - an unknown field at any strict level is refused, an extension field (`vendor_x`) is not;
//! - a verification never succeeds for a payload that the trusted key did not sign.
//!
//! Set `PROPTEST_CASES` for a longer run (default 256 cases per property).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use airlock_attest::{
    Bundle, Envelope, KeyAlgorithm, Policy, Sha256Digest, SigningKey, SlsaBuildLevel, Statement,
    VsaBuilder, VsaOutcome, VsaRequirements, VsaStatement, verify_envelope, verify_provenance,
    verify_vsa,
};
use common::{statement_for, statement_value};
use proptest::prelude::*;
use serde_json::Value;

const ARTIFACT: &[u8] = b"fuzzed artifact";

fn keys() -> &'static [SigningKey; 2] {
    static KEYS: std::sync::OnceLock<[SigningKey; 2]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        [
            SigningKey::from_p256_scalar(&[7; 32]).expect("valid scalar"),
            SigningKey::from_ed25519_seed(&[7; 32]),
        ]
    })
}

/// A signed envelope line and its bundle, per key.
fn signed(key: &SigningKey) -> (Envelope, Vec<u8>) {
    airlock_attest::sign_statement(&statement_for(ARTIFACT), key).expect("sign")
}

/// A signed PASSED verification summary of the artifact, per key.
fn signed_vsa(key: &SigningKey) -> (Envelope, Vec<u8>) {
    let (name, digest) = artifacts().remove(0);
    let policy = airlock_attest::policy_descriptor(&Policy::default(), &[]);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let statement = VsaBuilder::new("https://verifier.example", "pkg:generic/app", policy, time)
        .subject(airlock_attest::ResourceDescriptor::sha256(name, &digest))
        .input_attestation_file("app.intoto.jsonl", b"{}")
        .build(VsaOutcome::Passed(SlsaBuildLevel::L3))
        .expect("build");
    airlock_attest::sign_vsa(&statement, key).expect("sign")
}

fn artifacts() -> Vec<(String, Sha256Digest)> {
    vec![("app".to_owned(), Sha256Digest::of(ARTIFACT))]
}

/// One edit of a byte string: overwrite, insert or delete at an index.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
    ]
}

fn apply(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for e in edits {
        if out.is_empty() {
            break;
        }
        match *e {
            Edit::Set(i, b) => {
                let i = i % out.len();
                out[i] = b;
            }
            Edit::Insert(i, b) => {
                let i = i % (out.len() + 1);
                out.insert(i, b);
            }
            Edit::Delete(i) => {
                let i = i % out.len();
                out.remove(i);
            }
        }
    }
    out
}

/// What `airlock verify` does with a provenance file: dispatch on `mediaType`, parse strictly,
/// verify with the trusted keys, check the artifact and the external-parameter allow list.
fn verify_file(bytes: &[u8], trusted: &[airlock_attest::VerifyingKey]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let whole: Option<Value> = serde_json::from_str(text).ok();
    let envelope = match whole {
        Some(v) if v.get("mediaType").is_some() => Bundle::from_json(bytes).ok()?.into_envelope(),
        _ => Envelope::from_json(text.lines().next()?.as_bytes()).ok()?,
    };
    let policy = Policy {
        allowed_external_parameters: Some(
            ["inputs", "source", "steps"].map(str::to_owned).to_vec(),
        ),
        ..Policy::default()
    };
    let report = verify_provenance(&envelope, trusted, &artifacts(), &policy).ok()?;
    serde_json::to_vec(&report.statement).ok()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_any_parser(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::from_json(&bytes);
        let _ = Statement::from_json(&bytes);
        let _ = Bundle::from_json(&bytes);
        let _ = airlock_attest::VsaStatement::from_json(&bytes);
        let trusted: Vec<_> = keys().iter().map(|k| k.verifying_key().clone()).collect();
        prop_assert!(verify_file(&bytes, &trusted).is_none());
    }

    #[test]
    fn arbitrary_strings_in_envelope_fields_never_panic(
        payload_type in any::<String>(),
        payload in any::<String>(),
        keyid in any::<String>(),
        sig in any::<String>(),
    ) {
        let envelope = serde_json::json!({
            "payloadType": payload_type,
            "payload": payload,
            "signatures": [{"keyid": keyid, "sig": sig}],
        });
        let bytes = serde_json::to_vec(&envelope).unwrap();
        if let Ok(env) = Envelope::from_json(&bytes) {
            let trusted: Vec<_> = keys().iter().map(|k| k.verifying_key().clone()).collect();
            prop_assert!(verify_envelope(&env, &trusted).is_err(), "random signature verified");
        }
    }

    /// Mutations of a genuinely signed `.intoto.jsonl` line or bundle: whatever still verifies
    /// must carry exactly the signed statement.
    #[test]
    fn mutated_signed_files_verify_only_with_the_signed_meaning(
        which in 0usize..2,
        as_bundle in any::<bool>(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let key = &keys()[which];
        let (envelope, body) = signed(key);
        let original = if as_bundle {
            Bundle::from_envelope(&envelope).unwrap().to_json().unwrap().into_bytes()
        } else {
            envelope.to_json_line().unwrap().into_bytes()
        };
        let trusted = [key.verifying_key().clone()];
        let expected = verify_file(&original, &trusted).expect("the unmutated file verifies");
        prop_assert_eq!(&Statement::from_json(&body).unwrap(), &statement_for(ARTIFACT));
        let mutated = apply(&original, &edits);
        if let Some(statement) = verify_file(&mutated, &trusted) {
            prop_assert_eq!(statement, expected.clone());
            // And the envelope inside still holds the signed bytes.
            let text = String::from_utf8(mutated).unwrap();
            let env = if as_bundle {
                Bundle::from_json(text.as_bytes()).unwrap().into_envelope()
            } else {
                Envelope::from_json(text.lines().next().unwrap().as_bytes()).unwrap()
            };
            prop_assert_eq!(env.payload_bytes().unwrap(), body);
        }
    }

    /// Mutations of a signed verification summary line: whatever `verify_vsa` still accepts
    /// carries exactly the signed summary.
    #[test]
    fn mutated_vsa_lines_verify_only_with_the_signed_meaning(
        which in 0usize..2,
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let key = &keys()[which];
        let (envelope, body) = signed_vsa(key);
        let trusted = [key.verifying_key().clone()];
        let mutated = apply(envelope.to_json_line().unwrap().as_bytes(), &edits);
        let parsed = std::str::from_utf8(&mutated)
            .ok()
            .and_then(|text| Envelope::from_json(text.trim_end().as_bytes()).ok());
        if let Some(env) = parsed {
            let required = VsaRequirements::default();
            if let Ok(report) = verify_vsa(&env, &trusted, &artifacts(), &required) {
                prop_assert_eq!(report.statement, VsaStatement::from_json(&body).unwrap());
                prop_assert_eq!(env.payload_bytes().unwrap(), body);
            }
        }
    }

    /// A signature never verifies a payload with any byte changed, for either algorithm.
    #[test]
    fn a_changed_payload_never_verifies(
        which in 0usize..2,
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let key = &keys()[which];
        let (envelope, body) = signed(key);
        let changed = apply(&body, &edits);
        prop_assume!(changed != body);
        let mut forged = envelope.clone();
        forged.payload = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &changed);
        prop_assert!(verify_envelope(&forged, &[key.verifying_key().clone()]).is_err());
    }

    /// An unknown field anywhere in a strict object is refused; an extension field
    /// (`<vendor>_<field>`) in a spec-defined object is dropped, not refused.
    #[test]
    fn unknown_fields_are_refused_extension_fields_ignored(
        path in 0usize..6,
        name in "[a-z]{1,12}",
        extension in any::<bool>(),
    ) {
        let mut value = statement_value(ARTIFACT);
        let target = match path {
            0 => &mut value,
            1 => &mut value["predicate"],
            2 => &mut value["predicate"]["buildDefinition"],
            3 => &mut value["predicate"]["runDetails"],
            4 => &mut value["predicate"]["runDetails"]["builder"],
            _ => &mut value["subject"][0],
        };
        let key = if extension { format!("acme_{name}") } else { name.clone() };
        let known = target.get(&key).is_some();
        prop_assume!(!known);
        target.as_object_mut().unwrap().insert(key, Value::from(1));
        let bytes = serde_json::to_vec(&value).unwrap();
        let parsed = Statement::from_json(&bytes);
        if extension {
            prop_assert_eq!(parsed.unwrap(), statement_for(ARTIFACT));
        } else {
            prop_assert!(parsed.is_err(), "unknown field {} accepted at level {}", name, path);
        }
    }

    /// Subject digests: only 64 lowercase hex digits pass as sha256.
    #[test]
    fn subject_digests_must_be_lowercase_hex_of_the_right_length(digest in "[0-9a-fA-Fg ]{0,70}") {
        let mut value = statement_value(ARTIFACT);
        value["subject"][0]["digest"]["sha256"] = Value::from(digest.clone());
        let ok = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let parsed = Statement::from_json(&serde_json::to_vec(&value).unwrap());
        prop_assert_eq!(parsed.is_ok(), ok, "{}", digest);
    }
}

#[test]
fn both_algorithms_sign_verifiable_envelopes() {
    for key in keys() {
        let (envelope, _) = signed(key);
        let sig = envelope.signatures[0].sig_bytes().unwrap();
        match key.algorithm() {
            KeyAlgorithm::Ed25519 => assert_eq!(sig.len(), 64, "raw R||S"),
            _ => assert_eq!(sig[0], 0x30, "ASN.1 DER SEQUENCE"),
        }
        verify_envelope(&envelope, &[key.verifying_key().clone()]).unwrap();
    }
}
