//! Pulling an image by digest into the blob cache: index -> platform manifest -> config and
//! layers, every blob verified against its digest while it streams into the cache.

use std::io::{Read, Write};

use airlock_attest::Sha256Digest;
use oci_spec::image::{ImageIndex, ImageManifest};

use super::client::{MAX_DOCUMENT_BYTES, RegistryClient};
use super::error::RegistryError;
use super::reference::RegistryRepo;
use crate::fetch::cache::{BlobCache, BlobPin, CacheError, Fetched};
use crate::fetch::http::Transfer;
use crate::fetch::image::blob::descriptor_digest;
use crate::fetch::image::manifest::host_architecture;

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What a pull reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum PullProgress {
    /// A blob is being downloaded.
    Downloading {
        /// Which blob ("layer 2", "config", ...).
        what: String,
        /// Its digest.
        digest: Sha256Digest,
        /// Bytes so far, total and rate.
        transfer: Transfer,
    },
    /// A blob was already in the cache.
    Cached {
        /// Which blob.
        what: String,
        /// Its digest.
        digest: Sha256Digest,
    },
    /// The pinned digest names an index; this platform manifest was chosen.
    PlatformManifest {
        /// The platform manifest's digest.
        digest: Sha256Digest,
    },
}

/// A pulled image: every blob it needs is in the cache, pinned against eviction.
#[derive(Debug)]
pub struct PulledImage {
    /// The digest the job pinned (an image manifest or an index).
    pub pinned: Sha256Digest,
    /// The platform image manifest (equal to `pinned` unless that is an index).
    pub manifest: Sha256Digest,
    /// Layer digests, base first.
    pub layers: Vec<Sha256Digest>,
    _pins: Vec<BlobPin>,
}

/// Fetches a small document (manifest or index) by digest into the cache, verified.
fn fetch_document(
    client: &RegistryClient,
    cache: &BlobCache,
    repo: &RegistryRepo,
    digest: &Sha256Digest,
    what: &str,
) -> Result<(Vec<u8>, BlobPin), RegistryError> {
    let (_, pin) = cache.get_or_fetch(digest, what, &mut |sink| {
        let (bytes, _) = client
            .manifest(repo, &digest.prefixed())
            .map_err(|e| fetch_err(what, &e))?;
        let actual = Sha256Digest::of(&bytes);
        if actual != *digest {
            return Err(CacheError::DigestMismatch {
                what: what.to_owned(),
                expected: *digest,
                actual,
                bytes: bytes.len() as u64,
            });
        }
        sink.write_all(&bytes).map_err(|e| CacheError::Fetch {
            what: what.to_owned(),
            message: e.to_string(),
        })
    })?;
    let path = cache.path(digest);
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| CacheError::Fetch {
            what: what.to_owned(),
            message: format!("reading {}: {e}", path.display()),
        })?;
    // The cache only holds verified content; check again anyway, it is cheap.
    let actual = Sha256Digest::of(&bytes);
    if actual != *digest {
        return Err(RegistryError::DigestMismatch {
            what: what.to_owned(),
            expected: *digest,
            actual,
        });
    }
    Ok((bytes, pin))
}

fn fetch_err(what: &str, e: &RegistryError) -> CacheError {
    CacheError::Fetch {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match (probe.media_type, probe.manifests) {
        (Some(t), _) => Some(t),
        (None, Some(_)) => Some(INDEX_TYPES[0].to_owned()),
        (None, None) => None,
    }
}

/// Picks the linux/<this arch> manifest out of an index.
fn platform_manifest(
    index_digest: &Sha256Digest,
    bytes: &[u8],
) -> Result<Sha256Digest, RegistryError> {
    let what = format!("image index sha256:{index_digest}");
    let index = ImageIndex::from_reader(bytes).map_err(|e| RegistryError::Manifest {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    let arch = host_architecture();
    for desc in index.manifests() {
        let Some(platform) = desc.platform() else {
            continue;
        };
        if platform.os().to_string() == "linux" && platform.architecture().to_string() == arch {
            return descriptor_digest(&what, desc).map_err(RegistryError::from);
        }
    }
    Err(RegistryError::NoPlatform {
        index: *index_digest,
        arch,
    })
}

/// Pulls the image `repo@digest` into `cache`: every blob is verified while it streams and
/// only verified blobs get a name in the cache. Blobs already cached are not fetched again.
pub fn pull(
    client: &RegistryClient,
    cache: &BlobCache,
    repo: &RegistryRepo,
    digest: &Sha256Digest,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<PulledImage, RegistryError> {
    let mut pins = Vec::new();
    let (mut bytes, pin) = fetch_document(client, cache, repo, digest, "image manifest")?;
    pins.push(pin);
    let mut manifest_digest = *digest;
    if media_type_of(&bytes).is_some_and(|t| INDEX_TYPES.contains(&t.as_str())) {
        manifest_digest = platform_manifest(digest, &bytes)?;
        progress(PullProgress::PlatformManifest {
            digest: manifest_digest,
        });
        let (b, pin) = fetch_document(client, cache, repo, &manifest_digest, "platform manifest")?;
        if media_type_of(&b).is_some_and(|t| INDEX_TYPES.contains(&t.as_str())) {
            return Err(RegistryError::Manifest {
                what: format!("manifest sha256:{manifest_digest}"),
                reason: "an index inside an index is not accepted".into(),
            });
        }
        bytes = b;
        pins.push(pin);
    }
    let manifest =
        ImageManifest::from_reader(bytes.as_slice()).map_err(|e| RegistryError::Manifest {
            what: format!("manifest sha256:{manifest_digest}"),
            reason: e.to_string(),
        })?;
    let mut blobs = vec![("image config".to_owned(), manifest.config().clone())];
    blobs.extend(
        manifest
            .layers()
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("layer {}", i + 1), d.clone())),
    );
    let mut layers = Vec::new();
    for (what, desc) in blobs {
        let blob_digest = descriptor_digest(&what, &desc)?;
        if what != "image config" {
            layers.push(blob_digest);
        }
        let size = desc.size();
        let (fetched, pin) = cache.get_or_fetch(&blob_digest, &what, &mut |sink| {
            let mut report = |transfer: Transfer| {
                progress(PullProgress::Downloading {
                    what: what.clone(),
                    digest: blob_digest,
                    transfer,
                });
            };
            let got = client
                .blob(repo, &blob_digest, size, sink, &mut report)
                .map_err(|e| fetch_err(&what, &e))?;
            if got != size {
                return Err(CacheError::Fetch {
                    what: what.clone(),
                    message: format!("the registry sent {got} bytes, the manifest says {size}"),
                });
            }
            Ok(())
        })?;
        if fetched == Fetched::Hit {
            progress(PullProgress::Cached {
                what,
                digest: blob_digest,
            });
        }
        pins.push(pin);
    }
    Ok(PulledImage {
        pinned: *digest,
        manifest: manifest_digest,
        layers,
        _pins: pins,
    })
}
