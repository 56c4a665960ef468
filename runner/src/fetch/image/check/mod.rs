//! Checked build images: under a profile with `[image_check] require_attestation = true`, the
//! job's image must be vouched for, before any step runs, by a DSSE attestation that a key of
//! the runner's `--image-key` list signed and whose in-toto subject is the image's pinned
//! manifest digest.
//!
//! Three stages, each its own file: *find* the candidate envelopes (beside an image layout,
//! [`layout`]; as OCI referrers of a registry image, [`registry`]), everything read being
//! untrusted and capped ([`LookupLimits`]); *verify* each with `airlock_attest` (the same
//! checks as `airlock verify`: trusted signature over the exact payload, in-toto v1 with SLSA
//! provenance v1, the digest among the subjects, the builder id if one is required); *report*
//! the first that verifies ([`Vouched`]) or, when none does, why each was refused
//! ([`ImageCheckError::NotVouched`]).

mod layout;
mod registry;

use std::fmt;
use std::path::PathBuf;

use airlock_attest::{Envelope, Policy, Sha256Digest, VerifyingKey, verify_provenance};

use super::registry::{RegistryClient, RegistryError, RegistryRepo};

/// What a runner trusts to vouch for build images (`--image-key`, `--image-builder-id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageTrust {
    /// Keys whose signature vouches for an image; empty: no image can be checked.
    pub keys: Vec<VerifyingKey>,
    /// If set, the attestation's `runDetails.builder.id` must be exactly this.
    pub builder_id: Option<String>,
}

/// Caps on what a lookup reads. Every byte found is untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupLimits {
    /// Largest envelope (a referrer's layer, or one `*.intoto.jsonl` file) read.
    pub max_envelope_bytes: u64,
    /// Most envelopes examined; more are reported and left alone.
    pub max_candidates: usize,
    /// Most directory entries scanned beside a layout.
    pub max_dir_entries: usize,
}

impl Default for LookupLimits {
    fn default() -> Self {
        Self {
            // An airlock provenance is a few KiB; one listing thousands of lockfile packages
            // stays well below this.
            max_envelope_bytes: 8 << 20,
            max_candidates: 16,
            max_dir_entries: 10_000,
        }
    }
}

/// The job's image, where the runner looks for its attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedImage {
    /// An OCI image layout (its directory, canonical and allowed), pinned by `digest`.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The pinned manifest digest.
        digest: Sha256Digest,
    },
    /// A registry image pinned by `digest`.
    Registry {
        /// The repository.
        repo: RegistryRepo,
        /// The pinned manifest (or index) digest.
        digest: Sha256Digest,
    },
}

impl CheckedImage {
    /// The pinned digest: what the attestation's subject must be.
    pub fn digest(&self) -> Sha256Digest {
        match self {
            Self::Layout { digest, .. } | Self::Registry { digest, .. } => *digest,
        }
    }
}

impl fmt::Display for CheckedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Layout { dir, digest } => {
                write!(f, "oci-layout:{}@{}", dir.display(), digest.prefixed())
            }
            Self::Registry { repo, digest } => write!(f, "{repo}@{}", digest.prefixed()),
        }
    }
}

/// One envelope found for the image, not verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Where it was found, for messages (`/srv/out/img.intoto.jsonl line 1`).
    pub(crate) origin: String,
    /// The envelope's JSON as found.
    pub(crate) envelope: Vec<u8>,
}

/// Why one place or candidate did not vouch for the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where (a file and line, a referrer digest).
    pub origin: String,
    /// Why, in words.
    pub reason: String,
    /// True when it could not be examined for the registry's or the network's sake (it may
    /// well vouch for the image on a second try); false when its content is at fault.
    pub transient: bool,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.reason)
    }
}

/// What a lookup found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lookup {
    /// What was looked for, for messages.
    pub(crate) looked_for: String,
    /// The envelopes to verify, in order.
    pub(crate) candidates: Vec<Candidate>,
    /// What was refused before verification (unreadable, oversized, malformed).
    pub(crate) refused: Vec<Refusal>,
}

impl Lookup {
    fn refuse(&mut self, origin: impl Into<String>, reason: impl Into<String>) {
        self.refused.push(Refusal {
            origin: origin.into(),
            reason: reason.into(),
            transient: false,
        });
    }

    /// True once `limits.max_candidates` candidates are held.
    fn is_full(&self, limits: &LookupLimits) -> bool {
        self.candidates.len() >= limits.max_candidates
    }

    /// Records that `origin` was left alone for the cap.
    fn not_examined(&mut self, limits: &LookupLimits, origin: String) {
        self.refuse(
            origin,
            format!(
                "not examined: at most {} attestations are examined per image",
                limits.max_candidates
            ),
        );
    }

    /// Adds a candidate, or a refusal once `limits.max_candidates` are held.
    fn offer(&mut self, limits: &LookupLimits, origin: String, envelope: Vec<u8>) {
        if self.is_full(limits) {
            self.not_examined(limits, origin);
        } else {
            self.candidates.push(Candidate { origin, envelope });
        }
    }
}

/// The attestation that vouched for an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// Where it was found.
    pub origin: String,
    /// The sha256 of the envelope's bytes (a referrer's layer digest).
    pub envelope_digest: Sha256Digest,
    /// The trusted key that signed it.
    pub keyid: String,
    /// Its `runDetails.builder.id`.
    pub builder_id: String,
    /// Its `predicateType`.
    pub predicate_type: String,
}

impl fmt::Display for Vouched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (envelope {}, predicate {}), signed by trusted key {}, builder {}",
            self.origin,
            self.envelope_digest.prefixed(),
            self.predicate_type,
            self.keyid,
            self.builder_id
        )
    }
}

/// Why an image is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ImageCheckError {
    /// The runner trusts no key, so nothing can vouch for any image.
    #[error(
        "this runner trusts no image key, so no attestation can vouch for the image; start the \
         runner (or `airlock run`) with --image-key PUB.pem, the public key that signs the \
         provenance of your build images"
    )]
    NoTrustedKeys,
    /// Asking the registry for the image's referrers failed.
    #[error("image {image}: looking up its attestations: {source}")]
    Registry {
        /// The image.
        image: String,
        /// What failed.
        #[source]
        source: RegistryError,
    },
    /// No attestation vouches for the image.
    #[error(
        "image {image} is not vouched for by an attestation signed by a trusted image key; \
         looked for {looked_for}; {}",
        describe_refusals(refusals)
    )]
    NotVouched {
        /// The image.
        image: String,
        /// Where the runner looked.
        looked_for: String,
        /// Why each candidate was refused (empty: there was none).
        refusals: Vec<Refusal>,
    },
}

impl ImageCheckError {
    /// True when the job's image (or its attestations) is at fault: the job fails. False when
    /// the registry or the network kept the runner from looking: an infrastructure failure.
    /// A runner without keys fails the job: its message names the flag to set.
    pub fn is_job_error(&self) -> bool {
        match self {
            Self::NoTrustedKeys => true,
            Self::Registry { source, .. } => source.is_job_error(),
            Self::NotVouched { refusals, .. } => !refusals.iter().any(|r| r.transient),
        }
    }
}

fn describe_refusals(refusals: &[Refusal]) -> String {
    if refusals.is_empty() {
        return "found none".to_owned();
    }
    let all: Vec<String> = refusals.iter().map(ToString::to_string).collect();
    format!("refused {}: {}", refusals.len(), all.join("; "))
}

/// Finds the image's attestations and returns the first that vouches for it.
pub fn check_image(
    image: &CheckedImage,
    client: &RegistryClient,
    trust: &ImageTrust,
    limits: &LookupLimits,
) -> Result<Vouched, ImageCheckError> {
    if trust.keys.is_empty() {
        return Err(ImageCheckError::NoTrustedKeys);
    }
    let lookup = match image {
        CheckedImage::Layout { dir, .. } => layout::beside_layout(dir, limits),
        CheckedImage::Registry { repo, digest } => {
            registry::referrers_of(client, repo, digest, limits).map_err(|source| {
                ImageCheckError::Registry {
                    image: image.to_string(),
                    source,
                }
            })?
        }
    };
    verify_lookup(image, lookup, trust)
}

/// Verifies the candidates in order; the first that vouches for `image` wins.
fn verify_lookup(
    image: &CheckedImage,
    lookup: Lookup,
    trust: &ImageTrust,
) -> Result<Vouched, ImageCheckError> {
    let Lookup {
        looked_for,
        candidates,
        mut refused,
    } = lookup;
    let mut refusals = Vec::new();
    for candidate in candidates {
        match verify_candidate(&candidate, &image.digest(), trust) {
            Ok(vouched) => return Ok(vouched),
            Err(reason) => refusals.push(Refusal {
                origin: candidate.origin,
                reason,
                transient: false,
            }),
        }
    }
    refusals.append(&mut refused);
    Err(ImageCheckError::NotVouched {
        image: image.to_string(),
        looked_for,
        refusals,
    })
}

/// Verifies one envelope: a DSSE envelope, signed by a trusted key, of an in-toto v1 statement
/// with an SLSA provenance v1 predicate whose subjects include `digest` and the required
/// builder id, or (without a required builder id) a PASSED verification summary for `digest`.
/// The reason it is refused otherwise.
fn verify_candidate(
    candidate: &Candidate,
    digest: &Sha256Digest,
    trust: &ImageTrust,
) -> Result<Vouched, String> {
    let bytes = candidate.envelope.trim_ascii();
    let envelope = Envelope::from_json(bytes)
        .map_err(|e| format!("not a DSSE envelope airlock reads: {e}"))?;
    let policy = Policy {
        builder_id: trust.builder_id.clone(),
        ..Policy::default()
    };
    let artifacts = [("image".to_owned(), *digest)];
    let provenance = match verify_provenance(&envelope, &trust.keys, &artifacts, &policy) {
        Ok(report) => {
            return Ok(Vouched {
                origin: candidate.origin.clone(),
                envelope_digest: Sha256Digest::of(bytes),
                keyid: report.keyid,
                builder_id: report.statement.predicate.run_details.builder.id.clone(),
                predicate_type: report.statement.predicate_type.clone(),
            });
        }
        Err(e) => e.to_string(),
    };
    // A verification summary (VSA) vouches too: PASSED, for this digest, signed by a trusted
    // key. It names no builder, so a required builder id needs provenance.
    if trust.builder_id.is_some() {
        return Err(provenance);
    }
    match airlock_attest::verify_vsa(
        &envelope,
        &trust.keys,
        &artifacts,
        &airlock_attest::VsaRequirements::default(),
    ) {
        Ok(report) => Ok(Vouched {
            origin: candidate.origin.clone(),
            envelope_digest: Sha256Digest::of(bytes),
            keyid: report.keyid,
            builder_id: format!("(verified by {})", report.statement.predicate.verifier.id),
            predicate_type: airlock_attest::SLSA_VSA_V1.to_owned(),
        }),
        Err(vsa) => Err(format!(
            "as provenance: {provenance}; as a verification summary: {vsa}"
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use airlock_attest::{
        BuildDefinition, BuildMetadata, Builder, Provenance, ResourceDescriptor, RunDetails,
        SigningKey, Statement, sign_statement,
    };

    use super::*;

    pub(crate) const BUILDER: &str = "https://airlock.example/builders/release";

    /// A signed provenance (one JSON line, no newline) whose only subject is `subject`.
    pub(crate) fn envelope_for(subject: &Sha256Digest, key: &SigningKey) -> Vec<u8> {
        let statement = Statement::new(
            vec![ResourceDescriptor::sha256("hello-image", subject)],
            Provenance {
                build_definition: BuildDefinition {
                    build_type: "https://airlock.example/buildtypes/job/v1".to_owned(),
                    external_parameters: serde_json::json!({"job": {"name": "img"}}),
                    internal_parameters: None,
                    resolved_dependencies: vec![],
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: BUILDER.to_owned(),
                        version: BTreeMap::new(),
                        builder_dependencies: vec![],
                    },
                    metadata: BuildMetadata {
                        invocation_id: "job-1".to_owned(),
                        started_on: "2024-05-01T12:00:00Z".to_owned(),
                        finished_on: "2024-05-01T12:01:00Z".to_owned(),
                    },
                    byproducts: vec![],
                },
            },
        );
        let (envelope, _) = sign_statement(&statement, key).unwrap();
        envelope
            .to_json_line()
            .unwrap()
            .trim_end()
            .as_bytes()
            .to_vec()
    }

    pub(crate) fn trust(keys: &[&SigningKey]) -> ImageTrust {
        ImageTrust {
            keys: keys.iter().map(|k| k.verifying_key().clone()).collect(),
            builder_id: None,
        }
    }

    fn layout_image(digest: Sha256Digest) -> CheckedImage {
        CheckedImage::Layout {
            dir: PathBuf::from("/srv/images/hello-image"),
            digest,
        }
    }

    fn lookup(envelopes: Vec<Vec<u8>>) -> Lookup {
        Lookup {
            looked_for: "the test's envelopes".to_owned(),
            candidates: envelopes
                .into_iter()
                .enumerate()
                .map(|(i, envelope)| Candidate {
                    origin: format!("candidate {i}"),
                    envelope,
                })
                .collect(),
            refused: vec![],
        }
    }

    fn refusals(e: ImageCheckError) -> Vec<Refusal> {
        match e {
            ImageCheckError::NotVouched { refusals, .. } => refusals,
            other => panic!("not NotVouched: {other}"),
        }
    }

    #[test]
    fn a_trusted_provenance_of_the_digest_vouches_and_names_key_and_builder() {
        let key = SigningKey::generate().unwrap();
        let digest = Sha256Digest::of(b"manifest");
        let env = envelope_for(&digest, &key);
        let v = verify_lookup(
            &layout_image(digest),
            lookup(vec![env.clone()]),
            &trust(&[&key]),
        )
        .unwrap();
        assert_eq!(v.keyid, key.keyid());
        assert_eq!(v.builder_id, BUILDER);
        assert_eq!(v.envelope_digest, Sha256Digest::of(&env));
        assert_eq!(v.predicate_type, airlock_attest::SLSA_PROVENANCE_V1);
        let shown = v.to_string();
        assert!(
            shown.contains(key.keyid()) && shown.contains(BUILDER),
            "{shown}"
        );

        // A required builder id is compared exactly.
        let mut strict = trust(&[&key]);
        strict.builder_id = Some(BUILDER.to_owned());
        verify_lookup(&layout_image(digest), lookup(vec![env.clone()]), &strict).unwrap();
        strict.builder_id = Some("https://airlock.example/builders/trusted".to_owned());
        let r =
            refusals(verify_lookup(&layout_image(digest), lookup(vec![env]), &strict).unwrap_err());
        assert!(r[0].reason.contains("builder.id"), "{r:?}");
    }

    #[test]
    fn a_passed_verification_summary_vouches_unless_a_builder_id_is_required() {
        use airlock_attest::{SlsaBuildLevel, VsaBuilder, VsaOutcome, policy_descriptor, sign_vsa};
        let key = SigningKey::generate().unwrap();
        let digest = Sha256Digest::of(b"manifest");
        let vsa = |outcome, subject: &Sha256Digest| {
            let statement = VsaBuilder::new(
                "https://verifier.example/gate",
                "pkg:oci/img".to_owned(),
                policy_descriptor(&Policy::default(), &[key.verifying_key().clone()]),
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            )
            .subject(ResourceDescriptor::sha256("img", subject))
            .input_attestation_file("img.intoto.jsonl", b"{}")
            .build(outcome)
            .unwrap();
            let (envelope, _) = sign_vsa(&statement, &key).unwrap();
            envelope.to_json_line().unwrap().into_bytes()
        };
        let passed = vsa(VsaOutcome::Passed(SlsaBuildLevel::L3), &digest);
        let v = verify_lookup(
            &layout_image(digest),
            lookup(vec![passed.clone()]),
            &trust(&[&key]),
        )
        .unwrap();
        assert_eq!(v.predicate_type, airlock_attest::SLSA_VSA_V1);
        assert!(v.builder_id.contains("verifier.example"), "{v}");
        let mut strict = trust(&[&key]);
        strict.builder_id = Some(BUILDER.to_owned());
        assert!(verify_lookup(&layout_image(digest), lookup(vec![passed]), &strict).is_err());
        let failed = vsa(VsaOutcome::Failed, &digest);
        let r = refusals(
            verify_lookup(&layout_image(digest), lookup(vec![failed]), &trust(&[&key]))
                .unwrap_err(),
        );
        assert!(r[0].reason.contains("verification summary"), "{r:?}");
        let other = vsa(
            VsaOutcome::Passed(SlsaBuildLevel::L3),
            &Sha256Digest::of(b"another image"),
        );
        assert!(
            verify_lookup(&layout_image(digest), lookup(vec![other]), &trust(&[&key])).is_err()
        );
    }

    #[test]
    fn wrong_key_subject_mismatch_tampering_and_garbage_are_each_refused_with_a_reason() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let digest = Sha256Digest::of(b"manifest");
        let good = envelope_for(&digest, &key);
        // Tampered: the payload changed after signing (another subject), signature kept.
        let mut value: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let other_payload = serde_json::from_slice::<serde_json::Value>(&envelope_for(
            &Sha256Digest::of(b"another"),
            &key,
        ))
        .unwrap()["payload"]
            .clone();
        value["payload"] = other_payload;
        let tampered = serde_json::to_vec(&value).unwrap();
        let cases = vec![
            envelope_for(&digest, &other),
            envelope_for(&Sha256Digest::of(b"another manifest"), &key),
            tampered,
            b"{\"not\": \"an envelope\"}".to_vec(),
        ];
        let e = verify_lookup(&layout_image(digest), lookup(cases), &trust(&[&key])).unwrap_err();
        assert!(e.is_job_error());
        let text = e.to_string();
        assert!(
            text.contains("oci-layout:/srv/images/hello-image@sha256:"),
            "{text}"
        );
        assert!(text.contains("looked for the test's envelopes"), "{text}");
        let r = refusals(e);
        assert_eq!(r.len(), 4, "{r:?}");
        assert!(r[0].reason.contains("none of them is trusted"), "{}", r[0]);
        assert!(r[1].reason.contains("is not a subject"), "{}", r[1]);
        assert!(r[2].reason.contains("does not verify"), "{}", r[2]);
        assert!(r[3].reason.contains("not a DSSE envelope"), "{}", r[3]);
        for (i, refusal) in r.iter().enumerate() {
            assert_eq!(refusal.origin, format!("candidate {i}"));
        }

        // The right one after the bad ones still vouches.
        let mut cases = lookup(vec![envelope_for(&digest, &other), good]);
        cases.refused.push(Refusal {
            origin: "x".into(),
            reason: "y".into(),
            transient: false,
        });
        let v = verify_lookup(&layout_image(digest), cases, &trust(&[&other, &key])).unwrap();
        assert_eq!(v.origin, "candidate 0", "the first that verifies wins");
    }

    #[test]
    fn no_candidates_no_keys_and_transient_refusals_are_classified() {
        let key = SigningKey::generate().unwrap();
        let digest = Sha256Digest::of(b"manifest");
        let e = verify_lookup(&layout_image(digest), lookup(vec![]), &trust(&[&key])).unwrap_err();
        assert!(e.is_job_error());
        assert!(e.to_string().ends_with("found none"), "{e}");

        let client = RegistryClient::new(
            crate::fetch::http::HttpClient::new(),
            super::super::registry::RegistryAuth::anonymous(),
        );
        let e = check_image(
            &layout_image(digest),
            &client,
            &ImageTrust::default(),
            &LookupLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ImageCheckError::NoTrustedKeys));
        assert!(e.is_job_error());
        assert!(e.to_string().contains("--image-key"), "{e}");

        let mut l = lookup(vec![]);
        l.refused.push(Refusal {
            origin: "referrer sha256:ab".into(),
            reason: "HTTP 503".into(),
            transient: true,
        });
        let e = verify_lookup(&layout_image(digest), l, &trust(&[&key])).unwrap_err();
        assert!(
            !e.is_job_error(),
            "a registry hiccup is the runner's problem"
        );
    }
}
