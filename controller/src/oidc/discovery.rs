//! The OpenID Provider metadata at `<issuer>/.well-known/openid-configuration`.
//!
//! airlock issues ID tokens only to its own build steps (no authorization endpoint, no
//! client registration), so the document carries what relying parties that federate with CI
//! systems read: the issuer, where the JWKS is, the one algorithm, and the claims.

use serde::{Deserialize, Serialize};

use super::claims::CLAIM_NAMES;

/// Path of the discovery document, relative to the issuer.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWKS, relative to the issuer.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The OpenID Provider metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryDocument {
    /// The issuer: exactly the `iss` of every token.
    pub issuer: String,
    /// Where the JWKS is.
    pub jwks_uri: String,
    /// Always `["ES256"]`.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Always `["public"]`: `sub` is the same for every relying party.
    pub subject_types_supported: Vec<String>,
    /// Always `["id_token"]`.
    pub response_types_supported: Vec<String>,
    /// Every claim a build token carries.
    pub claims_supported: Vec<String>,
}

impl DiscoveryDocument {
    /// The document for `issuer` (an issuer URL without a trailing `/`).
    pub fn for_issuer(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{issuer}{JWKS_PATH}"),
            id_token_signing_alg_values_supported: vec!["ES256".to_owned()],
            subject_types_supported: vec!["public".to_owned()],
            response_types_supported: vec!["id_token".to_owned()],
            claims_supported: CLAIM_NAMES.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_issuer_jwks_and_es256_only() {
        let doc = DiscoveryDocument::for_issuer("https://ci.example");
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["issuer"], "https://ci.example");
        assert_eq!(json["jwks_uri"], "https://ci.example/.well-known/jwks.json");
        assert_eq!(
            json["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
        assert_eq!(
            json["response_types_supported"],
            serde_json::json!(["id_token"])
        );
        assert_eq!(
            json["subject_types_supported"],
            serde_json::json!(["public"])
        );
        for claim in [
            "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "job_id", "sha",
        ] {
            assert!(doc.claims_supported.iter().any(|c| c == claim), "{claim}");
        }
    }
}
