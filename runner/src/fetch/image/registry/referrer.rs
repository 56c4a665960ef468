//! Attaching a DSSE envelope (an image's signed provenance) as an OCI 1.1 referrer: an image
//! manifest of `artifactType` DSSE with the empty config, one layer holding the envelope's
//! bytes, and the image manifest as its `subject`. A registry without the referrers API (its
//! answer has no `OCI-Subject` header) gets the distribution spec's referrers tag schema
//! instead: an image index under the tag `sha256-<subject hex>` that lists the referrers.
//!
//! Every document is built from oci-spec's types and written as canonical JSON (sorted keys,
//! no timestamps), so attaching the same envelope twice yields the same digests.

use std::collections::HashMap;

use airlock_attest::Sha256Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, ImageManifestBuilder, MediaType};
use serde::Serialize;

use super::client::{BytesBody, RegistryClient};
use super::error::RegistryError;
use super::layout_image::{OCI_MANIFEST_MEDIA_TYPE, oci_digest};
use super::reference::RegistryRepo;
use super::upload::{blob_exists, put_manifest, upload_blob};

/// The media type of a DSSE envelope: the referrer's `artifactType` and its layer's type.
pub const DSSE_ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// The annotation naming the in-toto predicate type of the attached statement.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";

/// The OCI image index media type.
const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The OCI empty descriptor's content (`application/vnd.oci.empty.v1+json`): a referrer
/// has no config of its own.
const EMPTY_JSON: &[u8] = b"{}";

/// What attaching did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedProvenance {
    /// The referrer manifest's digest.
    pub referrer: Sha256Digest,
    /// The referrers tag (`sha256-<subject hex>`) when the registry lacks the referrers API
    /// and the tag schema was used; `None` when the registry indexed the subject itself.
    pub fallback_tag: Option<String>,
    /// With the tag schema: false if the index listed the referrer already (nothing stored).
    pub index_updated: bool,
}

/// A referrer manifest, ready to push.
#[derive(Debug, Clone)]
pub(crate) struct Referrer {
    /// Its canonical JSON.
    pub(crate) bytes: Vec<u8>,
    /// The digest of `bytes`.
    pub(crate) digest: Sha256Digest,
    /// Its descriptor as a referrers list carries it: with `artifactType` and annotations.
    pub(crate) descriptor: Descriptor,
}

fn manifest_err(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Manifest {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// Serializes with sorted object keys: oci-spec keeps annotations in a `HashMap`, whose
/// order would otherwise change the bytes (and the digest) from one run to the next.
fn canonical_json(what: &str, value: &impl Serialize) -> Result<Vec<u8>, RegistryError> {
    let value = serde_json::to_value(value).map_err(|e| manifest_err(what, e))?;
    serde_json::to_vec(&value).map_err(|e| manifest_err(what, e))
}

fn annotations(predicate_type: &str) -> HashMap<String, String> {
    HashMap::from([(
        PREDICATE_TYPE_ANNOTATION.to_owned(),
        predicate_type.to_owned(),
    )])
}

/// The OCI empty descriptor.
fn empty_descriptor() -> Result<Descriptor, RegistryError> {
    Ok(Descriptor::new(
        MediaType::EmptyJSON,
        EMPTY_JSON.len() as u64,
        oci_digest(&Sha256Digest::of(EMPTY_JSON))?,
    ))
}

/// Builds the referrer manifest that attaches `envelope` (a DSSE envelope's JSON bytes, of
/// an in-toto statement with `predicate_type`) to the manifest `subject` describes.
pub(crate) fn referrer_manifest(
    subject: &Descriptor,
    envelope: &[u8],
    predicate_type: &str,
) -> Result<Referrer, RegistryError> {
    let what = "the provenance referrer manifest";
    // The subject is named by media type, digest and size only, as the spec shows it.
    let subject = Descriptor::new(
        subject.media_type().clone(),
        subject.size(),
        subject.digest().clone(),
    );
    let layer = Descriptor::new(
        MediaType::Other(DSSE_ENVELOPE_MEDIA_TYPE.to_owned()),
        envelope.len() as u64,
        oci_digest(&Sha256Digest::of(envelope))?,
    );
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::Other(DSSE_ENVELOPE_MEDIA_TYPE.to_owned()))
        .config(empty_descriptor()?)
        .layers(vec![layer])
        .subject(subject)
        .annotations(annotations(predicate_type))
        .build()
        .map_err(|e| manifest_err(what, e))?;
    let bytes = canonical_json(what, &manifest)?;
    let digest = Sha256Digest::of(&bytes);
    let mut descriptor = Descriptor::new(
        MediaType::ImageManifest,
        bytes.len() as u64,
        oci_digest(&digest)?,
    );
    descriptor.set_artifact_type(Some(MediaType::Other(DSSE_ENVELOPE_MEDIA_TYPE.to_owned())));
    descriptor.set_annotations(Some(annotations(predicate_type)));
    Ok(Referrer {
        bytes,
        digest,
        descriptor,
    })
}

/// The referrers tag of the tag schema: `sha256-<hex>` for subject `sha256:<hex>`.
pub fn referrers_tag(subject: &Sha256Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The referrers index with `referrer` listed: a new index if there was none (`existing` is
/// `None`), else `existing` with the descriptor appended and everything else kept. `None`
/// if `existing` lists the referrer already. An existing document that is not an image index
/// is refused, never overwritten.
pub(crate) fn add_to_referrers_index(
    existing: Option<&[u8]>,
    referrer: &Descriptor,
) -> Result<Option<Vec<u8>>, RegistryError> {
    let what = "the referrers index";
    let Some(existing) = existing else {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![referrer.clone()])
            .build()
            .map_err(|e| manifest_err(what, e))?;
        return canonical_json(what, &index).map(Some);
    };
    // Checked as an index first; then edited as plain JSON, so that fields oci-spec does not
    // model (another tool's) survive.
    let index = ImageIndex::from_reader(existing).map_err(|e| {
        manifest_err(
            what,
            format!("the tag holds something that is not an OCI image index ({e}); refusing to overwrite it"),
        )
    })?;
    if index
        .manifests()
        .iter()
        .any(|d| d.digest() == referrer.digest())
    {
        return Ok(None);
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(existing).map_err(|e| manifest_err(what, e))?;
    let entry = serde_json::to_value(referrer).map_err(|e| manifest_err(what, e))?;
    value
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| manifest_err(what, "it has no manifests list"))?
        .push(entry);
    serde_json::to_vec(&value)
        .map(Some)
        .map_err(|e| manifest_err(what, e))
}

/// Attaches `envelope` to the manifest `subject` describes in `repo`: uploads the empty
/// config and the envelope blob, stores the referrer manifest by its digest and, if the
/// registry does not index subjects itself, lists the referrer in the referrers tag.
pub fn attach_provenance(
    client: &RegistryClient,
    repo: &RegistryRepo,
    subject: &Descriptor,
    envelope: &[u8],
    predicate_type: &str,
) -> Result<AttachedProvenance, RegistryError> {
    let referrer = referrer_manifest(subject, envelope, predicate_type)?;
    for bytes in [EMPTY_JSON, envelope] {
        let digest = Sha256Digest::of(bytes);
        if !blob_exists(client, repo, &digest)? {
            upload_blob(client, repo, &digest, &mut BytesBody(bytes))?;
        }
    }
    let stored = put_manifest(
        client,
        repo,
        &referrer.digest.prefixed(),
        OCI_MANIFEST_MEDIA_TYPE,
        &referrer.bytes,
        &referrer.digest,
    )?;
    let subject_digest = Sha256Digest::parse_prefixed(subject.digest().as_ref())
        .map_err(|e| manifest_err("the referrer's subject", e))?;
    if stored
        .oci_subject
        .as_deref()
        .is_some_and(|s| Sha256Digest::parse_prefixed(s.trim()).is_ok_and(|d| d == subject_digest))
    {
        return Ok(AttachedProvenance {
            referrer: referrer.digest,
            fallback_tag: None,
            index_updated: false,
        });
    }
    let tag = referrers_tag(&subject_digest);
    let existing = match client.manifest(repo, &tag) {
        Ok((bytes, media_type)) => {
            if !media_type.is_empty() && media_type != OCI_INDEX_MEDIA_TYPE {
                return Err(manifest_err(
                    &format!("the referrers tag {repo}:{tag}"),
                    format!(
                        "it holds a {media_type:?} document, not an OCI image index; refusing to overwrite it"
                    ),
                ));
            }
            Some(bytes)
        }
        Err(RegistryError::Status { status: 404, .. }) => None,
        Err(e) => return Err(e),
    };
    let updated = add_to_referrers_index(existing.as_deref(), &referrer.descriptor)?;
    if let Some(bytes) = &updated {
        put_manifest(
            client,
            repo,
            &tag,
            OCI_INDEX_MEDIA_TYPE,
            bytes,
            &Sha256Digest::of(bytes),
        )?;
    }
    Ok(AttachedProvenance {
        referrer: referrer.digest,
        fallback_tag: Some(tag),
        index_updated: updated.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Descriptor {
        let d = Sha256Digest::of(b"image manifest");
        let mut desc = Descriptor::new(MediaType::ImageManifest, 14, oci_digest(&d).unwrap());
        // Anything but media type, digest and size is dropped from the subject.
        desc.set_annotations(Some(HashMap::from([("x".to_owned(), "y".to_owned())])));
        desc
    }

    const SLSA: &str = "https://slsa.dev/provenance/v1";

    #[test]
    fn the_referrer_manifest_is_the_oci_artifact_shape_and_deterministic() {
        let envelope =
            br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#;
        let r = referrer_manifest(&subject(), envelope, SLSA).unwrap();
        assert_eq!(r.digest, Sha256Digest::of(&r.bytes));
        let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
        let sd = Sha256Digest::of(b"image manifest").prefixed();
        let ed = Sha256Digest::of(envelope).prefixed();
        assert_eq!(
            v,
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.dsse.envelope.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2
                },
                "layers": [{
                    "mediaType": "application/vnd.dsse.envelope.v1+json",
                    "digest": ed,
                    "size": envelope.len()
                }],
                "subject": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sd,
                    "size": 14
                },
                "annotations": {"in-toto.io/predicate-type": SLSA}
            })
        );
        // Sorted keys, no timestamps: the same input gives the same bytes.
        let text = String::from_utf8(r.bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"annotations":{"in-toto.io/predicate-type":"#),
            "{text}"
        );
        assert!(!text.contains("created"));
        for _ in 0..5 {
            assert_eq!(
                referrer_manifest(&subject(), envelope, SLSA).unwrap().bytes,
                r.bytes
            );
        }
        let d: serde_json::Value = serde_json::to_value(&r.descriptor).unwrap();
        assert_eq!(d["digest"], r.digest.prefixed());
        assert_eq!(d["size"], r.bytes.len());
        assert_eq!(d["artifactType"], DSSE_ENVELOPE_MEDIA_TYPE);
        assert_eq!(d["annotations"][PREDICATE_TYPE_ANNOTATION], SLSA);
        assert_eq!(
            referrers_tag(&Sha256Digest::of(b"image manifest")),
            format!("sha256-{}", Sha256Digest::of(b"image manifest").hex())
        );
    }

    #[test]
    fn the_referrers_index_gains_one_entry_once_and_keeps_others() {
        let a = referrer_manifest(&subject(), b"envelope a", SLSA).unwrap();
        let b = referrer_manifest(&subject(), b"envelope b", SLSA).unwrap();

        let new = add_to_referrers_index(None, &a.descriptor)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&new).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], OCI_INDEX_MEDIA_TYPE);
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(v["manifests"][0]["digest"], a.digest.prefixed());
        assert_eq!(v["manifests"][0]["artifactType"], DSSE_ENVELOPE_MEDIA_TYPE);
        assert_eq!(
            add_to_referrers_index(None, &a.descriptor)
                .unwrap()
                .unwrap(),
            new,
            "deterministic"
        );

        // Listed already: nothing to store.
        assert_eq!(
            add_to_referrers_index(Some(&new), &a.descriptor).unwrap(),
            None
        );

        // Another tool's entry and fields survive; ours is appended.
        let mut other: serde_json::Value = serde_json::from_slice(&new).unwrap();
        other["manifests"][0]["annotations"] = serde_json::json!({"tool": "x"});
        other["x-extra"] = serde_json::json!(true);
        let other = serde_json::to_vec(&other).unwrap();
        let both = add_to_referrers_index(Some(&other), &b.descriptor)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&both).unwrap();
        let list = v["manifests"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["annotations"]["tool"], "x");
        assert_eq!(list[1]["digest"], b.digest.prefixed());
        assert_eq!(v["x-extra"], true);

        // Something else under the tag is never overwritten.
        let e = add_to_referrers_index(Some(b"{\"schemaVersion\":2,\"config\":{}}"), &a.descriptor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an OCI image index"), "{e}");
    }
}
