//! Build tokens minted and verified with a fixed clock: the claims, the lifetime rules, the
//! refusals (profile, audience, ended job, lifetime), and the verifier refusing each forgery.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod oidc_support;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use airlock_controller::oidc::{MintError, MintRequest, VerifyError};
use airlock_controller::{Clock, ManualClock};
use oidc_support::*;

const ISSUER: &str = "https://ci.example";
const T0_MS: u64 = 1_800_000_000_000;

fn setup() -> (Arc<ManualClock>, Issuer) {
    let clock = Arc::new(ManualClock::at_unix_ms(T0_MS));
    let issuer = Issuer::new(ISSUER, clock.clone());
    (clock, issuer)
}

fn request(aud: &str, secs: Option<u64>) -> MintRequest {
    MintRequest {
        audience: aud.to_owned(),
        lifetime: secs.map(Duration::from_secs),
    }
}

#[test]
fn minted_token_carries_every_claim_and_verifies() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now()));
    let token = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    let t0 = T0_MS / 1000;
    assert_eq!(
        token.expires_at(),
        t0 + 300,
        "default lifetime is 5 minutes"
    );

    let header = jsonwebtoken::decode_header(token.value()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(
        header.kid.as_deref(),
        Some(issuer.kid(clock.now()).as_str())
    );

    let claims = issuer.verifier.verify(token.value(), AUDIENCES[0]).unwrap();
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.sub, format!("repo:{REPO}:ref:refs/heads/main"));
    assert_eq!(claims.aud, AUDIENCES[0]);
    assert_eq!((claims.iat, claims.nbf, claims.exp), (t0, t0, t0 + 300));
    assert_eq!(claims.jti, "00000000-0000-4000-8000-000000000001");
    assert_eq!(claims.job_id, job.job_id);
    assert_eq!(claims.repository, REPO);
    assert_eq!(claims.git_ref, "refs/heads/main");
    assert_eq!(claims.ref_type, "branch");
    assert_eq!(claims.sha, SHA);
    assert_eq!(claims.profile, "trusted");
    assert_eq!(claims.builder_id, "https://ci.example/builders/trusted");
    assert_eq!(claims.runner_id, "runner-1");
    assert_eq!(
        claims.job_definition_sha256,
        job.job_definition_sha256.hex()
    );
}

#[test]
fn lifetime_is_chosen_per_request_within_the_maximum() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now()));
    let short = issuer
        .minter
        .mint(&job, &request(AUDIENCES[1], Some(60)))
        .unwrap();
    assert_eq!(short.expires_at(), T0_MS / 1000 + 60);
    let max = issuer
        .minter
        .mint(&job, &request(AUDIENCES[1], Some(300)))
        .unwrap();
    assert_eq!(max.expires_at(), T0_MS / 1000 + 300);
    for bad in [0, 301, 86_400] {
        assert_eq!(
            issuer.minter.mint(&job, &request(AUDIENCES[1], Some(bad))),
            Err(MintError::Lifetime { max_secs: 300 }),
            "{bad}"
        );
    }
}

#[test]
fn re_minting_during_the_job_works_and_each_token_has_its_own_jti() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now()));
    let a = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    clock.advance(Duration::from_secs(600));
    let b = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    assert_ne!(a.jti(), b.jti());
    assert_eq!(
        issuer.verifier.verify(a.value(), AUDIENCES[0]),
        Err(VerifyError::Expired)
    );
    assert!(issuer.verifier.verify(b.value(), AUDIENCES[0]).is_ok());
}

#[test]
fn untrusted_pr_never_gets_a_token_even_if_its_profile_file_says_so() {
    let (clock, issuer) = setup();
    let mut job = job(far(clock.now()));
    job.profile = "untrusted-pr".to_owned();
    job.profile_allows_tokens = true;
    assert_eq!(
        issuer.minter.mint(&job, &request(AUDIENCES[0], None)),
        Err(MintError::ProfileWithoutTokens {
            profile: "untrusted-pr".to_owned()
        })
    );
    job.profile = "trusted".to_owned();
    job.profile_allows_tokens = false;
    assert!(matches!(
        issuer.minter.mint(&job, &request(AUDIENCES[0], None)),
        Err(MintError::ProfileWithoutTokens { .. })
    ));
}

#[test]
fn an_undeclared_audience_is_refused() {
    let (clock, issuer) = setup();
    let mut job = job(far(clock.now()));
    for aud in [
        "sts.amazonaws.co",
        "STS.AMAZONAWS.COM",
        "",
        "sts.amazonaws.com ",
    ] {
        assert_eq!(
            issuer.minter.mint(&job, &request(aud, None)),
            Err(MintError::UndeclaredAudience),
            "{aud:?}"
        );
    }
    job.audiences.clear();
    assert_eq!(
        issuer.minter.mint(&job, &request(AUDIENCES[0], None)),
        Err(MintError::UndeclaredAudience)
    );
}

#[test]
fn minting_after_the_job_ended_or_its_deadline_is_refused() {
    let (clock, issuer) = setup();
    let mut job = job(clock.now() + Duration::from_secs(100));
    assert!(
        issuer
            .minter
            .mint(&job, &request(AUDIENCES[0], None))
            .is_ok()
    );
    job.ended = true;
    assert_eq!(
        issuer.minter.mint(&job, &request(AUDIENCES[0], None)),
        Err(MintError::JobEnded)
    );
    job.ended = false;
    clock.advance(Duration::from_secs(100));
    assert_eq!(
        issuer.minter.mint(&job, &request(AUDIENCES[0], None)),
        Err(MintError::JobEnded)
    );
}

#[test]
fn minting_without_a_key_that_may_sign_fails_closed() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now()));
    // Rotate, then drop the retired key: until the successor's lead time has passed, no key
    // may sign, and minting refuses rather than signing early with a key not yet cached.
    let mut ring = issuer.ring.write().unwrap();
    ring.rotate(airlock_attest::SigningKey::generate().unwrap(), clock.now())
        .unwrap();
    ring.prune(UNIX_EPOCH + Duration::from_secs(T0_MS / 1000 + 10 * 3600));
    drop(ring);
    assert_eq!(
        issuer.minter.mint(&job, &request(AUDIENCES[0], None)),
        Err(MintError::NoSigningKey)
    );
    clock.advance(Duration::from_secs(3600));
    assert!(
        issuer
            .minter
            .mint(&job, &request(AUDIENCES[0], None))
            .is_ok()
    );

    *issuer.ring.write().unwrap() =
        airlock_controller::oidc::KeyRing::new(Duration::from_secs(3600), Duration::from_secs(300));
    assert_eq!(
        issuer.minter.mint(&job, &request(AUDIENCES[0], None)),
        Err(MintError::NoSigningKey),
        "an empty ring signs nothing"
    );
}

#[test]
fn verifier_refuses_each_forgery_and_each_bad_claim() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now()));
    let good = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    let token = good.value();
    let kid = issuer.kid(clock.now());
    let v = &issuer.verifier;

    assert_eq!(
        v.verify(&unknown_key(token, None), AUDIENCES[0]),
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(
        v.verify(&unknown_key(token, Some(&kid)), AUDIENCES[0]),
        Err(VerifyError::Signature),
        "a published kid on a stranger's signature"
    );
    assert_eq!(
        v.verify(&alg_none(token, &kid), AUDIENCES[0]),
        Err(VerifyError::Algorithm)
    );
    let hs = hs256_with_public_key(token, &kid, &issuer.public_pem(clock.now()));
    assert_eq!(v.verify(&hs, AUDIENCES[0]), Err(VerifyError::Algorithm));
    assert_eq!(v.verify(token, AUDIENCES[1]), Err(VerifyError::Audience));

    let evil = issuer.minter_with_issuer("https://evil.example", clock.clone());
    let wrong_iss = evil.mint(&job, &request(AUDIENCES[0], None)).unwrap();
    assert_eq!(
        v.verify(wrong_iss.value(), AUDIENCES[0]),
        Err(VerifyError::Issuer)
    );

    // A tampered payload breaks the signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = claims_of(token);
    claims.sub = format!("repo:{REPO}:ref:refs/heads/release");
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&claims).unwrap(),
    );
    assert_eq!(
        v.verify(&parts.join("."), AUDIENCES[0]),
        Err(VerifyError::Signature)
    );

    for junk in ["", "a.b.c", "not a token", &"x".repeat(10_000)] {
        assert_eq!(
            v.verify(junk, AUDIENCES[0]),
            Err(VerifyError::Malformed),
            "{junk:.10}"
        );
    }
}

#[test]
fn verifier_refuses_expired_and_not_yet_valid_tokens_on_the_injected_clock() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now()));
    let token = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], Some(60)))
        .unwrap();

    clock.advance(Duration::from_secs(59));
    assert!(issuer.verifier.verify(token.value(), AUDIENCES[0]).is_ok());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        issuer.verifier.verify(token.value(), AUDIENCES[0]),
        Err(VerifyError::Expired),
        "exp is exclusive"
    );

    // A token minted "in the future" (a minter whose clock runs ahead).
    let ahead = Arc::new(ManualClock::at_unix_ms(T0_MS + 3_600_000));
    let future_minter = issuer.minter_with_issuer(ISSUER, ahead.clone());
    let early = future_minter
        .mint(
            &oidc_support::job(far(ahead.now())),
            &request(AUDIENCES[0], None),
        )
        .unwrap();
    let verifier_now = airlock_controller::oidc::Verifier::new(
        issuer.settings.clone(),
        issuer.ring.clone(),
        Arc::new(ManualClock::at_unix_ms(T0_MS)),
    );
    assert_eq!(
        verifier_now.verify(early.value(), AUDIENCES[0]),
        Err(VerifyError::NotYetValid)
    );
}

#[test]
fn a_withdrawn_key_verifies_nothing() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now()));
    let token = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    let old_kid = issuer.kid(clock.now());
    issuer
        .ring
        .write()
        .unwrap()
        .rotate(airlock_attest::SigningKey::generate().unwrap(), clock.now())
        .unwrap();
    // After the lead time and one maximum lifetime the old key is withdrawn.
    clock.advance(Duration::from_secs(3600 + 300));
    assert_ne!(issuer.kid(clock.now()), old_kid);
    let verifier = issuer
        .verifier
        .clone()
        .with_leeway(Duration::from_secs(100_000));
    assert_eq!(
        verifier.verify(token.value(), AUDIENCES[0]),
        Err(VerifyError::UnknownKey)
    );
}

#[test]
fn debug_output_never_contains_the_token() {
    let (clock, issuer) = setup();
    let token = issuer
        .minter
        .mint(&job(far(clock.now())), &request(AUDIENCES[0], None))
        .unwrap();
    let debug = format!("{token:?} {:?} {:?}", issuer.minter, issuer.verifier);
    let signature = token.value().rsplit('.').next().unwrap();
    assert!(!debug.contains(signature));
    assert!(!debug.contains(token.value()));
    assert!(debug.contains("<redacted>"));
}

#[test]
fn changing_any_single_character_of_a_token_is_refused() {
    let (clock, issuer) = setup();
    let token = issuer
        .minter
        .mint(&job(far(clock.now())), &request(AUDIENCES[0], None))
        .unwrap();
    let original = token.value().as_bytes();
    for i in 0..original.len() {
        if original[i] == b'.' {
            continue;
        }
        for replacement in [b'A', b'_'] {
            if original[i] == replacement {
                continue;
            }
            let mut forged = original.to_vec();
            forged[i] = replacement;
            let forged = String::from_utf8(forged).unwrap();
            assert!(
                issuer.verifier.verify(&forged, AUDIENCES[0]).is_err(),
                "position {i} changed to {} still verifies",
                replacement as char
            );
        }
    }
}

#[test]
fn rotation_keeps_old_tokens_valid_until_expiry_and_a_pending_key_signs_nothing() {
    let (clock, issuer) = setup();
    let job = job(far(clock.now() + Duration::from_secs(2 * 3600)));
    let old_kid = issuer.kid(clock.now());
    let new_kid = issuer
        .ring
        .write()
        .unwrap()
        .rotate(airlock_attest::SigningKey::generate().unwrap(), clock.now())
        .unwrap();

    // The new key is published but not yet signing: a token carrying it is refused.
    let pending_pem = {
        let ring = issuer.ring.read().unwrap();
        let key = ring.keys().iter().find(|k| k.kid() == new_kid).unwrap();
        key.signing_key().to_pkcs8_pem().unwrap()
    };
    let early = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(early.value())
            .unwrap()
            .kid
            .unwrap(),
        old_kid
    );
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(new_kid.clone());
    let forged = jsonwebtoken::encode(
        &header,
        &claims_of(early.value()),
        &jsonwebtoken::EncodingKey::from_ec_pem(pending_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        issuer.verifier.verify(&forged, AUDIENCES[0]),
        Err(VerifyError::KeyWindow)
    );

    // The last token of the old key, one second before the switch, verifies until it expires.
    clock.advance(Duration::from_secs(3600 - 1));
    let last_old = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(last_old.value())
            .unwrap()
            .kid
            .unwrap(),
        old_kid
    );
    clock.advance(Duration::from_secs(1));
    let first_new = issuer
        .minter
        .mint(&job, &request(AUDIENCES[0], None))
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(first_new.value())
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    clock.advance(Duration::from_secs(298));
    assert!(
        issuer
            .verifier
            .verify(last_old.value(), AUDIENCES[0])
            .is_ok()
    );
    assert!(
        issuer
            .verifier
            .verify(first_new.value(), AUDIENCES[0])
            .is_ok()
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        issuer.verifier.verify(last_old.value(), AUDIENCES[0]),
        Err(VerifyError::Expired)
    );
}
