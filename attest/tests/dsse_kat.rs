//! The DSSE specification's known-answer vector (protocol.md "Test Vectors"), with the
//! signature in the ASN.1 DER form that DSSE verifiers expect for ECDSA.

use airlock_attest::{Envelope, EnvelopeSignature, SigningKey, VerifyError, pae, verify_envelope};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const PAYLOAD_TYPE: &str = "http://example.com/HelloWorld";
const BODY: &[u8] = b"hello world";
const PAE: &[u8] = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world";
const D: &str = "97358161215184420915383655311931858321456579547487070936769975997791359926199";
// The public point the spec gives for d (protocol.md lists X and Y next to d).
const X: &str = "46950820868899156662930047687818585632848591499744589407958293238635476079160";
const Y: &str = "5640078356564379163099075877009565129882514886557779369047442380624545832820";
const SIG_DER_B64: &str = "MEQCIANyarEBrVbCdjtsaqyOSHJ14qeRk6CdxfhZ2fjvPEo7AiBR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==";

/// Decimal string to 32 big-endian bytes (schoolbook multiply-by-10).
fn decimal_to_be32(decimal: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for digit in decimal.bytes() {
        let mut carry = u32::from(digit - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "overflow");
    }
    out
}

fn kat_key() -> SigningKey {
    SigningKey::from_p256_scalar(&decimal_to_be32(D)).expect("spec scalar is valid")
}

fn kat_envelope(sig_b64: &str, body: &[u8]) -> Envelope {
    let mut env = Envelope::unsigned(PAYLOAD_TYPE, body);
    env.signatures.push(EnvelopeSignature {
        keyid: String::new(),
        sig: sig_b64.to_owned(),
    });
    env
}

#[test]
fn pae_bytes_exact() {
    assert_eq!(pae(PAYLOAD_TYPE, BODY), PAE);
}

#[test]
fn private_scalar_reproduces_public_key() {
    let key = kat_key();
    let der = key.verifying_key().to_spki_der().unwrap();
    // An uncompressed P-256 SPKI ends with 0x04 || X || Y (32 bytes each).
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 0x04);
    assert_eq!(point[1..33], decimal_to_be32(X));
    assert_eq!(point[33..], decimal_to_be32(Y));
}

#[test]
fn spec_signature_verifies_over_pae() {
    let key = kat_key();
    let sig = STANDARD.decode(SIG_DER_B64).unwrap();
    key.verifying_key().verify(PAE, &sig).unwrap();

    // Through the envelope API: no keyid, so every trusted key is tried.
    let verified = verify_envelope(
        &kat_envelope(SIG_DER_B64, BODY),
        &[key.verifying_key().clone()],
    )
    .unwrap();
    assert_eq!(verified.payload, BODY);
    assert_eq!(verified.keyid, key.keyid());
}

#[test]
fn deterministic_signing_reproduces_spec_signature() {
    // The spec's vector was made with RFC 6979 nonces, as airlock signs, so the bytes match.
    let sig = kat_key().sign(PAE).unwrap();
    assert_eq!(STANDARD.encode(sig), SIG_DER_B64);
}

#[test]
fn flipped_bits_are_rejected() {
    let vk = kat_key().verifying_key().clone();
    let sig = STANDARD.decode(SIG_DER_B64).unwrap();

    let mut payload = BODY.to_vec();
    payload[0] ^= 0x01;
    assert!(matches!(
        verify_envelope(
            &kat_envelope(SIG_DER_B64, &payload),
            std::slice::from_ref(&vk)
        ),
        Err(VerifyError::BadSignature { .. })
    ));

    // A flip inside r or s (past the DER header) must fail verification too.
    for index in [10, sig.len() - 1] {
        let mut bad = sig.clone();
        bad[index] ^= 0x01;
        assert!(vk.verify(PAE, &bad).is_err(), "bit flip at {index}");
        assert!(matches!(
            verify_envelope(
                &kat_envelope(&STANDARD.encode(&bad), BODY),
                std::slice::from_ref(&vk)
            ),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    // The raw r||s form (as printed in the spec) is not accepted: DSSE ECDSA sigs are DER.
    let raw =
        "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==";
    assert!(vk.verify(PAE, &STANDARD.decode(raw).unwrap()).is_err());
}
