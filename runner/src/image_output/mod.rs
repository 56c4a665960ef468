//! `[[outputs.images]]`: packaging a directory the build left in `/out` as an OCI image,
//! outside the sandbox, once every sandbox process is dead.
//!
//! The layout is written to `OUT/<name>.airlock-partial/` and renamed to `OUT/<name>/` when
//! complete; its files are then collected and uploaded like any output, and the controller
//! derives the image's provenance subject (the manifest digest) from the bytes it received.

mod base;
mod document;
mod layer;

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use airlock_job::ImageOutputSpec;

pub use base::BaseSource;
use document::LayerRef;
use layer::{LayerRules, write_layer};

use crate::profile::ImagePolicy;

/// Why an image output could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum ImageOutputError {
    /// Something in the rootfs is not allowed in an image (the build's fault).
    #[error("`{path}` refused: {reason}")]
    Refused {
        /// Path relative to the rootfs (empty: the rootfs itself).
        path: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The base image is unusable (the job's fault: it named it).
    #[error("base image: {0}")]
    Base(String),
    /// A JSON document could not be built (a bug).
    #[error("building the image documents: {0}")]
    Document(String),
    /// The runner could not read or write (the platform's fault).
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl ImageOutputError {
    pub(crate) fn refused(path: &str, reason: &str) -> Self {
        Self::Refused {
            path: path.to_owned(),
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the job, not the platform, is to blame.
    pub fn is_build_failure(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::Base(_))
    }
}

/// Everything one image output needs.
#[derive(Debug, Clone, Copy)]
pub struct ImageRequest<'a> {
    /// The job's `/out` on the host.
    pub out: &'a Path,
    /// The `[[outputs.images]]` table.
    pub spec: &'a ImageOutputSpec,
    /// The verified base, if the table names one.
    pub base: Option<&'a BaseSource>,
    /// `SOURCE_DATE_EPOCH`: every mtime and the config's `created`.
    pub epoch: u64,
    /// What the profile allows in a rootfs.
    pub policy: ImagePolicy,
    /// Most bytes of rootfs content.
    pub max_bytes: u64,
}

/// A finished image layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagedImage {
    /// `OUT/<name>`.
    pub dir: PathBuf,
    /// The manifest digest: the provenance subject.
    pub manifest: Sha256Digest,
    /// Every layer digest, base first.
    pub layers: Vec<Sha256Digest>,
}

/// Packages one image output into `OUT/<name>/`.
pub fn package(req: ImageRequest<'_>) -> Result<PackagedImage, ImageOutputError> {
    let name = &req.spec.name;
    let dest = req.out.join(name);
    let staging = req.out.join(format!("{name}.airlock-partial"));
    for (path, what) in [
        (&dest, "the image layout"),
        (&staging, "its staging directory"),
    ] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(ImageOutputError::refused(
                "",
                &format!(
                    "the build wrote /out/{}, where airlock writes {what}; leave it to airlock",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
    }
    let rootfs = real_dir_under(req.out, &req.spec.rootfs)?;
    let blobs = staging.join("blobs").join("sha256");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&blobs)
        .map_err(|e| ImageOutputError::io("creating", &blobs, e))?;

    let base = match req.base {
        Some(b) => Some(b.copy_into(&blobs)?),
        None => None,
    };
    let tmp = blobs.join(".layer");
    let blob = write_layer(
        &rootfs,
        &tmp,
        LayerRules {
            epoch: req.epoch,
            compression: req.spec.compression,
            policy: req.policy,
            max_bytes: req.max_bytes,
        },
    )?;
    let layer_path = blobs.join(blob.digest.hex());
    fs::rename(&blob.file, &layer_path)
        .map_err(|e| ImageOutputError::io("naming", &layer_path, e))?;
    let layer = LayerRef {
        digest: blob.digest,
        size: blob.size,
        media_type: blob.media_type.to_owned(),
        diff_id: blob.diff_id,
    };
    let arch = crate::fetch::image::manifest::host_architecture();
    let config = document::config(req.spec, base.as_ref(), &layer, req.epoch, arch)?;
    let config_digest = write_blob(&blobs, &config)?;
    let manifest =
        document::manifest((&config_digest, config.len() as u64), base.as_ref(), &layer)?;
    let manifest_digest = write_blob(&blobs, &manifest)?;
    let index = document::index((&manifest_digest, manifest.len() as u64))?;
    write_file(&staging.join("index.json"), &index)?;
    write_file(
        &staging.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    fs::rename(&staging, &dest).map_err(|e| ImageOutputError::io("naming", &dest, e))?;
    let mut layers: Vec<Sha256Digest> = base
        .map(|b| b.layers.into_iter().map(|l| l.digest).collect())
        .unwrap_or_default();
    layers.push(layer.digest);
    Ok(PackagedImage {
        dir: dest,
        manifest: manifest_digest,
        layers,
    })
}

/// `out/rel` when every component is a real directory (a build could have made one a
/// symlink to a host path).
fn real_dir_under(out: &Path, rel: &str) -> Result<PathBuf, ImageOutputError> {
    let mut path = out.to_path_buf();
    for part in rel.split('/') {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ImageOutputError::refused(
                    "",
                    &format!("/out/{rel} is not a directory (a symlink or a file is in the way)"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageOutputError::refused(
                    "",
                    &format!("the build did not create the rootfs /out/{rel}"),
                ));
            }
            Err(e) => return Err(ImageOutputError::io("inspecting", &path, e)),
        }
    }
    Ok(path)
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<Sha256Digest, ImageOutputError> {
    let digest = Sha256Digest::of(bytes);
    write_file(&blobs.join(digest.hex()), bytes)?;
    Ok(digest)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ImageOutputError> {
    fs::write(path, bytes).map_err(|e| ImageOutputError::io("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ImageOutputSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "rootfs": "root", "entrypoint": ["/bin/m"]
        }))
        .unwrap()
    }

    fn request<'a>(out: &'a Path, spec: &'a ImageOutputSpec) -> ImageRequest<'a> {
        ImageRequest {
            out,
            spec,
            base: None,
            epoch: 315_532_800,
            policy: ImagePolicy::default(),
            max_bytes: 1 << 30,
        }
    }

    #[test]
    fn a_layout_is_written_and_the_same_rootfs_gives_the_same_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut digests = Vec::new();
        for run in ["a", "b"] {
            let out = dir.path().join(run);
            fs::create_dir_all(out.join("root/bin")).unwrap();
            fs::write(out.join("root/bin/m"), b"m").unwrap();
            let s = spec("m");
            let image = package(request(&out, &s)).unwrap();
            let index: serde_json::Value =
                serde_json::from_slice(&fs::read(out.join("m/index.json")).unwrap()).unwrap();
            assert_eq!(
                index["manifests"][0]["digest"],
                serde_json::json!(image.manifest.prefixed())
            );
            let manifest = fs::read(out.join("m/blobs/sha256").join(image.manifest.hex())).unwrap();
            assert_eq!(Sha256Digest::of(&manifest), image.manifest);
            assert!(!out.join("m.airlock-partial").exists());
            digests.push(image.manifest);
        }
        assert_eq!(digests[0], digests[1]);
    }

    #[test]
    fn the_build_cannot_take_the_layouts_place_or_point_the_rootfs_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        fs::create_dir_all(out.join("root")).unwrap();
        fs::create_dir_all(out.join("m")).unwrap();
        let s = spec("m");
        let e = package(request(out, &s)).unwrap_err();
        assert!(
            e.is_build_failure() && e.to_string().contains("/out/m"),
            "{e}"
        );

        let s = spec("n");
        fs::remove_dir(out.join("root")).unwrap();
        std::os::unix::fs::symlink("/etc", out.join("root")).unwrap();
        let e = package(request(out, &s)).unwrap_err();
        assert!(
            e.is_build_failure() && e.to_string().contains("not a directory"),
            "{e}"
        );
        assert!(!out.join("n").exists());
    }
}
