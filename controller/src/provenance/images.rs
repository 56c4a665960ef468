//! The OCI images of a job in its provenance. Each `[[outputs.images]]` is one subject,
//! named as the image, whose digest is the manifest's: the digest registries, `skopeo`
//! and `cosign` name the image by. The controller checks the layout it received before it
//! records that: `index.json` names exactly one manifest, and the manifest, its config and
//! every layer are among the uploaded files under their own digests. The layout's files are
//! stored and fetched like outputs, but they are not subjects of their own.

use airlock_attest::{DigestSet, ResourceDescriptor, Sha256Digest};
use airlock_job::ImageOutputSpec;
use oci_spec::image::{Descriptor, DigestAlgorithm, ImageIndex, ImageManifest, MediaType};

use crate::store::OutputRecord;

/// Largest `index.json` or manifest the controller reads.
pub const MAX_DOCUMENT_BYTES: u64 = 1 << 20;

/// One image output, as the controller verified its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSubject {
    /// The image name (`OUT/<name>/`).
    pub name: String,
    /// The manifest digest.
    pub manifest: Sha256Digest,
}

impl ImageSubject {
    /// The provenance subject.
    pub fn descriptor(&self) -> ResourceDescriptor {
        ResourceDescriptor {
            name: Some(self.name.clone()),
            digest: DigestSet::from([("sha256".to_owned(), self.manifest.hex())]),
            media_type: Some(MediaType::ImageManifest.to_string()),
            ..Default::default()
        }
    }
}

/// The resolved dependency of an image's base, if it has one.
pub fn base_dependency(image: &ImageOutputSpec) -> Option<ResourceDescriptor> {
    let base = image.base.as_ref()?;
    Some(ResourceDescriptor {
        name: Some(format!("images/{}/base", image.name)),
        uri: Some(base.to_string()),
        digest: DigestSet::from([("sha256".to_owned(), base.digest().hex())]),
        ..Default::default()
    })
}

/// Reads an uploaded blob (at most [`MAX_DOCUMENT_BYTES`]) by its digest.
pub trait ReadDocument {
    /// The bytes, or why they cannot be read.
    fn read(&self, digest: &Sha256Digest) -> impl Future<Output = Result<Vec<u8>, String>>;
}

fn recorded<'a>(outputs: &'a [OutputRecord], path: &str) -> Result<&'a OutputRecord, String> {
    outputs
        .iter()
        .find(|o| o.path == path)
        .ok_or_else(|| format!("`{path}` was not uploaded"))
}

fn digest_of(what: &str, desc: &Descriptor) -> Result<Sha256Digest, String> {
    if *desc.digest().algorithm() != DigestAlgorithm::Sha256 {
        return Err(format!("{what} is not named by a sha256 digest"));
    }
    Sha256Digest::from_hex(desc.digest().digest())
        .map_err(|e| format!("{what} digest {}: {e}", desc.digest()))
}

/// The blob `digest` of the layout `name`, uploaded under its own name with that digest and
/// the size the descriptor says.
fn blob<'a>(
    outputs: &'a [OutputRecord],
    name: &str,
    what: &str,
    desc: &Descriptor,
) -> Result<&'a OutputRecord, String> {
    let digest = digest_of(what, desc)?;
    let record = recorded(outputs, &format!("{name}/blobs/sha256/{}", digest.hex()))?;
    if record.sha256 != digest {
        return Err(format!(
            "{what} is stored as sha256:{digest} but its bytes hash to sha256:{}",
            record.sha256
        ));
    }
    if record.size != desc.size() {
        return Err(format!(
            "{what} sha256:{digest} is {} bytes, the descriptor says {}",
            record.size,
            desc.size()
        ));
    }
    Ok(record)
}

/// Verifies the layout of `image` among the uploaded `outputs` and returns its subject.
pub async fn verify_layout(
    image: &ImageOutputSpec,
    outputs: &[OutputRecord],
    reader: &impl ReadDocument,
) -> Result<ImageSubject, String> {
    let name = &image.name;
    let context = |e: String| format!("image `{name}`: {e}");
    recorded(outputs, &format!("{name}/oci-layout")).map_err(context)?;
    let index_record = recorded(outputs, &format!("{name}/index.json")).map_err(context)?;
    let index_bytes = reader.read(&index_record.sha256).await.map_err(context)?;
    let index = ImageIndex::from_reader(index_bytes.as_slice())
        .map_err(|e| context(format!("index.json: {e}")))?;
    let [manifest_desc] = index.manifests().as_slice() else {
        return Err(context(format!(
            "index.json names {} manifests; an image output has exactly one",
            index.manifests().len()
        )));
    };
    if *manifest_desc.media_type() != MediaType::ImageManifest {
        return Err(context(format!(
            "index.json names a {} , not an OCI image manifest",
            manifest_desc.media_type()
        )));
    }
    let manifest_record = blob(outputs, name, "the manifest", manifest_desc).map_err(context)?;
    let manifest_bytes = reader
        .read(&manifest_record.sha256)
        .await
        .map_err(context)?;
    let manifest = ImageManifest::from_reader(manifest_bytes.as_slice())
        .map_err(|e| context(format!("manifest: {e}")))?;
    blob(outputs, name, "the image config", manifest.config()).map_err(context)?;
    for (i, layer) in manifest.layers().iter().enumerate() {
        blob(outputs, name, &format!("layer {}", i + 1), layer).map_err(context)?;
    }
    Ok(ImageSubject {
        name: name.clone(),
        manifest: manifest_record.sha256,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Docs(BTreeMap<Sha256Digest, Vec<u8>>);
    impl ReadDocument for Docs {
        async fn read(&self, digest: &Sha256Digest) -> Result<Vec<u8>, String> {
            self.0
                .get(digest)
                .cloned()
                .ok_or_else(|| "missing".to_owned())
        }
    }

    fn record(path: &str, bytes: &[u8]) -> OutputRecord {
        OutputRecord {
            path: path.to_owned(),
            sha256: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            executable: false,
        }
    }

    fn layout() -> (Vec<OutputRecord>, Docs, Sha256Digest) {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = b"layer bytes";
        let desc = |t: &str, b: &[u8]| {
            format!(
                r#"{{"mediaType":"{t}","digest":"sha256:{}","size":{}}}"#,
                Sha256Digest::of(b).hex(),
                b.len()
            )
        };
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
            desc("application/vnd.oci.image.config.v1+json", config),
            desc("application/vnd.oci.image.layer.v1.tar", layer)
        );
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            desc(
                "application/vnd.oci.image.manifest.v1+json",
                manifest.as_bytes()
            )
        );
        let blob = |b: &[u8]| record(&format!("m/blobs/sha256/{}", Sha256Digest::of(b).hex()), b);
        let outputs = vec![
            record("m/oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            record("m/index.json", index.as_bytes()),
            blob(manifest.as_bytes()),
            blob(config),
            blob(layer),
        ];
        let docs = Docs(BTreeMap::from([
            (Sha256Digest::of(index.as_bytes()), index.into_bytes()),
            (
                Sha256Digest::of(manifest.as_bytes()),
                manifest.clone().into_bytes(),
            ),
        ]));
        (outputs, docs, Sha256Digest::of(manifest.as_bytes()))
    }

    fn image() -> ImageOutputSpec {
        serde_json::from_str(r#"{"name":"m","rootfs":"r"}"#).unwrap()
    }

    #[tokio::test]
    async fn a_complete_layout_gives_the_manifest_digest_as_the_subject() {
        let (outputs, docs, manifest) = layout();
        let subject = verify_layout(&image(), &outputs, &docs).await.unwrap();
        assert_eq!(subject.manifest, manifest);
        assert_eq!(subject.descriptor().name.as_deref(), Some("m"));
    }

    #[tokio::test]
    async fn a_missing_or_misnamed_blob_refuses_the_layout() {
        let (outputs, docs, _) = layout();
        // Drop the layer.
        let short: Vec<_> = outputs[..4].to_vec();
        let e = verify_layout(&image(), &short, &docs).await.unwrap_err();
        assert!(e.contains("was not uploaded"), "{e}");
        // A blob stored under a name that is not its digest.
        let mut wrong = outputs.clone();
        wrong[4].sha256 = Sha256Digest::of(b"other");
        let e = verify_layout(&image(), &wrong, &docs).await.unwrap_err();
        assert!(e.contains("hash to"), "{e}");
        let e = verify_layout(&image(), &outputs[1..], &docs)
            .await
            .unwrap_err();
        assert!(e.contains("oci-layout"), "{e}");
    }
}
