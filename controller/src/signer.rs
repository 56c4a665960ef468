//! Signs provenance statements with the controller's key: the "sign" stage after the pure
//! "format" stage of [`crate::provenance`] and before the store.
//!
//! A failure here fails the job (INFRA_FAILED); nothing is ever stored unsigned.

use std::path::Path;

use airlock_attest::{
    BundleError, DsseError, KeyError, SignError, SigningKey, Statement, load_signing_key,
    sign_statement,
};

use crate::store::StoredProvenance;

/// Why a statement could not be signed or encoded.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The signing key could not be loaded (missing, unreadable, group/world-accessible,
    /// not PKCS#8 P-256).
    #[error("cannot load the provenance signing key: {0}")]
    Key(#[from] KeyError),
    /// The statement was refused or the signature failed.
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
    /// The envelope could not be encoded.
    #[error("cannot encode the DSSE envelope: {0}")]
    Envelope(#[from] DsseError),
    /// The Sigstore bundle could not be built.
    #[error("cannot build the Sigstore bundle: {0}")]
    Bundle(#[from] BundleError),
}

/// The controller's provenance signer.
#[derive(Debug, Clone)]
pub struct Signer {
    key: SigningKey,
    public_key_pem: String,
}

impl Signer {
    /// Loads the key at `path` (PKCS#8 PEM; refused if group or others can access the file).
    pub fn load(path: &Path) -> Result<Self, SignerError> {
        Self::new(load_signing_key(path)?)
    }

    /// A signer for an already loaded key.
    pub fn new(key: SigningKey) -> Result<Self, SignerError> {
        let public_key_pem = key.verifying_key().to_spki_pem()?;
        Ok(Self {
            key,
            public_key_pem,
        })
    }

    /// The keyid of the signing key.
    pub fn keyid(&self) -> &str {
        self.key.keyid()
    }

    /// SPKI PEM of the verifying key.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// Signs `statement` into a DSSE envelope line and a Sigstore bundle.
    pub fn sign(&self, statement: &Statement) -> Result<StoredProvenance, SignerError> {
        let (envelope, _body) = sign_statement(statement, &self.key)?;
        let envelope_json = envelope.to_json_line()?;
        let bundle_json = airlock_attest::Bundle::from_envelope(&envelope)?.to_json()?;
        Ok(StoredProvenance {
            envelope_json,
            bundle_json,
            keyid: self.keyid().to_owned(),
            public_key_pem: self.public_key_pem.clone(),
        })
    }
}
