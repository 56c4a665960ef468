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
