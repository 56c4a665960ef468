//! Rotating the token key while the controller runs (what `airlock controller rotate-token-key`
//! does): over real HTTP the JWKS shows the new kid at once next to the old one, over real
//! gRPC the old key keeps signing until the lead time has passed and the new one signs after,
//! tokens of either key verify against the published JWKS across the switch, and a later
//! rotation removes the old key once its tokens have all expired.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::time::Duration;

use airlock_attest::{load_verifying_key, write_keypair};
use airlock_controller::oidc::{JwkSet, rotate_token_key};
use airlock_controller::scheduling::HumanDuration;
use airlock_controller::{Clock, ControllerConfig};
use airlock_proto::v1 as pb;
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Seconds between publishing a key and signing with it (the smallest allowed: above 300).
const LEAD: u64 = 400;
const AUDIENCE: &str = "sts.example";

async fn start() -> TestController {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = write_keypair(dir.path(), "provenance").unwrap();
    let mut config =
        ControllerConfig::local(dir.path().join("state"), key, API_TOKEN, RUNNER_TOKEN);
    if let Some(oidc) = &mut config.oidc {
        oidc.rotation_lead_time_secs = LEAD;
    }
    // The test moves the clock 720 s; the lease and the runner token must outlive that.
    config.scheduling.lease_ttl = HumanDuration(Duration::from_secs(7200));
    config.auth.runner_token_ttl_seconds = 900;
    let public = load_verifying_key(&public).unwrap();
    TestController::start_with(dir, config, public).await
}

/// A running `trusted` job that declares [`AUDIENCE`], with a timeout beyond the test's span.
async fn leased(tc: &TestController) -> (Runners, pb::Lease) {
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, b"source").await;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&spec_json(&source, &["linux"])).unwrap();
    spec["job"]["timeout"] = "1h".into();
    spec["oidc"] = serde_json::json!({ "audiences": [AUDIENCE] });
    jobs.submit_job(pb::SubmitJobRequest {
        spec_json: serde_json::to_vec(&spec).unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let runner_id = register(&mut runners, &["linux"]).await;
    let lease = acquire(&mut runners, &runner_id, 0).await.expect("a lease");
    (runners, lease)
}

async fn mint(runners: &mut Runners, lease: &pb::Lease) -> String {
    runners
        .mint_build_token(pb::MintBuildTokenRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            audience: AUDIENCE.into(),
            lifetime_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// `GET /.well-known/jwks.json` over plain HTTP/1.1.
async fn jwks(tc: &TestController) -> JwkSet {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(tc.addr).await.unwrap();
    let request = format!(
        "GET /.well-known/jwks.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        tc.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys.iter().map(|k| k.kid.clone()).collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Verifies `token` as a relying party does, with the key the JWKS publishes under its kid;
/// the time claims are checked against the controller's (manual) clock.
fn verify(tc: &TestController, set: &JwkSet, token: &str) {
    let kid = kid_of(token);
    let jwk = set
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("kid {kid} is not published"));
    let key = DecodingKey::from_ec_components(&jwk.x, &jwk.y).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&["https://localhost"]);
    // The controller's clock is in 2023: check exp against it below instead.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .unwrap()
        .claims;
    let now = tc
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(claims["iat"].as_u64().unwrap() <= now);
    assert!(now < claims["exp"].as_u64().unwrap(), "expired");
}

#[tokio::test]
async fn rotation_while_running_publishes_first_then_signs_and_tokens_keep_verifying() {
    let tc = start().await;
    let oidc = tc.config.oidc.clone().unwrap();
    let (mut runners, lease) = leased(&tc).await;

    let before = mint(&mut runners, &lease).await;
    let set = jwks(&tc).await;
    let old = kid_of(&before);
    assert_eq!(kids(&set), vec![old.clone()]);

    // Rotate "from outside": the controller reads the directory, not this call's result.
    tc.clock.advance(Duration::from_secs(10));
    let summary = rotate_token_key(&oidc, tc.config.issuer(), tc.clock.as_ref()).unwrap();
    let new = summary.new_kid.clone();
    assert_ne!(new, old);
    assert_eq!(summary.signs_from, summary.published_at + LEAD);
    assert_eq!(summary.retiring.len(), 1);
    assert_eq!(summary.retiring[0].kid, old);
    assert_eq!(summary.retiring[0].unpublished_at, summary.signs_from + 300);

    let set = jwks(&tc).await;
    assert_eq!(
        kids(&set),
        vec![old.clone(), new.clone()],
        "published at once"
    );
    let during = mint(&mut runners, &lease).await;
    assert_eq!(
        kid_of(&during),
        old,
        "the new key does not sign before the lead time"
    );
    verify(&tc, &set, &before);
    verify(&tc, &set, &during);

    // Just before the switch the old key still signs; just after, the new one does, and the
    // old key's last token still verifies against the JWKS.
    tc.clock.advance(Duration::from_secs(LEAD - 60));
    let last_old = mint(&mut runners, &lease).await;
    assert_eq!(kid_of(&last_old), old);
    tc.clock.advance(Duration::from_secs(70));
    let first_new = mint(&mut runners, &lease).await;
    assert_eq!(kid_of(&first_new), new);
    let set = jwks(&tc).await;
    assert_eq!(kids(&set), vec![old.clone(), new.clone()]);
    verify(&tc, &set, &last_old);
    verify(&tc, &set, &first_new);

    // Once every token of the old key has expired it leaves the JWKS; the next rotation
    // removes its files.
    tc.clock.advance(Duration::from_secs(300));
    assert_eq!(kids(&jwks(&tc).await), vec![new.clone()]);
    let again = rotate_token_key(&oidc, tc.config.issuer(), tc.clock.as_ref()).unwrap();
    assert_eq!(again.pruned, vec![old.clone()]);
    assert!(!oidc.token_keys.join(format!("{old}.key")).exists());
    assert_eq!(
        kids(&jwks(&tc).await),
        vec![new.clone(), again.new_kid.clone()]
    );
    let still_new = mint(&mut runners, &lease).await;
    assert_eq!(kid_of(&still_new), new);
    verify(&tc, &jwks(&tc).await, &still_new);
    tc.stop().await;
}
