//! Image outputs at completion: every declared image's layout is checked among the uploaded
//! files before the job's provenance names its manifest.

use airlock_attest::Sha256Digest;
use airlock_job::JobSpec;
use tokio::io::AsyncReadExt;

use super::Scheduler;
use crate::blobs::store::BlobStore;
use crate::provenance::images::{ImageSubject, MAX_DOCUMENT_BYTES, ReadDocument, verify_layout};
use crate::store::OutputRecord;

impl ReadDocument for BlobStore {
    async fn read(&self, digest: &Sha256Digest) -> Result<Vec<u8>, String> {
        let file = self
            .open_read(digest)
            .await
            .map_err(|e| format!("reading sha256:{digest}: {e}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("reading sha256:{digest}: {e}"))?;
        if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "sha256:{digest} is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        // The store names blobs by digest; a blob changed on disk is not read as another.
        if Sha256Digest::of(&bytes) != *digest {
            return Err(format!("sha256:{digest} changed on disk"));
        }
        Ok(bytes)
    }
}

impl Scheduler {
    /// The subjects of the job's image outputs, or why a layout is not what it must be.
    pub(super) async fn verify_images(
        &self,
        spec: &JobSpec,
        outputs: &[OutputRecord],
    ) -> Result<Vec<ImageSubject>, String> {
        let mut subjects = Vec::new();
        for image in &spec.outputs.images {
            subjects.push(verify_layout(image, outputs, &self.blobs).await?);
        }
        Ok(subjects)
    }
}
