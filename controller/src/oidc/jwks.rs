//! The JSON Web Key Set: the public token keys relying parties verify build tokens with.
//!
//! Each key is `{"kty":"EC","crv":"P-256","x","y","kid","alg":"ES256","use":"sig"}` with `x`
//! and `y` the unpadded base64url of exactly 32 big-endian bytes each (RFC 7518 section 6.2.1.2
//! requires the full coordinate length, left-padded with zeros; a SEC1 uncompressed point
//! already has that fixed width).

use airlock_attest::{KeyError, VerifyingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

/// Length of one P-256 coordinate in bytes.
const COORDINATE_LEN: usize = 32;

/// One public key in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// Key type: `EC`.
    pub kty: String,
    /// Curve: `P-256`.
    pub crv: String,
    /// The x coordinate, base64url without padding, 32 bytes.
    pub x: String,
    /// The y coordinate, base64url without padding, 32 bytes.
    pub y: String,
    /// The key id, as in token headers.
    pub kid: String,
    /// The only algorithm this key is used with: `ES256`.
    pub alg: String,
    /// Public key use: `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

impl Jwk {
    /// The JWK of a P-256 public key, with its airlock keyid as `kid`.
    pub fn for_key(key: &VerifyingKey) -> Result<Self, KeyError> {
        let der = key.to_spki_der()?;
        let p256_key =
            p256::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(KeyError::Spki)?;
        let point = p256_key.to_sec1_point(false);
        let bytes = point.as_bytes();
        // 0x04 || x || y, each coordinate exactly COORDINATE_LEN bytes.
        let (x, y) = match bytes.split_first() {
            Some((0x04, xy)) if xy.len() == 2 * COORDINATE_LEN => xy.split_at(COORDINATE_LEN),
            _ => {
                return Err(KeyError::UnsupportedAlgorithm {
                    oid: "a non-uncompressed or non-P-256 point".to_owned(),
                });
            }
        };
        Ok(Self {
            kty: "EC".to_owned(),
            crv: "P-256".to_owned(),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
            kid: key.keyid().to_owned(),
            alg: "ES256".to_owned(),
            key_use: "sig".to_owned(),
        })
    }
}

/// A JWKS document: `{"keys": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwkSet {
    /// The published keys, oldest first.
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_attest::SigningKey;

    fn decode(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn coordinates_are_32_bytes_unpadded_base64url_and_match_the_key() {
        let key = SigningKey::generate().unwrap();
        let jwk = Jwk::for_key(key.verifying_key()).unwrap();
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_str()), ("EC", "P-256"));
        assert_eq!((jwk.alg.as_str(), jwk.key_use.as_str()), ("ES256", "sig"));
        assert_eq!(jwk.kid, key.keyid());
        assert!(!jwk.x.contains('=') && !jwk.y.contains('='));
        let (x, y) = (decode(&jwk.x), decode(&jwk.y));
        assert_eq!((x.len(), y.len()), (32, 32));
        // The SPKI DER of a P-256 key ends with the uncompressed point 04 || x || y.
        let der = key.verifying_key().to_spki_der().unwrap();
        assert_eq!(&der[der.len() - 64..], [x, y].concat().as_slice());
    }

    #[test]
    fn small_coordinates_keep_leading_zero_bytes() {
        // Scalars until one gives a public point whose x or y starts with a zero byte.
        let found = (1u16..=4000).find_map(|i| {
            let mut scalar = [0u8; 32];
            scalar[30..].copy_from_slice(&i.to_be_bytes());
            let key = SigningKey::from_p256_scalar(&scalar).unwrap();
            let jwk = Jwk::for_key(key.verifying_key()).unwrap();
            let (x, y) = (decode(&jwk.x), decode(&jwk.y));
            (x[0] == 0 || y[0] == 0).then_some((x, y))
        });
        let (x, y) = found.expect("some small multiple of G has a coordinate below 2^248");
        assert_eq!((x.len(), y.len()), (32, 32));
    }

    #[test]
    fn serialises_with_the_use_member() {
        let key = SigningKey::generate().unwrap();
        let json = serde_json::to_value(Jwk::for_key(key.verifying_key()).unwrap()).unwrap();
        assert_eq!(json["use"], "sig");
        assert!(json.get("key_use").is_none());
        assert!(json.get("d").is_none(), "never the private scalar");
    }
}
