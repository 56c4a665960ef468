//! The image's JSON documents: its config (the base's, extended), its manifest and the
//! layout's index, each serialized canonically (sorted keys, no whitespace) so the same
//! inputs give the same bytes. oci-spec keeps labels and annotations in `HashMap`s, whose
//! order changes from run to run; serializing through a sorted value fixes it.

use std::collections::HashMap;

use airlock_attest::Sha256Digest;
use airlock_job::ImageOutputSpec;
use oci_spec::image::{
    Arch, Config, Descriptor, DescriptorBuilder, Digest, HistoryBuilder, ImageConfiguration,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use serde::Serialize;

use super::ImageOutputError;

/// One layer of the new image, as the manifest and config name it.
#[derive(Debug, Clone)]
pub(crate) struct LayerRef {
    /// The blob.
    pub(crate) digest: Sha256Digest,
    /// Its size.
    pub(crate) size: u64,
    /// Its OCI media type.
    pub(crate) media_type: String,
    /// The uncompressed tar's digest.
    pub(crate) diff_id: Sha256Digest,
}

/// The base an image output extends.
#[derive(Debug, Clone)]
pub(crate) struct BaseDocs {
    /// Its verified config.
    pub(crate) config: ImageConfiguration,
    /// Its layers, base first.
    pub(crate) layers: Vec<LayerRef>,
    /// `org.opencontainers.image.base.name`: the reference the job named.
    pub(crate) name: String,
    /// `org.opencontainers.image.base.digest`: its manifest.
    pub(crate) manifest: Sha256Digest,
}

/// Serializes `value` with every object's keys sorted and no whitespace.
pub(crate) fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ImageOutputError> {
    let value =
        serde_json::to_value(value).map_err(|e| ImageOutputError::Document(e.to_string()))?;
    serde_json::to_vec(&airlock_attest::sorted_keys(value))
        .map_err(|e| ImageOutputError::Document(e.to_string()))
}

fn oci(e: impl std::fmt::Display) -> ImageOutputError {
    ImageOutputError::Document(e.to_string())
}

fn digest(d: &Sha256Digest) -> Result<Digest, ImageOutputError> {
    d.prefixed().parse::<Digest>().map_err(oci)
}

/// `created` and every history entry's time: `SOURCE_DATE_EPOCH` in RFC 3339.
fn created(epoch: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    // An epoch past year 9999 is clamped to it (the git or path source gave it).
    airlock_attest::rfc3339_utc(time).unwrap_or_else(|_| "9999-12-31T23:59:59Z".to_owned())
}

/// The config of the new image: the base's (or an empty one for the host's platform), with
/// the job's settings over it, one more diff id and one more history entry.
pub(crate) fn config(
    spec: &ImageOutputSpec,
    base: Option<&BaseDocs>,
    layer: &LayerRef,
    epoch: u64,
    architecture: &str,
) -> Result<Vec<u8>, ImageOutputError> {
    let mut image = match base {
        Some(b) => b.config.clone(),
        None => {
            let rootfs = RootFsBuilder::default()
                .typ("layers")
                .diff_ids(Vec::<String>::new())
                .build()
                .map_err(oci)?;
            let mut c = ImageConfiguration::default();
            c.set_architecture(Arch::from(architecture));
            c.set_os(Os::Linux);
            c.set_rootfs(rootfs);
            c
        }
    };
    let mut settings = image.config().clone().unwrap_or_else(Config::default);
    if !spec.entrypoint.is_empty() {
        settings.set_entrypoint(Some(spec.entrypoint.clone()));
        // As in a Dockerfile: a new entrypoint drops the base's arguments.
        settings.set_cmd(None);
    }
    if !spec.cmd.is_empty() {
        settings.set_cmd(Some(spec.cmd.clone()));
    }
    if !spec.env.is_empty() {
        let mut env = settings.env().clone().unwrap_or_default();
        for entry in &spec.env {
            let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
            env.push(entry.clone());
        }
        settings.set_env(Some(env));
    }
    if let Some(user) = &spec.user {
        settings.set_user(Some(user.clone()));
    }
    if let Some(dir) = &spec.workdir {
        settings.set_working_dir(Some(dir.clone()));
    }
    if !spec.labels.is_empty() {
        let mut labels = settings.labels().clone().unwrap_or_default();
        labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        settings.set_labels(Some(labels));
    }
    image.set_config(Some(settings));
    image.set_created(Some(created(epoch)));
    image
        .rootfs_mut()
        .diff_ids_mut()
        .push(layer.diff_id.prefixed());
    let entry = HistoryBuilder::default()
        .created(created(epoch))
        .created_by(format!(
            "airlock: [[outputs.images]] {} from /out/{}",
            spec.name, spec.rootfs
        ))
        .build()
        .map_err(oci)?;
    image.history_mut().get_or_insert_with(Vec::new).push(entry);
    canonical_json(&image)
}

fn descriptor(
    media_type: MediaType,
    d: &Sha256Digest,
    size: u64,
) -> Result<Descriptor, ImageOutputError> {
    Ok(Descriptor::new(media_type, size, digest(d)?))
}

/// The manifest: the config, the base's layers, then the new one.
pub(crate) fn manifest(
    config: (&Sha256Digest, u64),
    base: Option<&BaseDocs>,
    layer: &LayerRef,
) -> Result<Vec<u8>, ImageOutputError> {
    let mut layers = Vec::new();
    for l in base.map(|b| b.layers.as_slice()).unwrap_or_default() {
        layers.push(descriptor(
            MediaType::from(l.media_type.as_str()),
            &l.digest,
            l.size,
        )?);
    }
    layers.push(descriptor(
        MediaType::from(layer.media_type.as_str()),
        &layer.digest,
        layer.size,
    )?);
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config.0, config.1)?)
        .layers(layers);
    if let Some(b) = base {
        builder = builder.annotations(HashMap::from([
            (
                "org.opencontainers.image.base.digest".to_owned(),
                b.manifest.prefixed(),
            ),
            (
                "org.opencontainers.image.base.name".to_owned(),
                b.name.clone(),
            ),
        ]));
    }
    canonical_json(&builder.build().map_err(oci)?)
}

/// `index.json`: the one manifest, tagged `latest` for tools that want a name.
pub(crate) fn index(manifest: (&Sha256Digest, u64)) -> Result<Vec<u8>, ImageOutputError> {
    let desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(digest(manifest.0)?)
        .size(manifest.1)
        .annotations(HashMap::from([(
            "org.opencontainers.image.ref.name".to_owned(),
            "latest".to_owned(),
        )]))
        .build()
        .map_err(oci)?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![desc])
        .build()
        .map_err(oci)?;
    canonical_json(&index)
}

/// The OCI media type of a base layer (Docker's names map to OCI's; the bytes are the same).
pub(crate) fn oci_layer_type(compressed: bool) -> &'static str {
    if compressed {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec() -> ImageOutputSpec {
        let mut spec: ImageOutputSpec =
            serde_json::from_str(r#"{"name": "m", "rootfs": "root"}"#).unwrap();
        spec.entrypoint = vec!["/m".into()];
        spec.env = vec!["PATH=/bin".into()];
        spec.labels = BTreeMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
            ("c".to_owned(), "3".to_owned()),
        ]);
        spec
    }

    fn layer() -> LayerRef {
        LayerRef {
            digest: Sha256Digest::of(b"blob"),
            size: 4,
            media_type: oci_layer_type(true).into(),
            diff_id: Sha256Digest::of(b"tar"),
        }
    }

    #[test]
    fn documents_are_canonical_and_carry_the_jobs_settings() {
        let a = config(&spec(), None, &layer(), 1_700_000_000, "amd64").unwrap();
        for _ in 0..8 {
            assert_eq!(
                a,
                config(&spec(), None, &layer(), 1_700_000_000, "amd64").unwrap()
            );
        }
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(
            text.contains(r#""Labels":{"a":"1","b":"2","c":"3"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""created":"2023-11-14T22:13:20Z""#),
            "{text}"
        );
        let parsed = ImageConfiguration::from_reader(a.as_slice()).unwrap();
        assert_eq!(
            parsed.rootfs().diff_ids(),
            &[Sha256Digest::of(b"tar").prefixed()]
        );
        assert_eq!(
            parsed.config().as_ref().unwrap().entrypoint().as_deref(),
            Some(&["/m".to_owned()][..])
        );
        let m = manifest((&Sha256Digest::of(&a), a.len() as u64), None, &layer()).unwrap();
        let parsed = oci_spec::image::ImageManifest::from_reader(m.as_slice()).unwrap();
        assert_eq!(parsed.layers().len(), 1);
        assert!(index((&Sha256Digest::of(&m), m.len() as u64)).is_ok());
    }

    #[test]
    fn the_base_config_is_extended_not_replaced() {
        let base_config = config(&spec(), None, &layer(), 1, "amd64").unwrap();
        let base = BaseDocs {
            config: ImageConfiguration::from_reader(base_config.as_slice()).unwrap(),
            layers: vec![layer()],
            name: "registry.example.com/base@sha256:00".into(),
            manifest: Sha256Digest::of(b"m"),
        };
        let mut child = spec();
        child.entrypoint = Vec::new();
        child.env = vec!["PATH=/usr/bin".into(), "X=1".into()];
        let c = config(&child, Some(&base), &layer(), 2, "amd64").unwrap();
        let parsed = ImageConfiguration::from_reader(c.as_slice()).unwrap();
        let settings = parsed.config().clone().unwrap();
        assert_eq!(
            settings.entrypoint().as_deref(),
            Some(&["/m".to_owned()][..])
        );
        assert_eq!(
            settings.env().clone().unwrap(),
            ["PATH=/usr/bin".to_owned(), "X=1".to_owned()]
        );
        assert_eq!(parsed.rootfs().diff_ids().len(), 2);
        assert_eq!(parsed.history().as_ref().map(Vec::len), Some(2));
        let m = manifest(
            (&Sha256Digest::of(&c), c.len() as u64),
            Some(&base),
            &layer(),
        )
        .unwrap();
        let text = String::from_utf8(m).unwrap();
        assert!(
            text.contains("org.opencontainers.image.base.digest"),
            "{text}"
        );
    }
}
