//! An OCI image layout about to be pushed, checked before anything is sent: its `index.json`
//! names exactly one OCI image manifest, whose bytes hash to the digest named, and every blob
//! that manifest names (config and layers) is in the layout with its digest and size.

use std::io::Read;
use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType, OciLayout};

use super::error::RegistryError;
use crate::fetch::image::ImageError;
use crate::fetch::image::blob::{
    MAX_JSON_BLOB_BYTES, descriptor_digest, open_blob, read_verified_small_blob,
};

/// The one manifest media type pushed: what a layout written by airlock (and most tools)
/// holds, and what every registry accepts.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A blob the manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayoutBlob {
    /// "image config", "layer 2", ...
    pub(crate) what: String,
    /// Its digest.
    pub(crate) digest: Sha256Digest,
    /// Its size in bytes, as the manifest records and the layout holds.
    pub(crate) size: u64,
}

/// A verified image layout: the manifest bytes to push unchanged, and the blobs to upload.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    dir: PathBuf,
    digest: Sha256Digest,
    manifest: Vec<u8>,
    blobs: Vec<LayoutBlob>,
}

impl LayoutImage {
    /// Reads the layout at `dir` and hashes every blob its one manifest names. A missing,
    /// truncated or tampered blob is refused here, before any request is made.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        let layout_err = |path: &Path, reason: String| RegistryError::Layout {
            path: path.to_owned(),
            reason,
        };
        let marker = dir.join("oci-layout");
        let version = read_small(&marker)
            .and_then(|b| OciLayout::from_reader(b.as_slice()).map_err(|e| e.to_string()))
            .map_err(|e| layout_err(&marker, format!("not an OCI image layout: {e}")))?;
        if version.image_layout_version() != "1.0.0" {
            return Err(layout_err(
                &marker,
                format!(
                    "imageLayoutVersion is {:?}; only \"1.0.0\" is known",
                    version.image_layout_version()
                ),
            ));
        }
        let index_path = dir.join("index.json");
        let index = read_small(&index_path)
            .and_then(|b| ImageIndex::from_reader(b.as_slice()).map_err(|e| e.to_string()))
            .map_err(|e| layout_err(&index_path, e))?;
        let [entry] = index.manifests().as_slice() else {
            return Err(layout_err(
                &index_path,
                format!(
                    "names {} manifests; airlock pushes a layout of exactly one image manifest",
                    index.manifests().len()
                ),
            ));
        };
        if *entry.media_type() != MediaType::ImageManifest {
            return Err(layout_err(
                &index_path,
                format!(
                    "names a manifest of media type {:?}; only {OCI_MANIFEST_MEDIA_TYPE} is pushed",
                    entry.media_type().to_string()
                ),
            ));
        }
        let digest = descriptor_digest("the manifest index.json names", entry)?;
        let manifest =
            read_verified_small_blob(dir, "image manifest", &digest, Some(entry.size()))?;
        let parsed = ImageManifest::from_reader(manifest.as_slice()).map_err(|source| {
            ImageError::Parse {
                what: format!("image manifest {}", digest.prefixed()),
                source,
            }
        })?;
        if parsed.schema_version() != 2 {
            return Err(ImageError::SchemaVersion(parsed.schema_version()).into());
        }
        if let Some(t) = parsed.media_type()
            && *t != MediaType::ImageManifest
        {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("image manifest {}", digest.prefixed()),
                media_type: t.to_string(),
                accepted: OCI_MANIFEST_MEDIA_TYPE,
            }
            .into());
        }
        let named: Vec<(String, &Descriptor)> =
            std::iter::once(("image config".to_owned(), parsed.config()))
                .chain(
                    parsed
                        .layers()
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (format!("layer {}", i + 1), d)),
                )
                .collect();
        let mut blobs: Vec<LayoutBlob> = Vec::new();
        for (what, desc) in named {
            let blob_digest = descriptor_digest(&what, desc)?;
            // A blob named twice (the same layer in two places) is uploaded once.
            if blobs.iter().any(|b| b.digest == blob_digest) {
                continue;
            }
            verify_blob(dir, &what, &blob_digest, desc.size())?;
            blobs.push(LayoutBlob {
                what,
                digest: blob_digest,
                size: desc.size(),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            digest,
            manifest,
            blobs,
        })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest's digest: the image's identity, unchanged by the push.
    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }

    /// The manifest's exact bytes.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }

    /// The manifest's descriptor (media type, digest, size): the `subject` of a referrer.
    pub fn descriptor(&self) -> Result<Descriptor, RegistryError> {
        Ok(Descriptor::new(
            MediaType::ImageManifest,
            self.manifest.len() as u64,
            oci_digest(&self.digest)?,
        ))
    }

    /// How many distinct blobs (config and layers) the manifest names.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// The distinct blobs to upload, config first.
    pub(crate) fn blobs(&self) -> &[LayoutBlob] {
        &self.blobs
    }
}

/// `digest` as oci-spec's digest type.
pub(crate) fn oci_digest(digest: &Sha256Digest) -> Result<oci_spec::image::Digest, RegistryError> {
    digest
        .prefixed()
        .parse()
        .map_err(|e: oci_spec::OciSpecError| RegistryError::Manifest {
            what: digest.prefixed(),
            reason: e.to_string(),
        })
}

/// Reads a small local JSON file whole, refusing one over the JSON document limit.
fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BLOB_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_JSON_BLOB_BYTES {
        return Err(format!("larger than {MAX_JSON_BLOB_BYTES} bytes"));
    }
    Ok(bytes)
}

/// Hashes blob `digest` of the layout and checks its size against the descriptor's.
fn verify_blob(dir: &Path, what: &str, digest: &Sha256Digest, size: u64) -> Result<(), ImageError> {
    let (file, len) = open_blob(dir, what, digest)?;
    if len != size {
        return Err(ImageError::SizeMismatch {
            what: what.to_owned(),
            digest: *digest,
            expected: size,
            actual: len,
        });
    }
    let (actual, _) = airlock_attest::hash_reader(file).map_err(|e| {
        ImageError::io(
            "reading",
            crate::fetch::image::blob::blob_path(dir, digest),
            e,
        )
    })?;
    if actual != *digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            expected: *digest,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a layout of one manifest over `config` and `layers`; returns the manifest digest.
    pub(crate) fn write_layout(dir: &Path, config: &[u8], layers: &[&[u8]]) -> Sha256Digest {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |b: &[u8]| {
            let d = Sha256Digest::of(b);
            std::fs::write(blobs.join(d.hex()), b).unwrap();
            d
        };
        let cd = put(config);
        let layer_descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                let d = put(l);
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": d.prefixed(), "size": l.len()})
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cd.prefixed(), "size": config.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        let md = put(&manifest);
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
                {"mediaType": OCI_MANIFEST_MEDIA_TYPE, "digest": md.prefixed(),
                 "size": manifest.len()}]}))
            .unwrap(),
        )
        .unwrap();
        md
    }

    #[test]
    fn a_verified_layout_lists_its_distinct_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        let md = write_layout(tmp.path(), b"{}", &[b"layer-a", b"layer-b", b"layer-a"]);
        let image = LayoutImage::open(tmp.path()).unwrap();
        assert_eq!(image.digest(), md);
        assert_eq!(Sha256Digest::of(image.manifest_bytes()), md);
        let whats: Vec<&str> = image.blobs().iter().map(|b| b.what.as_str()).collect();
        assert_eq!(whats, ["image config", "layer 1", "layer 2"]);
        let desc = image.descriptor().unwrap();
        assert_eq!(desc.digest().to_string(), md.prefixed());
        assert_eq!(desc.size(), image.manifest_bytes().len() as u64);
    }

    #[test]
    fn tampered_missing_and_ambiguous_layouts_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write_layout(tmp.path(), b"{}", &[b"layer-a"]);
        let layer = tmp
            .path()
            .join("blobs/sha256")
            .join(Sha256Digest::of(b"layer-a").hex());
        std::fs::write(&layer, b"layer-A").unwrap();
        let e = LayoutImage::open(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("layer 1") && e.contains("tampered"), "{e}");
        std::fs::write(&layer, b"layer-a-longer").unwrap();
        let e = LayoutImage::open(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("layer 1") && e.contains("bytes"), "{e}");
        std::fs::remove_file(&layer).unwrap();
        let e = LayoutImage::open(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("is not in the image layout"), "{e}");

        let two = tmp.path().join("two");
        write_layout(&two, b"{}", &[]);
        let index = std::fs::read_to_string(two.join("index.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&index).unwrap();
        let entry = v["manifests"][0].clone();
        std::fs::write(
            two.join("index.json"),
            serde_json::json!({"schemaVersion": 2, "manifests": [entry.clone(), entry]})
                .to_string(),
        )
        .unwrap();
        let e = LayoutImage::open(&two).unwrap_err().to_string();
        assert!(e.contains("names 2 manifests"), "{e}");
        assert!(LayoutImage::open(&tmp.path().join("none")).is_err());
    }
}
