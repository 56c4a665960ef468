//! Submit-time pinning of an OCI image layout named without a digest
//! (`oci-layout:DIR`): the client reads the layout's `index.json` once, like a registry tag,
//! and the job carries the manifest digest it named then. The runner itself never consults
//! `index.json`: it reads the manifest by the pinned digest and verifies every blob.

use std::path::Path;

use airlock_attest::Sha256Digest;
use oci_spec::image::ImageIndex;

/// The digest of the one image manifest `dir/index.json` names, after checking that the
/// layout holds that manifest with those bytes. The error says what is wrong.
pub fn pin_layout(dir: &Path) -> Result<Sha256Digest, String> {
    let index_path = dir.join("index.json");
    let index =
        ImageIndex::from_file(&index_path).map_err(|e| format!("{}: {e}", index_path.display()))?;
    let [manifest] = index.manifests().as_slice() else {
        return Err(format!(
            "{} names {} manifests; pin one by digest (`oci-layout:DIR@sha256:<64 hex>`)",
            index_path.display(),
            index.manifests().len()
        ));
    };
    let digest = Sha256Digest::from_hex(manifest.digest().digest()).map_err(|e| {
        format!(
            "{}: the manifest digest {} is not sha256: {e}",
            index_path.display(),
            manifest.digest()
        )
    })?;
    let blob = dir.join("blobs/sha256").join(digest.hex());
    let file = std::fs::File::open(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    let (actual, _) =
        airlock_attest::hash_reader(file).map_err(|e| format!("{}: {e}", blob.display()))?;
    if actual != digest {
        return Err(format!(
            "{} hashes to {}, not to the {} index.json names",
            blob.display(),
            actual.prefixed(),
            digest.prefixed()
        ));
    }
    Ok(digest)
}

/// [`pin_layout`], and every blob the manifest names (config and layers) present with the
/// bytes its digest says: what `airlock verify` checks of an image output's layout, so a
/// swapped layer fails verification although the manifest is untouched. The same check as
/// before a push ([`super::registry::LayoutImage::open`]).
pub fn verify_layout(dir: &Path) -> Result<Sha256Digest, String> {
    super::registry::LayoutImage::open(dir)
        .map(|layout| layout.digest())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &Path, manifests: &[&[u8]]) {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
        let mut entries = Vec::new();
        for m in manifests {
            let d = Sha256Digest::of(m);
            std::fs::write(dir.join("blobs/sha256").join(d.hex()), m).expect("write");
            entries.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": d.prefixed(),
                "size": m.len(),
            }));
        }
        let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
        std::fs::write(dir.join("index.json"), index.to_string()).expect("write");
    }

    #[test]
    fn one_verified_manifest_is_pinned_and_anything_else_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let one = tmp.path().join("one");
        layout(&one, &[b"{\"m\":1}"]);
        assert_eq!(
            pin_layout(&one).expect("pinned"),
            Sha256Digest::of(b"{\"m\":1}")
        );
        std::fs::write(
            one.join("blobs/sha256")
                .join(Sha256Digest::of(b"{\"m\":1}").hex()),
            b"tampered",
        )
        .expect("write");
        assert!(
            pin_layout(&one)
                .expect_err("tampered")
                .contains("hashes to")
        );

        let two = tmp.path().join("two");
        layout(&two, &[b"a", b"b"]);
        assert!(pin_layout(&two).expect_err("two").contains("2 manifests"));
        assert!(pin_layout(&tmp.path().join("none")).is_err());
    }
}
