//! Reading and validating an image's manifest and config, pinned by the manifest digest.

use std::path::Path;

use airlock_attest::Sha256Digest;
use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::blob::{descriptor_digest, read_verified_small_blob};
use super::error::ImageError;

/// Manifest media types accepted: OCI image manifest and Docker image manifest v2 schema 2.
const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const MANIFEST_ACCEPTED: &str = "application/vnd.oci.image.manifest.v1+json, \
                                 application/vnd.docker.distribution.manifest.v2+json";

/// Config media types accepted: OCI image config and Docker container image config.
const CONFIG_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const CONFIG_ACCEPTED: &str =
    "application/vnd.oci.image.config.v1+json, application/vnd.docker.container.image.v1+json";

const LAYER_ACCEPTED: &str = "application/vnd.oci.image.layer.v1.tar, \
                              application/vnd.oci.image.layer.v1.tar+gzip, \
                              application/vnd.docker.image.rootfs.diff.tar, \
                              application/vnd.docker.image.rootfs.diff.tar.gzip";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// A plain tar stream: the blob digest is also the diff id.
    None,
    /// A gzip-compressed tar stream.
    Gzip,
}

/// One layer as the manifest describes it.
#[derive(Debug, Clone)]
pub(crate) struct LayerSpec {
    /// Digest of the blob as stored (compressed, if it is).
    pub(crate) digest: Sha256Digest,
    /// Size of the blob in bytes.
    pub(crate) size: u64,
    /// How the blob is compressed.
    pub(crate) compression: Compression,
    /// Digest of the uncompressed tar stream, from the config's `rootfs.diff_ids`.
    pub(crate) diff_id: Sha256Digest,
}

/// Everything the cache needs from a verified manifest and config.
#[derive(Debug, Clone)]
pub(crate) struct ImageSpec {
    /// Layers, base first.
    pub(crate) layers: Vec<LayerSpec>,
    /// `config.Env`, empty if absent.
    pub(crate) env: Vec<String>,
    /// `config.WorkingDir`, if set and non-empty.
    pub(crate) working_dir: Option<String>,
    /// The whole verified config (an image output built on this image extends it).
    pub(crate) config: ImageConfiguration,
}

/// Loads and validates the manifest stored under `manifest_digest` and the config it names.
/// Both blobs are hashed before they are parsed; `index.json` is never consulted.
pub(crate) fn load(layout: &Path, manifest_digest: &Sha256Digest) -> Result<ImageSpec, ImageError> {
    let bytes = read_verified_small_blob(layout, "manifest", manifest_digest, None)?;
    let manifest =
        ImageManifest::from_reader(bytes.as_slice()).map_err(|source| ImageError::Parse {
            what: format!("manifest sha256:{manifest_digest}"),
            source,
        })?;
    if manifest.schema_version() != 2 {
        return Err(ImageError::SchemaVersion(manifest.schema_version()));
    }
    let media_type = manifest
        .media_type()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if !MANIFEST_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(ImageError::UnsupportedMediaType {
            what: format!("manifest sha256:{manifest_digest}"),
            media_type,
            accepted: MANIFEST_ACCEPTED,
        });
    }

    let config_desc = manifest.config();
    let config_type = config_desc.media_type().to_string();
    if !CONFIG_MEDIA_TYPES.contains(&config_type.as_str()) {
        return Err(ImageError::UnsupportedMediaType {
            what: "image config".to_owned(),
            media_type: config_type,
            accepted: CONFIG_ACCEPTED,
        });
    }
    let config_digest = descriptor_digest("image config", config_desc)?;
    let config_bytes = read_verified_small_blob(
        layout,
        "image config",
        &config_digest,
        Some(config_desc.size()),
    )?;
    let config = ImageConfiguration::from_reader(config_bytes.as_slice()).map_err(|source| {
        ImageError::Parse {
            what: format!("image config sha256:{config_digest}"),
            source,
        }
    })?;
    check_platform(&config)?;

    let rootfs = config.rootfs();
    if rootfs.typ() != "layers" {
        return Err(ImageError::RootfsMismatch {
            reason: format!("rootfs.type is {:?}, not \"layers\"", rootfs.typ()),
        });
    }
    let diff_ids = rootfs.diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::RootfsMismatch {
            reason: format!(
                "the manifest has {} layers but rootfs.diff_ids has {} entries",
                manifest.layers().len(),
                diff_ids.len()
            ),
        });
    }

    let mut layers = Vec::with_capacity(diff_ids.len());
    for (i, (desc, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        let what = format!("layer {}", i + 1);
        let media_type = desc.media_type().to_string();
        let compression = match media_type.as_str() {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Compression::Gzip,
            _ => {
                return Err(ImageError::UnsupportedMediaType {
                    what,
                    media_type,
                    accepted: LAYER_ACCEPTED,
                });
            }
        };
        let digest = descriptor_digest(&what, desc)?;
        let diff_id =
            Sha256Digest::parse_prefixed(diff_id).map_err(|_| ImageError::InvalidDigest {
                what: format!("rootfs.diff_ids[{i}]"),
                value: diff_id.clone(),
            })?;
        if compression == Compression::None && diff_id != digest {
            return Err(ImageError::RootfsMismatch {
                reason: format!(
                    "{what} is an uncompressed tar, so its diff id must equal its digest \
                     sha256:{digest}, but rootfs.diff_ids[{i}] is sha256:{diff_id}"
                ),
            });
        }
        layers.push(LayerSpec {
            digest,
            size: desc.size(),
            compression,
            diff_id,
        });
    }

    let (env, working_dir) = match config.config() {
        Some(c) => (
            c.env().clone().unwrap_or_default(),
            c.working_dir().clone().filter(|d| !d.is_empty()),
        ),
        None => (Vec::new(), None),
    };
    Ok(ImageSpec {
        layers,
        env,
        working_dir,
        config,
    })
}

/// Refuses images for another OS or CPU than this runner's.
fn check_platform(config: &ImageConfiguration) -> Result<(), ImageError> {
    let host = host_architecture();
    let os = config.os().to_string();
    let architecture = config.architecture().to_string();
    if os != "linux" || architecture != host {
        return Err(ImageError::PlatformMismatch {
            os,
            architecture,
            host,
        });
    }
    Ok(())
}

/// This runner's CPU architecture in OCI (GOARCH) spelling.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "loongarch64" => "loong64",
        other => other,
    }
}
