//! What a VSA says was checked: the policy document and its digest, the level rule, the
//! default resource URI.

use std::collections::BTreeSet;

use serde_json::json;

use crate::digest::Sha256Digest;
use crate::keys::VerifyingKey;
use crate::resource_descriptor::{ALG_SHA256, DigestSet, ResourceDescriptor};
use crate::sorted_json::sorted_keys;
use crate::verify::{Policy, VerificationReport};

use super::*;

/// The canonical JSON of what a provenance verification checked, whose sha256 is the VSA's
/// `policy.digest.sha256`: an object with exactly these keys, in this (sorted) order,
/// compact, UTF-8 (RFC 8785 JCS; the document holds only ASCII keys, strings, arrays and
/// null):
///
/// `{"allowedExternalParameters": [sorted, unique] | null, "buildType": str | null,
/// "builderId": str | null, "sourceUri": str | null, "trustedKeyids": [sorted, unique]}`
///
/// `null` means "not checked"; `trustedKeyids` are the keyids of every key the verifier
/// trusted, whichever one signed.
pub fn policy_document(policy: &Policy, trusted_keys: &[VerifyingKey]) -> Vec<u8> {
    let keyids: BTreeSet<&str> = trusted_keys.iter().map(VerifyingKey::keyid).collect();
    let allowed: Option<BTreeSet<&str>> = policy
        .allowed_external_parameters
        .as_ref()
        .map(|keys| keys.iter().map(String::as_str).collect());
    let document = json!({
        "allowedExternalParameters": allowed,
        "buildType": policy.build_type,
        "builderId": policy.builder_id,
        "sourceUri": policy.source_uri,
        "trustedKeyids": keyids,
    });
    // A `Value`'s Display is its compact serialization, which cannot fail.
    sorted_keys(document).to_string().into_bytes()
}

/// The VSA `policy` of a provenance verification: [`VSA_POLICY_URI`] and the sha256 of
/// [`policy_document`].
pub fn policy_descriptor(policy: &Policy, trusted_keys: &[VerifyingKey]) -> ResourceDescriptor {
    let digest = Sha256Digest::of(&policy_document(policy, trusted_keys));
    ResourceDescriptor {
        uri: Some(VSA_POLICY_URI.to_owned()),
        digest: DigestSet::from([(ALG_SHA256.to_owned(), digest.hex())]),
        ..ResourceDescriptor::default()
    }
}

/// True when `builder_id` is a hosted airlock controller's, `<issuer>/builders/<profile>`
/// (an http(s) URI, `profile` of `[a-z0-9-]`, not `local`, no query or fragment), and not
/// the `<issuer>/builders/local/<profile>` that `airlock run` on a workstation signs for.
pub fn is_hosted_builder_id(builder_id: &str) -> bool {
    let Some((scheme, rest)) = builder_id.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "https" | "http") || rest.contains(['?', '#']) {
        return false;
    }
    if builder_id.contains("/builders/local/") {
        return false;
    }
    let mut segments = rest.rsplit('/');
    let (Some(profile), Some(builders), Some(authority)) =
        (segments.next(), segments.next(), segments.next())
    else {
        return false;
    };
    builders == "builders"
        && !authority.is_empty()
        && profile != "local"
        && !profile.is_empty()
        && profile
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The Build level a passed provenance verification supports: `L3` when `policy` pinned the
/// builder id, the provenance carries that id, and it is a hosted controller's
/// ([`is_hosted_builder_id`]); otherwise `L1` (signed provenance that names the artifact by
/// digest, from a builder the verifier did not pin to a hardened platform).
pub fn verified_build_level(policy: &Policy, report: &VerificationReport) -> SlsaBuildLevel {
    let found = &report.statement.predicate.run_details.builder.id;
    match &policy.builder_id {
        Some(pinned) if pinned == found && is_hosted_builder_id(found) => SlsaBuildLevel::L3,
        _ => SlsaBuildLevel::L1,
    }
}

/// The default `resourceUri` of an artifact: the package URL
/// `pkg:generic/<name>?checksum=sha256:<hex>`, `name` percent-encoded (all but
/// `A-Z a-z 0-9 . - _ ~`). It names the artifact without a path of the verifying machine.
pub fn default_resource_uri(name: &str, digest: &Sha256Digest) -> String {
    format!(
        "pkg:generic/{}?checksum=sha256:{}",
        percent_encode(name),
        digest.hex()
    )
}

/// `s` with every byte but `A-Z a-z 0-9 . - _ ~` (RFC 3986 unreserved) as `%XX`.
pub(super) fn percent_encode(s: &str) -> String {
    let mut encoded = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}
