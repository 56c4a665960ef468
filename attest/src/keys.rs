//! Signing and verifying keys, their PEM files, and airlock's keyid convention.
//!
//! Keys wrap a private enum of algorithms (ECDSA P-256 and Ed25519), chosen by the algorithm
//! OID in the PEM, never by trying each decoder. Private keys are PKCS#8 PEM, public keys SPKI
//! PEM: the formats openssl, cosign, securesystemslib and Sigstore clients all read.

use std::fmt;
use std::io;
use std::path::PathBuf;

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{self, DerSignature};
use p256::elliptic_curve::Generate;
use p256::pkcs8::der::pem;
use p256::pkcs8::spki::SubjectPublicKeyInfoRef;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::{LineEnding, PrivateKeyInfoRef};

pub use p256::elliptic_curve::zeroize::Zeroizing;

use ed25519_dalek::pkcs8::KeypairBytes;

use crate::digest::Sha256Digest;

/// PEM label of a PKCS#8 private key.
const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// PEM label of an SPKI public key.
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// Why a key could not be generated, encoded, decoded, written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random number generator failed.
    #[error("cannot generate a key: the system random number generator failed: {0}")]
    Random(#[source] getrandom::Error),
    /// A PKCS#8 private key could not be encoded or decoded.
    #[error("invalid PKCS#8 private key: {0}")]
    Pkcs8(#[source] p256::pkcs8::Error),
    /// An SPKI public key could not be encoded or decoded.
    #[error("invalid SPKI public key: {0}")]
    Spki(#[source] p256::pkcs8::spki::Error),
    /// The PEM armor is malformed.
    #[error("invalid PEM: {0}")]
    Pem(#[source] pem::Error),
    /// The PEM block has the wrong label (e.g. a public key where a private key was expected).
    #[error("expected a PEM block labelled \"{expected}\", found \"{found}\"")]
    PemLabel {
        /// Label required here.
        expected: &'static str,
        /// Label found.
        found: String,
    },
    /// The key's algorithm is not one airlock supports.
    #[error("unsupported key algorithm {oid}; airlock supports ECDSA P-256 and Ed25519 keys")]
    UnsupportedAlgorithm {
        /// Algorithm OID from the key.
        oid: String,
    },
    /// The bytes are not a valid private scalar for the curve (zero or not below the order).
    #[error("invalid private key scalar: {0}")]
    InvalidScalar(#[source] ecdsa::Error),
    /// An Ed25519 key in a PKCS#8 or SPKI document is malformed (bad length, a public key
    /// that does not match the private one, or a point that is not on the curve).
    #[error("invalid Ed25519 key: {0}")]
    Ed25519(#[source] ed25519_dalek::pkcs8::Error),
    /// An Ed25519 public key of small order: signatures under it can be forged by anyone.
    #[error("the Ed25519 public key is a small-order (weak) point; it cannot be trusted")]
    WeakEd25519Key,
    /// Signing failed inside the ECDSA implementation.
    #[error("signing failed: {0}")]
    Sign(#[source] ecdsa::Error),
    /// A key name would escape the target directory or is empty.
    #[error("invalid key name {name:?}: use a plain file name without '/'")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// Refusing to overwrite an existing key file.
    #[error("{} already exists; refusing to overwrite a key (move it away first)", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A private key file is accessible to group or others.
    #[error(
        "private key file {} has mode {mode:04o}, which lets group or others access it; \
         run `chmod 600 {}` (and consider the key compromised if others could read it)",
        path.display(), path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Reading or writing a key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A signature algorithm airlock can sign and verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256; signatures are ASN.1 DER.
    EcdsaP256Sha256,
    /// Ed25519 (RFC 8032, pure: the message is signed directly, no prehash); 64-byte signatures.
    Ed25519,
}

impl KeyAlgorithm {
    /// The name used on the command line and in documentation: `ecdsa-p256` or `ed25519`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The signature did not verify under this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct SignatureMismatch;

#[derive(Clone)]
enum SigningKeyInner {
    EcdsaP256(ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

#[derive(Clone, PartialEq, Eq)]
enum VerifyingKeyInner {
    EcdsaP256(ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A private key that signs attestations. Its `Debug` output shows only the keyid.
#[derive(Clone)]
pub struct SigningKey {
    inner: SigningKeyInner,
    verifying: VerifyingKey,
}

/// A public key that verifies attestations, with its keyid precomputed.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: VerifyingKeyInner,
    keyid: String,
}

impl SigningKey {
    /// A fresh ECDSA P-256 key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_with(KeyAlgorithm::EcdsaP256Sha256)
    }

    /// A fresh key of `algorithm` from the operating system's random number generator.
    pub fn generate_with(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        match algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => {
                let key = ecdsa::SigningKey::try_generate().map_err(KeyError::Random)?;
                Self::from_p256(key)
            }
            KeyAlgorithm::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut_slice()).map_err(KeyError::Random)?;
                Ok(Self::from_ed25519_seed(&seed))
            }
        }
    }

    /// An Ed25519 key from its 32-byte seed (RFC 8032 private key; test vectors, imports).
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let verifying = VerifyingKey::from_ed25519(key.verifying_key());
        Self {
            inner: SigningKeyInner::Ed25519(key),
            verifying,
        }
    }

    fn from_p256(key: ecdsa::SigningKey) -> Result<Self, KeyError> {
        let verifying = VerifyingKey::from_p256(*key.verifying_key())?;
        Ok(Self {
            inner: SigningKeyInner::EcdsaP256(key),
            verifying,
        })
    }

    /// An ECDSA P-256 key from its 32-byte big-endian private scalar (test vectors, imports).
    pub fn from_p256_scalar(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = ecdsa::SigningKey::from_slice(bytes).map_err(KeyError::InvalidScalar)?;
        Self::from_p256(key)
    }

    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, KeyError> {
        let (label, der) = pem::decode_vec(pem_text.as_bytes()).map_err(KeyError::Pem)?;
        // The DER holds the secret too, so it is wiped when dropped.
        let der = Zeroizing::new(der);
        if label != PRIVATE_KEY_LABEL {
            return Err(KeyError::PemLabel {
                expected: PRIVATE_KEY_LABEL,
                found: label.to_owned(),
            });
        }
        // Dispatch on the algorithm OID so another algorithm is a clear error (and, later,
        // another branch) rather than a confusing P-256 decoding failure.
        let info = PrivateKeyInfoRef::try_from(der.as_slice()).map_err(KeyError::Pkcs8)?;
        let oid = info.algorithm.oid;
        if oid == p256::elliptic_curve::ALGORITHM_OID {
            let key = ecdsa::SigningKey::from_pkcs8_der(&der).map_err(KeyError::Pkcs8)?;
            Self::from_p256(key)
        } else if oid == ed25519_dalek::pkcs8::ALGORITHM_OID {
            // Also checks an embedded public key (PKCS#8 v2) against the private one.
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der).map_err(KeyError::Ed25519)?;
            Ok(Self::from_ed25519_seed(&Zeroizing::new(key.to_bytes())))
        } else {
            Err(KeyError::UnsupportedAlgorithm {
                oid: oid.to_string(),
            })
        }
    }

    /// Encodes as PKCS#8 PEM; the returned string is wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        match &self.inner {
            SigningKeyInner::EcdsaP256(key) => {
                key.to_pkcs8_pem(LineEnding::LF).map_err(KeyError::Pkcs8)
            }
            SigningKeyInner::Ed25519(key) => {
                // PKCS#8 v1 (RFC 8410 section 7: the seed only), the form `openssl genpkey
                // -algorithm ed25519` writes and every reader accepts.
                let bytes = KeypairBytes {
                    secret_key: key.to_bytes(),
                    public_key: None,
                };
                let der = bytes.to_pkcs8_der().map_err(KeyError::Ed25519)?;
                der.to_pem(PRIVATE_KEY_LABEL, LineEnding::LF)
                    .map_err(|e| KeyError::Ed25519(e.into()))
            }
        }
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The keyid of the matching public key (see [`VerifyingKey::keyid`]).
    pub fn keyid(&self) -> &str {
        self.verifying.keyid()
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.verifying.algorithm()
    }

    /// Signs `message`. For ECDSA P-256: SHA-256 of `message`, deterministic nonce (RFC 6979,
    /// so no RNG is needed at signing time), signature encoded as ASN.1 DER, which DSSE
    /// verifiers such as securesystemslib and Sigstore clients require (not raw r||s).
    /// For Ed25519: pure Ed25519 over `message` itself (DSSE signs the PAE bytes directly),
    /// the 64-byte R||S signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            SigningKeyInner::EcdsaP256(key) => {
                let sig: DerSignature = key.try_sign(message).map_err(KeyError::Sign)?;
                Ok(sig.as_bytes().to_vec())
            }
            SigningKeyInner::Ed25519(key) => {
                let sig: ed25519_dalek::Signature = key.sign(message);
                Ok(sig.to_bytes().to_vec())
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("keyid", &self.keyid())
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    fn from_p256(key: ecdsa::VerifyingKey) -> Result<Self, KeyError> {
        let der = key.to_public_key_der().map_err(KeyError::Spki)?;
        Ok(Self {
            inner: VerifyingKeyInner::EcdsaP256(key),
            keyid: Sha256Digest::of(der.as_bytes()).hex(),
        })
    }

    fn from_ed25519(key: ed25519_dalek::VerifyingKey) -> Self {
        let der = ed25519_spki_der(&key);
        Self {
            inner: VerifyingKeyInner::Ed25519(key),
            keyid: Sha256Digest::of(&der).hex(),
        }
    }

    /// Parses an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem_text: &str) -> Result<Self, KeyError> {
        let (label, der) = pem::decode_vec(pem_text.as_bytes()).map_err(KeyError::Pem)?;
        if label != PUBLIC_KEY_LABEL {
            return Err(KeyError::PemLabel {
                expected: PUBLIC_KEY_LABEL,
                found: label.to_owned(),
            });
        }
        let info = SubjectPublicKeyInfoRef::try_from(der.as_slice()).map_err(KeyError::Spki)?;
        let oid = info.algorithm.oid;
        if oid == p256::elliptic_curve::ALGORITHM_OID {
            // Rejects EC keys on other curves.
            let key = ecdsa::VerifyingKey::from_public_key_der(&der).map_err(KeyError::Spki)?;
            Self::from_p256(key)
        } else if oid == ed25519_dalek::pkcs8::ALGORITHM_OID {
            let key =
                ed25519_dalek::VerifyingKey::from_public_key_der(&der).map_err(KeyError::Spki)?;
            // A small-order ("weak") key lets anyone forge signatures that verify under it.
            if key.is_weak() {
                return Err(KeyError::WeakEd25519Key);
            }
            Ok(Self::from_ed25519(key))
        } else {
            Err(KeyError::UnsupportedAlgorithm {
                oid: oid.to_string(),
            })
        }
    }

    /// Encodes as SPKI PEM.
    pub fn to_spki_pem(&self) -> Result<String, KeyError> {
        match &self.inner {
            VerifyingKeyInner::EcdsaP256(key) => key
                .to_public_key_pem(LineEnding::LF)
                .map_err(KeyError::Spki),
            VerifyingKeyInner::Ed25519(key) => key
                .to_public_key_pem(LineEnding::LF)
                .map_err(KeyError::Spki),
        }
    }

    /// The SubjectPublicKeyInfo DER encoding of the key.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            VerifyingKeyInner::EcdsaP256(key) => key
                .to_public_key_der()
                .map(|doc| doc.as_bytes().to_vec())
                .map_err(KeyError::Spki),
            VerifyingKeyInner::Ed25519(key) => Ok(ed25519_spki_der(key)),
        }
    }

    /// The keyid: lowercase hex SHA-256 of the key's SubjectPublicKeyInfo DER encoding.
    ///
    /// This is airlock's keyid convention. It is written into every DSSE signature's `keyid`
    /// and a Sigstore bundle's `publicKey.hint`, and anyone holding the public key can
    /// recompute it (`openssl pkey -pubin -outform DER | sha256sum`).
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            VerifyingKeyInner::EcdsaP256(_) => KeyAlgorithm::EcdsaP256Sha256,
            VerifyingKeyInner::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// Verifies `signature` over `message` (for ECDSA P-256: SHA-256, ASN.1 DER signature;
    /// raw r||s is rejected. For Ed25519: RFC 8032 strict verification of the 64-byte
    /// signature, which rejects non-canonical S and small-order R).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureMismatch> {
        match &self.inner {
            VerifyingKeyInner::EcdsaP256(key) => {
                let sig = DerSignature::from_bytes(signature).map_err(|_| SignatureMismatch)?;
                key.verify(message, &sig).map_err(|_| SignatureMismatch)
            }
            VerifyingKeyInner::Ed25519(key) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| SignatureMismatch)?;
                key.verify_strict(message, &sig)
                    .map_err(|_| SignatureMismatch)
            }
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm())
            .field("keyid", &self.keyid())
            .finish()
    }
}

/// The SPKI DER of an Ed25519 key, built by hand (RFC 8410 section 4: a fixed 12-byte
/// header and the 32-byte point) because it cannot fail and needs no allocation in the codec.
fn ed25519_spki_der(key: &ed25519_dalek::VerifyingKey) -> Vec<u8> {
    const HEADER: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let mut der = HEADER.to_vec();
    der.extend_from_slice(key.as_bytes());
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_keyid() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.keyid(), key.keyid());

        let pub_pem = key.verifying_key().to_spki_pem().unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let vk = VerifyingKey::from_spki_pem(&pub_pem).unwrap();
        assert_eq!(&vk, key.verifying_key());
        let der = vk.to_spki_der().unwrap();
        assert_eq!(vk.keyid(), Sha256Digest::of(&der).hex());
        assert_eq!(vk.keyid().len(), 64);

        // A private key where a public one is expected (and vice versa) is a label error.
        assert!(matches!(
            VerifyingKey::from_spki_pem(&pem),
            Err(KeyError::PemLabel { .. })
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_pem(&pub_pem),
            Err(KeyError::PemLabel { .. })
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SigningKey::generate().unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(key.keyid()), "{debug}");
        let scalar = match &key.inner {
            SigningKeyInner::EcdsaP256(k) => hex::encode(k.to_bytes()),
            SigningKeyInner::Ed25519(_) => unreachable!("generate() makes P-256 keys"),
        };
        assert!(!debug.contains(&scalar));
        assert!(!debug.to_lowercase().contains("scalar"));

        let ed = SigningKey::generate_with(KeyAlgorithm::Ed25519).unwrap();
        let debug = format!("{ed:?}");
        let seed = match &ed.inner {
            SigningKeyInner::Ed25519(k) => hex::encode(k.to_bytes()),
            SigningKeyInner::EcdsaP256(_) => unreachable!("asked for Ed25519"),
        };
        assert!(
            debug.contains("Ed25519") && debug.contains(ed.keyid()),
            "{debug}"
        );
        assert!(!debug.contains(&seed));
    }

    /// RFC 8032 section 7.1, TEST 1: the seed, public key and signature of the empty message.
    #[test]
    fn ed25519_rfc8032_vector_and_pem_forms() {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_ed25519_seed(&seed);
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        let der = key.verifying_key().to_spki_der().unwrap();
        assert_eq!(
            hex::encode(&der[12..]),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = key.sign(b"").unwrap();
        assert_eq!(
            hex::encode(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(key.verifying_key().verify(b"", &sig).is_ok());
        assert!(key.verifying_key().verify(b"x", &sig).is_err());
        assert!(key.verifying_key().verify(b"", &sig[..63]).is_err());

        // The PEM forms openssl writes: PKCS#8 v1 private key, SPKI public key, same keyid.
        let pem = key.to_pkcs8_pem().unwrap();
        assert_eq!(
            pem.as_str(),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n"
        );
        let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.keyid(), key.keyid());
        let pub_pem = key.verifying_key().to_spki_pem().unwrap();
        assert_eq!(
            pub_pem,
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n"
        );
        let vk = VerifyingKey::from_spki_pem(&pub_pem).unwrap();
        assert_eq!(&vk, key.verifying_key());
        assert_eq!(vk.keyid(), Sha256Digest::of(&der).hex());

        // A P-256 signature never verifies under an Ed25519 key and vice versa.
        let p256 = SigningKey::generate().unwrap();
        let p_sig = p256.sign(b"m").unwrap();
        assert!(vk.verify(b"m", &p_sig).is_err());
        assert!(p256.verifying_key().verify(b"", &sig).is_err());
    }

    #[test]
    fn ed25519_weak_public_key_is_refused() {
        // The identity point (small order): every "signature" with R = identity and S = 0
        // would verify under it.
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.push(1);
        der.extend_from_slice(&[0; 31]);
        let pem = pem::encode_string(PUBLIC_KEY_LABEL, LineEnding::LF, &der).unwrap();
        assert!(matches!(
            VerifyingKey::from_spki_pem(&pem),
            Err(KeyError::WeakEd25519Key)
        ));
    }

    #[test]
    fn unsupported_algorithm_is_named() {
        // An X25519 SPKI (OID 1.3.101.110): a valid document of a key type airlock never uses.
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&[9; 32]);
        let pem = pem::encode_string(PUBLIC_KEY_LABEL, LineEnding::LF, &der).unwrap();
        let err = VerifyingKey::from_spki_pem(&pem).unwrap_err();
        assert!(
            matches!(&err, KeyError::UnsupportedAlgorithm { oid } if oid == "1.3.101.110"),
            "{err}"
        );
    }

    #[test]
    fn sign_and_verify_raw() {
        let key = SigningKey::generate().unwrap();
        let sig = key.sign(b"msg").unwrap();
        assert_eq!(sig[0], 0x30, "DER SEQUENCE");
        assert!(key.verifying_key().verify(b"msg", &sig).is_ok());
        assert!(key.verifying_key().verify(b"msh", &sig).is_err());
        assert!(key.verifying_key().verify(b"msg", &sig[1..]).is_err());
    }
}
