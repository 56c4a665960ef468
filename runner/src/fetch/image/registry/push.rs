//! Pushing a verified OCI image layout to a registry unchanged: every blob the registry does
//! not have yet is uploaded (re-verified while it streams), then the manifest is stored with
//! its exact bytes, so the pushed image has the layout's digest.

use airlock_attest::Sha256Digest;

use super::blob_body::BlobBody;
use super::client::RegistryClient;
use super::error::RegistryError;
use super::layout_image::{LayoutImage, OCI_MANIFEST_MEDIA_TYPE};
use super::reference::RegistryRepo;
use super::upload::{blob_exists, put_manifest, upload_blob};
use crate::fetch::http::Transfer;

/// What a push reports while it runs. `index` counts from 1 to `count`, the image's distinct
/// blobs (config first, then layers).
#[derive(Debug, Clone, PartialEq)]
pub enum PushProgress {
    /// The registry has this blob already; it is not uploaded.
    Exists {
        /// Which blob of the count.
        index: usize,
        /// How many distinct blobs the image has.
        count: usize,
        /// Which blob ("image config", "layer 2", ...).
        what: String,
        /// Its digest.
        digest: Sha256Digest,
        /// Its size.
        size: u64,
    },
    /// The blob is being uploaded.
    Uploading {
        /// Which blob of the count.
        index: usize,
        /// How many distinct blobs the image has.
        count: usize,
        /// Which blob.
        what: String,
        /// Its digest.
        digest: Sha256Digest,
        /// Bytes sent so far, total and rate.
        transfer: Transfer,
    },
}

/// A pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The manifest's digest, as in the layout.
    pub digest: Sha256Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry had already.
    pub existing: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
}

/// Pushes `image` to `repo`, under `tag` if given (else by digest only). Blobs are checked
/// with `HEAD` and uploaded monolithically when missing; the manifest goes last, so a
/// registry never holds a manifest whose blobs it lacks.
pub fn push_layout(
    client: &RegistryClient,
    image: &LayoutImage,
    repo: &RegistryRepo,
    tag: Option<&str>,
    progress: &mut dyn FnMut(PushProgress),
) -> Result<PushedImage, RegistryError> {
    let blobs = image.blobs();
    let count = blobs.len();
    let mut pushed = PushedImage {
        digest: image.digest(),
        uploaded: 0,
        existing: 0,
        bytes_uploaded: 0,
    };
    for (i, blob) in blobs.iter().enumerate() {
        let index = i + 1;
        if blob_exists(client, repo, &blob.digest)? {
            progress(PushProgress::Exists {
                index,
                count,
                what: blob.what.clone(),
                digest: blob.digest,
                size: blob.size,
            });
            pushed.existing += 1;
            continue;
        }
        let mut report = |transfer: Transfer| {
            progress(PushProgress::Uploading {
                index,
                count,
                what: blob.what.clone(),
                digest: blob.digest,
                transfer,
            });
        };
        let mut body = BlobBody::open(
            image.dir(),
            &blob.what,
            &blob.digest,
            blob.size,
            &mut report,
        )?;
        let result = upload_blob(client, repo, &blob.digest, &mut body);
        // A blob that changed since the layout was verified is the error to report, not the
        // aborted transfer it caused.
        if let Some(refused) = body.take_refusal() {
            return Err(refused.into());
        }
        result?;
        pushed.uploaded += 1;
        pushed.bytes_uploaded += blob.size;
    }
    let digest = image.digest();
    let reference = tag.map_or_else(|| digest.prefixed(), str::to_owned);
    put_manifest(
        client,
        repo,
        &reference,
        OCI_MANIFEST_MEDIA_TYPE,
        image.manifest_bytes(),
        &digest,
    )?;
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::super::auth::RegistryAuth;
    use super::super::fake_registry;
    use super::super::layout_image::tests::write_layout;
    use super::super::referrer::attach_provenance;
    use super::*;
    use crate::fetch::http::HttpClient;
    use crate::fetch::image::ImageError;

    const SLSA: &str = "https://slsa.dev/provenance/v1";

    #[test]
    fn pushes_through_a_push_scoped_token_and_falls_back_to_the_referrers_tag() {
        let (addr, stored) = fake_registry::start();
        let tmp = tempfile::tempdir().unwrap();
        let digest = write_layout(tmp.path(), b"{\"os\":\"linux\"}", &[b"layer-a", b"layer-b"]);
        let image = LayoutImage::open(tmp.path()).unwrap();
        let repo = RegistryRepo::parse(&format!("{addr}/app")).unwrap();
        let client = RegistryClient::new(HttpClient::new(), RegistryAuth::anonymous());

        let mut events = Vec::new();
        let pushed =
            push_layout(&client, &image, &repo, Some("v1"), &mut |p| events.push(p)).unwrap();
        assert_eq!((pushed.uploaded, pushed.existing), (3, 0));
        assert_eq!(pushed.digest, digest);
        assert!(events.iter().any(|e| matches!(
            e,
            PushProgress::Uploading { index: 3, count: 3, transfer, .. } if transfer.finished
        )));
        {
            let st = stored.lock().unwrap();
            let (media_type, bytes) = &st.manifests["v1"];
            assert_eq!(media_type, OCI_MANIFEST_MEDIA_TYPE);
            assert_eq!(bytes, image.manifest_bytes());
            for blob in image.blobs() {
                assert!(
                    st.blobs.contains_key(&blob.digest.prefixed()),
                    "{}",
                    blob.what
                );
            }
            // One token, for the scope the challenge named; the cached header did the rest.
            assert_eq!(st.scopes, ["repository%3Aapp%3Apull%2Cpush"]);
        }

        let envelope = br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"AA=="}]}"#;
        let subject = image.descriptor().unwrap();
        let attached = attach_provenance(&client, &repo, &subject, envelope, SLSA).unwrap();
        let tag = format!("sha256-{}", digest.hex());
        assert_eq!(attached.fallback_tag.as_deref(), Some(tag.as_str()));
        assert!(attached.index_updated);
        let index: serde_json::Value = {
            let st = stored.lock().unwrap();
            let (media_type, bytes) = &st.manifests[&tag];
            assert_eq!(media_type, "application/vnd.oci.image.index.v1+json");
            assert_eq!(st.blobs[&Sha256Digest::of(envelope).prefixed()], envelope);
            let (_, referrer) = &st.manifests[&attached.referrer.prefixed()];
            let r: serde_json::Value = serde_json::from_slice(referrer).unwrap();
            assert_eq!(r["subject"]["digest"], digest.prefixed());
            serde_json::from_slice(bytes).unwrap()
        };
        assert_eq!(
            index["manifests"][0]["digest"],
            attached.referrer.prefixed()
        );

        // Twice: nothing uploaded, the same referrer, the index unchanged.
        let again = push_layout(&client, &image, &repo, Some("v1"), &mut |_| {}).unwrap();
        assert_eq!((again.uploaded, again.existing), (0, 3));
        let second = attach_provenance(&client, &repo, &subject, envelope, SLSA).unwrap();
        assert_eq!(second.referrer, attached.referrer);
        assert!(!second.index_updated);
        let st = stored.lock().unwrap();
        let after: serde_json::Value = serde_json::from_slice(&st.manifests[&tag].1).unwrap();
        assert_eq!(after, index);
    }

    #[test]
    fn a_blob_changed_after_the_check_is_never_stored_and_no_manifest_follows() {
        let (addr, stored) = fake_registry::start();
        let tmp = tempfile::tempdir().unwrap();
        write_layout(tmp.path(), b"{\"os\":\"linux\"}", &[b"layer-a"]);
        let image = LayoutImage::open(tmp.path()).unwrap();
        // Changed between the verification and the upload, same length.
        let layer = tmp
            .path()
            .join("blobs/sha256")
            .join(Sha256Digest::of(b"layer-a").hex());
        std::fs::write(&layer, b"layer-A").unwrap();
        let repo = RegistryRepo::parse(&format!("{addr}/app")).unwrap();
        let client = RegistryClient::new(HttpClient::new(), RegistryAuth::anonymous());
        let e = push_layout(&client, &image, &repo, Some("v1"), &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, RegistryError::Image(ImageError::DigestMismatch { .. })),
            "{e}"
        );
        let st = stored.lock().unwrap();
        assert!(
            !st.blobs
                .contains_key(&Sha256Digest::of(b"layer-a").prefixed())
        );
        assert!(
            !st.blobs
                .contains_key(&Sha256Digest::of(b"layer-A").prefixed())
        );
        assert!(st.manifests.is_empty());
    }
}
