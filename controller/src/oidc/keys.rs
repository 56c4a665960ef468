//! The token key ring: ES256 keys, each with a `kid`, and the rules that decide, as pure
//! functions of time, which keys are published in the JWKS and which one signs.
//!
//! A key's [`KeySchedule`] has three instants (unix seconds):
//! - `published_at`: from here the key is in the JWKS;
//! - `signs_from` (at least `published_at` + the rotation lead time, except for a ring's very
//!   first key, which no relying party can have cached anything for): from here it may sign;
//! - `retired_at` (optional): from here it no longer signs, and it stays published until
//!   `retired_at` + the maximum token lifetime, when every token it signed has expired.
//!
//! The signing key at `now` is the usable key with the latest `signs_from`; a ring with no
//! usable key signs nothing (minting fails closed).

use std::fmt;
use std::time::{Duration, SystemTime};

use airlock_attest::{KeyAlgorithm, KeyError, SigningKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::jwks::{Jwk, JwkSet};
use super::time::{secs, unix_secs};

/// When a key is published, signs and retires, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySchedule {
    /// From this instant the key is in the JWKS.
    pub published_at: u64,
    /// From this instant the key may sign tokens.
    pub signs_from: u64,
    /// From this instant the key signs nothing; it stays published for one more maximum token
    /// lifetime. `None`: not retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

impl KeySchedule {
    /// Whether the key is in the JWKS at `now`, given the longest lifetime of a token.
    pub fn is_published(&self, now: u64, max_token_lifetime: u64) -> bool {
        now >= self.published_at
            && self
                .retired_at
                .is_none_or(|retired| now < retired.saturating_add(max_token_lifetime))
    }

    /// Whether the key may sign at `now`.
    pub fn can_sign(&self, now: u64) -> bool {
        now >= self.signs_from && self.retired_at.is_none_or(|retired| now < retired)
    }

    /// Whether a token issued at `iat` could have been signed by this key.
    pub fn could_have_signed(&self, iat: u64) -> bool {
        self.can_sign(iat)
    }

    /// Checks the order of the instants; `lead_time` is required between publishing and
    /// signing unless `first` (the ring's first key).
    fn check(&self, lead_time: u64, first: bool) -> Result<(), ScheduleProblem> {
        let lead = if first { 0 } else { lead_time };
        if self.signs_from < self.published_at.saturating_add(lead) {
            return Err(ScheduleProblem::SignsBeforeLeadTime);
        }
        if self.retired_at.is_some_and(|r| r < self.signs_from) {
            return Err(ScheduleProblem::RetiredBeforeSigning);
        }
        Ok(())
    }
}

/// What is wrong with a key schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleProblem {
    /// `signs_from` is earlier than `published_at` + the rotation lead time.
    SignsBeforeLeadTime,
    /// `retired_at` is earlier than `signs_from`.
    RetiredBeforeSigning,
}

impl fmt::Display for ScheduleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScheduleProblem::SignsBeforeLeadTime => {
                "signs_from is earlier than published_at plus the rotation lead time"
            }
            ScheduleProblem::RetiredBeforeSigning => "retired_at is earlier than signs_from",
        })
    }
}

/// Why a key cannot join the ring, or the ring cannot rotate.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A key with this kid is already in the ring.
    #[error("token key {kid} is already in the key ring")]
    DuplicateKid {
        /// The kid.
        kid: String,
    },
    /// The key's schedule breaks the rotation rules.
    #[error("token key {kid}: {problem}")]
    Schedule {
        /// The kid.
        kid: String,
        /// What is wrong.
        problem: ScheduleProblem,
    },
    /// A token key is also a provenance key; token and provenance keys must be distinct.
    #[error("token key {kid} is also the provenance signing key; generate a separate token key")]
    SharedWithProvenance {
        /// The kid (= keyid).
        kid: String,
    },
    /// The key could not be encoded for JWT signing.
    #[error("token key {kid} cannot be used for ES256: {source}")]
    Key {
        /// The kid.
        kid: String,
        /// The cause.
        #[source]
        source: KeyError,
    },
    /// Token keys are ECDSA P-256 (ES256); this key is another algorithm.
    #[error("token key {kid} is {algorithm:?}; token keys must be ECDSA P-256 (ES256)")]
    NotP256 {
        /// The kid.
        kid: String,
        /// The key's algorithm.
        algorithm: KeyAlgorithm,
    },
    /// jsonwebtoken refused the key material.
    #[error("token key {kid} is not a valid ES256 key: {source}")]
    Jwt {
        /// The kid.
        kid: String,
        /// The cause.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

/// One ES256 token key with its schedule. `Debug` shows the kid and schedule only.
#[derive(Clone)]
pub struct TokenKey {
    key: SigningKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    schedule: KeySchedule,
}

impl TokenKey {
    /// Wraps a P-256 key with its schedule. The kid is the key's airlock keyid (hex SHA-256 of
    /// its SubjectPublicKeyInfo DER).
    pub fn new(key: SigningKey, schedule: KeySchedule) -> Result<Self, KeyRingError> {
        let kid = key.keyid().to_owned();
        if key.algorithm() != KeyAlgorithm::EcdsaP256Sha256 {
            return Err(KeyRingError::NotP256 {
                kid,
                algorithm: key.algorithm(),
            });
        }
        let key_err = |source| KeyRingError::Key {
            kid: kid.clone(),
            source,
        };
        let jwt_err = |source| KeyRingError::Jwt {
            kid: kid.clone(),
            source,
        };
        let private_pem = key.to_pkcs8_pem().map_err(key_err)?;
        let public_pem = key.verifying_key().to_spki_pem().map_err(key_err)?;
        let encoding = EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(jwt_err)?;
        let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(jwt_err)?;
        let jwk = Jwk::for_key(key.verifying_key()).map_err(key_err)?;
        Ok(Self {
            key,
            encoding,
            decoding,
            jwk,
            schedule,
        })
    }

    /// The key id carried in the JWKS and in every token header.
    pub fn kid(&self) -> &str {
        self.key.keyid()
    }

    /// When the key is published, signs and retires.
    pub fn schedule(&self) -> &KeySchedule {
        &self.schedule
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key (for writing it to the key directory).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid())
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

/// The issuer's token keys and the rotation rules that apply to them.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<TokenKey>,
    lead_time: Duration,
    max_token_lifetime: Duration,
}

impl KeyRing {
    /// An empty ring: publishes nothing and signs nothing.
    pub fn new(lead_time: Duration, max_token_lifetime: Duration) -> Self {
        Self {
            keys: Vec::new(),
            lead_time,
            max_token_lifetime,
        }
    }

    /// Adds a key, checking its kid is new and its schedule follows the rules (the first key
    /// of a ring may sign as soon as it is published).
    pub fn insert(&mut self, key: TokenKey) -> Result<(), KeyRingError> {
        if self.keys.iter().any(|k| k.kid() == key.kid()) {
            return Err(KeyRingError::DuplicateKid {
                kid: key.kid().to_owned(),
            });
        }
        let first = self
            .keys
            .iter()
            .all(|k| k.schedule.published_at > key.schedule.published_at);
        key.schedule
            .check(secs(self.lead_time), first)
            .map_err(|problem| KeyRingError::Schedule {
                kid: key.kid().to_owned(),
                problem,
            })?;
        self.keys.push(key);
        self.keys.sort_by_key(|k| k.schedule.published_at);
        Ok(())
    }

    /// Every key, oldest first (for persisting the ring).
    pub fn keys(&self) -> &[TokenKey] {
        &self.keys
    }

    /// The key that signs at `now`: of the keys that may sign, the one that started last.
    pub fn signing_key(&self, now: SystemTime) -> Option<&TokenKey> {
        let now = unix_secs(now);
        self.keys
            .iter()
            .filter(|k| k.schedule.can_sign(now))
            .max_by_key(|k| k.schedule.signs_from)
    }

    /// The keys in the JWKS at `now`.
    pub fn published(&self, now: SystemTime) -> impl Iterator<Item = &TokenKey> {
        let now = unix_secs(now);
        let max = secs(self.max_token_lifetime);
        self.keys
            .iter()
            .filter(move |k| k.schedule.is_published(now, max))
    }

    /// The JWKS at `now`: the public keys of [`KeyRing::published`].
    pub fn jwks(&self, now: SystemTime) -> JwkSet {
        JwkSet {
            keys: self.published(now).map(|k| k.jwk().clone()).collect(),
        }
    }

    /// The published key with this kid, if any (an unknown or withdrawn kid verifies nothing).
    pub fn published_key(&self, kid: &str, now: SystemTime) -> Option<&TokenKey> {
        self.published(now).find(|k| k.kid() == kid)
    }

    /// Adds `next`, published now and signing after the lead time, and retires every key that
    /// is not yet retired at that same instant, so exactly one key signs at any time and the
    /// hand-over needs no further step. Returns the new key's kid.
    pub fn rotate(&mut self, next: SigningKey, now: SystemTime) -> Result<String, KeyRingError> {
        let now = unix_secs(now);
        let signs_from = now.saturating_add(secs(self.lead_time));
        let schedule = if self.keys.is_empty() {
            KeySchedule {
                published_at: now,
                signs_from: now,
                retired_at: None,
            }
        } else {
            KeySchedule {
                published_at: now,
                signs_from,
                retired_at: None,
            }
        };
        let key = TokenKey::new(next, schedule)?;
        let kid = key.kid().to_owned();
        let mut staged = self.clone();
        for old in &mut staged.keys {
            if old.schedule.retired_at.is_none() {
                old.schedule.retired_at = Some(signs_from.max(old.schedule.signs_from));
            }
        }
        staged.insert(key)?;
        *self = staged;
        Ok(kid)
    }

    /// Drops keys that are no longer published at `now` and never will be again; returns their
    /// kids (so their files can be removed).
    pub fn prune(&mut self, now: SystemTime) -> Vec<String> {
        let now_s = unix_secs(now);
        let max = secs(self.max_token_lifetime);
        let (gone, kept): (Vec<_>, Vec<_>) = self.keys.drain(..).partition(|k| {
            k.schedule
                .retired_at
                .is_some_and(|r| now_s >= r.saturating_add(max))
        });
        self.keys = kept;
        gone.iter().map(|k| k.kid().to_owned()).collect()
    }

    /// Fails if any token key is the provenance key with `provenance_keyid`.
    pub fn ensure_distinct_from(&self, provenance_keyid: &str) -> Result<(), KeyRingError> {
        match self.keys.iter().find(|k| k.kid() == provenance_keyid) {
            Some(k) => Err(KeyRingError::SharedWithProvenance {
                kid: k.kid().to_owned(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const LEAD: Duration = Duration::from_secs(3600);
    const MAX: Duration = Duration::from_secs(300);
    const T0: u64 = 1_800_000_000;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn kids(ring: &KeyRing, now: u64) -> Vec<String> {
        ring.published(at(now))
            .map(|k| k.kid().to_owned())
            .collect()
    }

    #[test]
    fn first_key_signs_immediately_and_is_published() {
        let mut ring = KeyRing::new(LEAD, MAX);
        assert!(
            ring.signing_key(at(T0)).is_none(),
            "an empty ring signs nothing"
        );
        let kid = ring
            .rotate(SigningKey::generate().unwrap(), at(T0))
            .unwrap();
        assert_eq!(ring.signing_key(at(T0)).unwrap().kid(), kid);
        assert_eq!(kids(&ring, T0), vec![kid.clone()]);
        assert!(
            ring.published(at(T0 - 1)).next().is_none(),
            "not before publication"
        );
    }

    #[test]
    fn rotation_publishes_before_signing_and_keeps_old_key_until_its_tokens_expire() {
        let mut ring = KeyRing::new(LEAD, MAX);
        let old = ring
            .rotate(SigningKey::generate().unwrap(), at(T0))
            .unwrap();
        let t1 = T0 + 10_000;
        let new = ring
            .rotate(SigningKey::generate().unwrap(), at(t1))
            .unwrap();
        let switch = t1 + LEAD.as_secs();

        // Published at once, but the old key keeps signing through the lead time.
        assert_eq!(kids(&ring, t1), vec![old.clone(), new.clone()]);
        assert_eq!(ring.signing_key(at(t1)).unwrap().kid(), old);
        assert_eq!(ring.signing_key(at(switch - 1)).unwrap().kid(), old);
        // At the switch the new key signs, and the old one stays published for one maximum
        // token lifetime, then disappears.
        assert_eq!(ring.signing_key(at(switch)).unwrap().kid(), new);
        assert_eq!(
            kids(&ring, switch + MAX.as_secs() - 1),
            vec![old.clone(), new.clone()]
        );
        assert_eq!(kids(&ring, switch + MAX.as_secs()), vec![new.clone()]);
        assert!(
            ring.published_key(&old, at(switch + MAX.as_secs()))
                .is_none()
        );

        // Pruning drops it for good.
        assert_eq!(
            ring.prune(at(switch + MAX.as_secs() - 1)),
            Vec::<String>::new()
        );
        assert_eq!(ring.prune(at(switch + MAX.as_secs())), vec![old]);
        assert_eq!(ring.keys().len(), 1);
    }

    #[test]
    fn a_key_signing_before_the_lead_time_is_refused() {
        let mut ring = KeyRing::new(LEAD, MAX);
        ring.rotate(SigningKey::generate().unwrap(), at(T0))
            .unwrap();
        let early = TokenKey::new(
            SigningKey::generate().unwrap(),
            KeySchedule {
                published_at: T0 + 10,
                signs_from: T0 + 10 + LEAD.as_secs() - 1,
                retired_at: None,
            },
        )
        .unwrap();
        assert!(matches!(
            ring.insert(early),
            Err(KeyRingError::Schedule {
                problem: ScheduleProblem::SignsBeforeLeadTime,
                ..
            })
        ));
    }

    #[test]
    fn retired_key_with_no_successor_leaves_nothing_to_sign() {
        let mut ring = KeyRing::new(LEAD, MAX);
        let key = TokenKey::new(
            SigningKey::generate().unwrap(),
            KeySchedule {
                published_at: T0,
                signs_from: T0,
                retired_at: Some(T0 + 100),
            },
        )
        .unwrap();
        ring.insert(key).unwrap();
        assert!(ring.signing_key(at(T0 + 99)).is_some());
        assert!(ring.signing_key(at(T0 + 100)).is_none(), "fails closed");
    }

    #[test]
    fn duplicate_kid_and_shared_provenance_key_are_refused() {
        let key = SigningKey::generate().unwrap();
        let mut ring = KeyRing::new(LEAD, MAX);
        let kid = ring.rotate(key.clone(), at(T0)).unwrap();
        let again = TokenKey::new(
            key,
            KeySchedule {
                published_at: T0 + LEAD.as_secs(),
                signs_from: T0 + 2 * LEAD.as_secs(),
                retired_at: None,
            },
        )
        .unwrap();
        assert!(matches!(
            ring.insert(again),
            Err(KeyRingError::DuplicateKid { .. })
        ));
        assert!(matches!(
            ring.ensure_distinct_from(&kid),
            Err(KeyRingError::SharedWithProvenance { .. })
        ));
        let other = SigningKey::generate().unwrap();
        assert!(ring.ensure_distinct_from(other.keyid()).is_ok());
    }

    #[test]
    fn only_p256_keys_become_token_keys() {
        let ed = SigningKey::generate_with(KeyAlgorithm::Ed25519).unwrap();
        let schedule = KeySchedule {
            published_at: T0,
            signs_from: T0,
            retired_at: None,
        };
        assert!(matches!(
            TokenKey::new(ed, schedule),
            Err(KeyRingError::NotP256 { .. })
        ));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let body: String = pem.lines().nth(1).unwrap().to_owned();
        let token_key = TokenKey::new(
            key,
            KeySchedule {
                published_at: T0,
                signs_from: T0,
                retired_at: None,
            },
        )
        .unwrap();
        let debug = format!("{token_key:?}");
        assert!(debug.contains(token_key.kid()));
        assert!(!debug.contains(&body[..20]));
    }
}
