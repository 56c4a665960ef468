//! Shared fixtures for the OIDC tests: a key ring, minter and verifier on an injected clock, a
//! job context, and forged tokens (unknown key, `alg: none`, HS256 keyed with the public key).

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use airlock_attest::{GitCommit, Sha256Digest, SigningKey};
use airlock_controller::oidc::{
    BuildClaims, JobTokenContext, KeyRing, Minter, OidcSettings, SourceIdentity, SourceRef,
    Verifier,
};
use airlock_controller::{Clock, SequentialIds};
use airlock_job::SourceSpec;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Audiences the test job declares.
pub const AUDIENCES: [&str; 2] = ["sts.amazonaws.com", "https://vault.example"];
/// The test job's repository.
pub const REPO: &str = "https://git.example.com/org/app.git";
/// The test job's commit.
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A ring with one key signing from `clock`'s time, and a minter and verifier sharing it.
pub struct Issuer {
    pub settings: OidcSettings,
    pub ring: Arc<RwLock<KeyRing>>,
    pub minter: Minter,
    pub verifier: Verifier,
}

impl Issuer {
    pub fn new(issuer: &str, clock: Arc<dyn Clock>) -> Self {
        let settings = OidcSettings::new(issuer).unwrap();
        let mut ring = KeyRing::new(settings.rotation_lead_time(), settings.max_token_lifetime());
        ring.rotate(SigningKey::generate().unwrap(), clock.now())
            .unwrap();
        let ring = Arc::new(RwLock::new(ring));
        let minter = Minter::new(
            settings.clone(),
            ring.clone(),
            clock.clone(),
            Arc::new(SequentialIds::default()),
        );
        let verifier = Verifier::new(settings.clone(), ring.clone(), clock);
        Self {
            settings,
            ring,
            minter,
            verifier,
        }
    }

    /// A minter with another issuer URL but this ring's keys (a "wrong issuer" token).
    pub fn minter_with_issuer(&self, issuer: &str, clock: Arc<dyn Clock>) -> Minter {
        Minter::new(
            OidcSettings::new(issuer).unwrap(),
            self.ring.clone(),
            clock,
            Arc::new(SequentialIds::default()),
        )
    }

    /// The current signing key's kid.
    pub fn kid(&self, now: SystemTime) -> String {
        self.ring
            .read()
            .unwrap()
            .signing_key(now)
            .unwrap()
            .kid()
            .to_owned()
    }

    /// The SPKI PEM of the current signing key.
    pub fn public_pem(&self, now: SystemTime) -> String {
        let ring = self.ring.read().unwrap();
        ring.signing_key(now)
            .unwrap()
            .signing_key()
            .verifying_key()
            .to_spki_pem()
            .unwrap()
    }
}

/// A running trusted job on `main` of [`REPO`], declaring [`AUDIENCES`], deadline `deadline`.
pub fn job(deadline: SystemTime) -> JobTokenContext {
    let source = SourceIdentity::from_source(&SourceSpec::Git {
        url: REPO.to_owned(),
        commit: GitCommit::from_hex(SHA).unwrap(),
        git_ref: None,
    })
    .unwrap()
    .with_verified_ref(SourceRef::Branch("main".to_owned()))
    .unwrap();
    JobTokenContext {
        job_id: "00000000-0000-4000-8000-00000000000a".to_owned(),
        source,
        profile: "trusted".to_owned(),
        profile_allows_tokens: true,
        audiences: AUDIENCES.iter().map(|a| (*a).to_owned()).collect(),
        builder_id: "https://ci.example/builders/trusted".to_owned(),
        runner_id: "runner-1".to_owned(),
        job_definition_sha256: Sha256Digest::of(b"job definition"),
        ended: false,
        deadline,
    }
}

/// A deadline far enough away for any test.
pub fn far(now: SystemTime) -> SystemTime {
    now + Duration::from_secs(3 * 3600)
}

/// The claims of a token, read without verification (to re-sign them in forgeries).
pub fn claims_of(token: &str) -> BuildClaims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The same claims with `alg: none` and no signature.
pub fn alg_none(token: &str, kid: &str) -> String {
    let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid});
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let payload = token.split('.').nth(1).unwrap();
    format!("{header}.{payload}.")
}

/// The same claims, HS256-signed with the issuer's public key PEM as the HMAC secret
/// (the classic algorithm-confusion attack).
pub fn hs256_with_public_key(token: &str, kid: &str, public_pem: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    let key = jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims_of(token), &key).unwrap()
}

/// The same claims, ES256-signed by a key the issuer never published, with its own kid
/// (`kid_override` replaces it, e.g. with a published kid to test the signature check).
pub fn unknown_key(token: &str, kid_override: Option<&str>) -> String {
    let stranger = SigningKey::generate().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid_override.unwrap_or(stranger.keyid()).to_owned());
    let pem = stranger.to_pkcs8_pem().unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims_of(token), &key).unwrap()
}
