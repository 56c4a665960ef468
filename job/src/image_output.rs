//! `[[outputs.images]]`: OCI images a job ships. The runner packages `rootfs` (a directory
//! the build wrote under `/out`) as one deterministic layer, on top of an optional pinned
//! base image, and writes an OCI image layout to `OUT/<name>/`; the manifest digest is the
//! provenance subject `<name>`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::JobFileError;
use crate::image_ref::ImageRef;
use crate::names::{is_clean_relative, is_name};

/// At most this many images per job.
pub const MAX_IMAGES: usize = 8;

/// How the image's layer is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerCompression {
    /// `application/vnd.oci.image.layer.v1.tar+gzip` (the default: what registries expect).
    #[default]
    Gzip,
    /// `application/vnd.oci.image.layer.v1.tar`.
    None,
}

/// One `[[outputs.images]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageOutputSpec {
    /// The image name: the layout is written to `OUT/<name>/` and the provenance subject is
    /// named `<name>`.
    pub name: String,
    /// A directory under `/out` packaged as the image's one layer.
    pub rootfs: String,
    /// A base image, pinned by manifest digest; its layers come first. From scratch if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<ImageRef>,
    /// What the client resolved to `base` at submit time (a tag, or a layout without digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_resolved_from: Option<String>,
    /// `config.Entrypoint` (replaces the base's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// `config.Cmd` (replaces the base's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// `config.Env` entries `KEY=VALUE`; a key the base sets is replaced, others appended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `config.User` (e.g. `65532:65532`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `config.WorkingDir`, absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `config.Labels` (merged over the base's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How the layer is stored.
    #[serde(default)]
    pub compression: LayerCompression,
}

fn err(i: usize, field: &str, message: String, hint: &str) -> JobFileError {
    JobFileError::field(
        format!("outputs.images[{i}].{field}"),
        message,
        Some(hint.to_owned()),
    )
}

fn is_env_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn bad_text(s: &str) -> bool {
    s.chars().any(|c| c.is_control()) || s.len() > 4096
}

/// Checks every image table and how the images sit beside the file outputs in `/out`.
pub(crate) fn validate(images: &[ImageOutputSpec], paths: &[String]) -> Result<(), JobFileError> {
    if images.len() > MAX_IMAGES {
        return Err(JobFileError::field(
            "outputs.images",
            format!("{} images are declared; at most {MAX_IMAGES}", images.len()),
            Some("split the job".into()),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, image) in images.iter().enumerate() {
        if !is_name(&image.name, 64) || crate::reserved::is_reserved_component(&image.name) {
            return Err(err(
                i,
                "name",
                format!("`{}` is not a valid image name", image.name),
                "use 1-64 characters from [A-Za-z0-9._-], not starting with `.` and not ending \
                 in an airlock suffix",
            ));
        }
        if !names.insert(image.name.as_str()) {
            return Err(err(
                i,
                "name",
                format!("image `{}` is declared twice", image.name),
                "give each image its own name",
            ));
        }
        if !is_clean_relative(&image.rootfs) {
            return Err(err(
                i,
                "rootfs",
                format!(
                    "`{}` must be a directory under /out, relative, without `.` or `..`",
                    image.rootfs
                ),
                "write e.g. `rootfs = \"root\"` for /out/root",
            ));
        }
        let first = image.rootfs.split('/').next().unwrap_or_default();
        if images.iter().any(|other| other.name == first) {
            return Err(err(
                i,
                "rootfs",
                format!(
                    "`{}` lies in `{first}/`, where the image `{first}` is written",
                    image.rootfs
                ),
                "put the rootfs in a directory of its own, e.g. `root`",
            ));
        }
        for (j, p) in paths.iter().enumerate() {
            // A file output inside an image's layout would be written twice.
            if p == &image.name || p.starts_with(&format!("{}/", image.name)) {
                return Err(JobFileError::field(
                    format!("outputs.paths[{j}]"),
                    format!(
                        "`{p}` lies in `{}/`, where the image is written",
                        image.name
                    ),
                    Some("the layout is an output already; drop the path".into()),
                ));
            }
        }
        if let Some(ImageRef::OciLayout { dir, .. }) = &image.base
            && dir.is_empty()
        {
            return Err(err(
                i,
                "base",
                "the layout directory is empty".into(),
                "name a layout",
            ));
        }
        for (field, list) in [("entrypoint", &image.entrypoint), ("cmd", &image.cmd)] {
            if list.len() > 256 || list.iter().any(|a| bad_text(a)) {
                return Err(err(
                    i,
                    field,
                    "arguments must be at most 256, each without control characters".into(),
                    "write e.g. `[\"/usr/local/bin/app\"]`",
                ));
            }
        }
        for (j, entry) in image.env.iter().enumerate() {
            let ok = entry
                .split_once('=')
                .is_some_and(|(k, v)| is_env_key(k) && !bad_text(v));
            if !ok {
                return Err(JobFileError::field(
                    format!("outputs.images[{i}].env[{j}]"),
                    format!("`{entry}` is not `KEY=VALUE`"),
                    Some("keys use [A-Za-z0-9_] and do not start with a digit".into()),
                ));
            }
        }
        if let Some(user) = &image.user
            && (user.is_empty() || bad_text(user) || user.contains(char::is_whitespace))
        {
            return Err(err(
                i,
                "user",
                format!("`{user}` is not a user"),
                "write `NAME`, `UID` or `UID:GID`, e.g. `65532:65532`",
            ));
        }
        if let Some(dir) = &image.workdir
            && (!dir.starts_with('/') || bad_text(dir))
        {
            return Err(err(
                i,
                "workdir",
                format!("`{dir}` is not an absolute path"),
                "write e.g. `/app`",
            ));
        }
        for (k, v) in &image.labels {
            if k.is_empty() || bad_text(k) || bad_text(v) {
                return Err(err(
                    i,
                    "labels",
                    format!("label `{k}` is empty or holds control characters"),
                    "write e.g. `\"org.opencontainers.image.source\" = \"https://...\"`",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::JobSpec;

    fn job(outputs: &str) -> Result<JobSpec, crate::JobFileError> {
        JobSpec::from_toml_str(&format!(
            "[job]\nname = \"j\"\n[source]\npath = \".\"\n[image]\nref = \"oci-layout:i@sha256:{}\"\n\
             [[steps]]\nrun = \"true\"\n{outputs}",
            "ab".repeat(32)
        ))
    }

    #[test]
    fn an_image_alone_is_an_output() {
        let spec = job(
            "[[outputs.images]]\nname = \"m\"\nrootfs = \"root\"\nentrypoint = [\"/m\"]\n\
             env = [\"PATH=/bin\"]\nuser = \"65532:65532\"\nworkdir = \"/\"\ncompression = \"none\"\n",
        )
        .unwrap();
        assert_eq!(spec.outputs.images[0].name, "m");
        assert_eq!(
            spec.outputs.images[0].compression,
            super::LayerCompression::None
        );
    }

    #[test]
    fn bad_image_tables_name_their_field() {
        for (table, field) in [
            ("name = \"../m\"\nrootfs = \"r\"", "outputs.images[0].name"),
            (
                "name = \"m\"\nrootfs = \"/abs\"",
                "outputs.images[0].rootfs",
            ),
            (
                "name = \"m\"\nrootfs = \"m/root\"",
                "outputs.images[0].rootfs",
            ),
            (
                "name = \"m\"\nrootfs = \"r\"\nenv = [\"1X=y\"]",
                "outputs.images[0].env[0]",
            ),
            (
                "name = \"m\"\nrootfs = \"r\"\nworkdir = \"rel\"",
                "outputs.images[0].workdir",
            ),
            (
                "name = \"m\"\nrootfs = \"r\"\nbase = \"debian:12\"",
                "outputs.images[0].base",
            ),
            (
                "name = \"m.intoto.jsonl\"\nrootfs = \"r\"",
                "outputs.images[0].name",
            ),
        ] {
            let e = job(&format!("[[outputs.images]]\n{table}\n")).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{table}: {e}");
        }
        let e =
            job("[outputs]\npaths = [\"m/x\"]\n[[outputs.images]]\nname = \"m\"\nrootfs = \"r\"\n")
                .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("outputs.paths[0]"), "{e}");
        let e = job(
            "[[outputs.images]]\nname = \"m\"\nrootfs = \"r\"\n[[outputs.images]]\nname = \"m\"\nrootfs = \"s\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn a_job_needs_a_file_or_an_image() {
        let e = job("[outputs]\npaths = []\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("outputs.paths"), "{e}");
    }
}
