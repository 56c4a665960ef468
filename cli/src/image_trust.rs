//! `--image-key` and `--image-builder-id`, shared by `airlock runner` and `airlock run`: the
//! keys whose attestations vouch for a job's image under a profile with `[image_check]
//! require_attestation = true` (docs/images.md, "Checked build images").

use std::path::PathBuf;

use airlock_runner::fetch::image::check::ImageTrust;
use clap::Args;

use crate::exit::{Failure, usage};

/// Flags of checked build images.
#[derive(Debug, Args)]
pub struct ImageTrustArgs {
    /// A public key (SPKI PEM) whose signed provenance vouches for a job's image, under a
    /// sandbox profile with `[image_check] require_attestation = true`; repeatable (key
    /// rotation, several builders). The image's attestation is an OCI referrer of a registry
    /// image (as `airlock push` attaches it) or a `*.intoto.jsonl` beside an image layout
    /// (as `--out` writes it); its subject must be the image's pinned digest.
    #[arg(long = "image-key", value_name = "PUB.pem")]
    image_keys: Vec<PathBuf>,
    /// With --image-key: also require the attestation's `runDetails.builder.id` to be
    /// exactly ID.
    #[arg(long, value_name = "ID", requires = "image_keys")]
    image_builder_id: Option<String>,
}

impl ImageTrustArgs {
    /// The keys, read and parsed; a bad file is a usage error naming the flag.
    pub fn load(&self) -> Result<ImageTrust, Failure> {
        let keys = self
            .image_keys
            .iter()
            .map(|path| {
                airlock_attest::load_verifying_key(path)
                    .map_err(|e| usage(format!("--image-key {}: {e}", path.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(id) = &self.image_builder_id
            && id.trim().is_empty()
        {
            return Err(usage("--image-builder-id is empty"));
        }
        Ok(ImageTrust {
            keys,
            builder_id: self.image_builder_id.clone(),
        })
    }
}
