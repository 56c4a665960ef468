//! Webhook authenticity, checked over the exact bytes received before any of them is parsed:
//! GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`, Forgejo/Gitea
//! `X-Forgejo-Signature` (else `X-Gitea-Signature`) with the bare hex HMAC, GitLab
//! `X-Gitlab-Token` equal to the secret. Every comparison is constant-time.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use airlock_job::ForgeKind;

/// Why a webhook is not authentic (all answered 401, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header that carries the signature or token is absent.
    #[error("missing {0} header; set the webhook's secret to the one in webhook_secret_file")]
    Missing(&'static str),
    /// The header is not in the forge's format.
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    /// The signature or token does not match the secret.
    #[error("the {0} header does not match the webhook secret")]
    Mismatch(&'static str),
}

/// A webhook secret. `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// A secret from its text (surrounding whitespace, e.g. a trailing newline, dropped).
    pub fn new(text: &str) -> Self {
        Self(text.trim().as_bytes().to_vec())
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The hex HMAC-SHA256 of `body` a GitHub/Forgejo sender computes (tests, tooling).
    pub fn sign(&self, body: &[u8]) -> String {
        self.mac(body)
            .map(|mac| hex::encode(mac.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// The keyed MAC over `body` (`None` never happens: HMAC takes keys of any length).
    fn mac(&self, body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.bytes()).ok()?;
        mac.update(body);
        Some(mac)
    }

    /// Checks `headers` for `kind` against `body`.
    pub fn verify(
        &self,
        kind: ForgeKind,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        match kind {
            ForgeKind::Github => {
                const H: &str = "X-Hub-Signature-256";
                let value = header(headers, H)?.ok_or(SignatureError::Missing(H))?;
                let hex_mac = value
                    .strip_prefix("sha256=")
                    .ok_or(SignatureError::Malformed(H))?;
                self.verify_hex(H, hex_mac, body)
            }
            ForgeKind::Forgejo => {
                // The Forgejo header wins when present: a bad one is not rescued by the other.
                let (name, value) = match header(headers, "X-Forgejo-Signature")? {
                    Some(v) => ("X-Forgejo-Signature", v),
                    None => (
                        "X-Gitea-Signature",
                        header(headers, "X-Gitea-Signature")?
                            .ok_or(SignatureError::Missing("X-Forgejo-Signature"))?,
                    ),
                };
                self.verify_hex(name, value, body)
            }
            ForgeKind::Gitlab => {
                const H: &str = "X-Gitlab-Token";
                let token = header(headers, H)?.ok_or(SignatureError::Missing(H))?;
                // Compare digests so the comparison's length does not depend on the secret's.
                let given = Sha256::digest(token.as_bytes());
                let expected = Sha256::digest(self.bytes());
                if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
                    Ok(())
                } else {
                    Err(SignatureError::Mismatch(H))
                }
            }
        }
    }

    fn verify_hex(
        &self,
        name: &'static str,
        hex_mac: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let tag = hex::decode(hex_mac.trim()).map_err(|_| SignatureError::Malformed(name))?;
        self.mac(body)
            .ok_or(SignatureError::Mismatch(name))?
            .verify_slice(&tag)
            .map_err(|_| SignatureError::Mismatch(name))
    }
}

/// The header's value, `None` when absent; malformed when not visible ASCII.
fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, SignatureError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| SignatureError::Malformed(name)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rfc4231_case_2() {
        let s = WebhookSecret::new("Jefe");
        assert_eq!(
            s.sign(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn github_signature_is_checked_over_the_exact_body() {
        let s = WebhookSecret::new("It's a Secret to Everybody\n");
        // The example of GitHub's "Validating webhook deliveries" documentation.
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = headers(&[("X-Hub-Signature-256", good)]);
        s.verify(ForgeKind::Github, &h, b"Hello, World!").unwrap();
        assert_eq!(
            s.verify(ForgeKind::Github, &h, b"Hello, World?"),
            Err(SignatureError::Mismatch("X-Hub-Signature-256"))
        );
        let bare = headers(&[("X-Hub-Signature-256", &good[7..])]);
        assert!(matches!(
            s.verify(ForgeKind::Github, &bare, b"Hello, World!"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            s.verify(ForgeKind::Github, &HeaderMap::new(), b"x"),
            Err(SignatureError::Missing(_))
        ));
        let other = WebhookSecret::new("another secret");
        assert!(
            other
                .verify(ForgeKind::Github, &h, b"Hello, World!")
                .is_err()
        );
    }

    #[test]
    fn forgejo_header_wins_over_gitea() {
        let s = WebhookSecret::new("k");
        let sig = s.sign(b"{}");
        let gitea_only = headers(&[("X-Gitea-Signature", &sig)]);
        s.verify(ForgeKind::Forgejo, &gitea_only, b"{}").unwrap();
        let bad_forgejo = headers(&[("X-Forgejo-Signature", "00"), ("X-Gitea-Signature", &sig)]);
        assert!(s.verify(ForgeKind::Forgejo, &bad_forgejo, b"{}").is_err());
        assert!(matches!(
            s.verify(
                ForgeKind::Forgejo,
                &headers(&[("X-Forgejo-Signature", "zz")]),
                b"{}"
            ),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn gitlab_token_must_equal_the_secret() {
        let s = WebhookSecret::new("tok");
        s.verify(
            ForgeKind::Gitlab,
            &headers(&[("X-Gitlab-Token", "tok")]),
            b"",
        )
        .unwrap();
        for bad in ["to", "tok ", "tokk", ""] {
            assert!(
                s.verify(ForgeKind::Gitlab, &headers(&[("X-Gitlab-Token", bad)]), b"")
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(!format!("{s:?}").contains("tok"));
    }
}
