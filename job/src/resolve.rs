//! Submit-time pinning: a job file may name a git branch/tag (`ref`) or an image tag; the
//! client resolves them to a commit id / manifest digest before submitting, and the spec
//! records both what was asked and what it was pinned to. Jobs themselves only ever carry
//! pinned values.

use std::path::{Path, PathBuf};

use airlock_attest::{GitCommit, Sha256Digest};

use crate::error::JobFileError;
use crate::spec::JobSpec;

/// Resolves names to pins at submit time (network access lives with the caller).
pub trait Resolver {
    /// The commit `git_ref` (a branch or tag) of repository `url` names now.
    fn git_ref(&mut self, url: &str, git_ref: &str) -> Result<GitCommit, String>;
    /// `NAME@sha256:<hex>` for `NAME:TAG`.
    fn image_tag(&mut self, name_with_tag: &str) -> Result<String, String>;
    /// The manifest digest the OCI image layout `dir` (resolved against the job file's
    /// directory) names now.
    fn image_layout(&mut self, dir: &Path) -> Result<Sha256Digest, String>;
}

fn error(file: &Path, field: &str, message: String, hint: &str) -> JobFileError {
    JobFileError {
        file: file.to_path_buf(),
        line: None,
        field: Some(field.to_owned()),
        message,
        hint: Some(hint.to_owned()),
    }
}

/// True if an `[image] ref` names a tag rather than a digest or a layout.
fn is_image_tag(reference: &str) -> bool {
    !reference.contains('@') && !reference.starts_with("oci-layout:")
}

/// Reads a job file, pinning a git `ref` without `commit` and an image tag with `resolver`.
/// Files that are already pinned are parsed exactly as [`JobSpec::from_toml_file`] does.
pub fn from_toml_file_resolving(
    path: &Path,
    resolver: &mut dyn Resolver,
) -> Result<JobSpec, JobFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| JobFileError {
        file: path.to_path_buf(),
        line: None,
        field: None,
        message: format!("cannot read the job file: {e}"),
        hint: Some("pass the path of an existing airlock.toml".into()),
    })?;
    // Anything malformed is reported by the normal parser, with line numbers.
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return JobSpec::from_toml_str(&text).map_err(|e| e.in_file(path));
    };
    let mut changed = false;
    if let Some(toml::Value::Table(source)) = table.get_mut("source")
        && source.get("commit").is_none()
        && let (Some(toml::Value::String(url)), Some(toml::Value::String(git_ref))) =
            (source.get("git"), source.get("ref"))
    {
        if !crate::source::is_git_ref(git_ref) {
            return Err(error(
                path,
                "source.ref",
                format!("ref `{git_ref}` is not a branch or tag name git accepts"),
                "write a branch (`main`) or tag (`v1.2.0`) name",
            ));
        }
        let commit = resolver.git_ref(url, git_ref).map_err(|m| {
            error(
                path,
                "source.ref",
                format!("cannot resolve ref `{git_ref}` of {url}: {m}"),
                "check the repository URL and that the branch or tag exists",
            )
        })?;
        source.insert("commit".into(), toml::Value::String(commit.hex()));
        changed = true;
    }
    if let Some(toml::Value::Table(image)) = table.get_mut("image") {
        changed |= pin_image(image, "ref", "resolved_from", "image.ref", path, resolver)?;
    }
    if let Some(toml::Value::Table(outputs)) = table.get_mut("outputs")
        && let Some(toml::Value::Array(images)) = outputs.get_mut("images")
    {
        for (i, image) in images.iter_mut().enumerate() {
            if let toml::Value::Table(image) = image {
                let field = format!("outputs.images[{i}].base");
                changed |= pin_image(image, "base", "base_resolved_from", &field, path, resolver)?;
            }
        }
    }
    if !changed {
        return JobSpec::from_toml_str(&text).map_err(|e| e.in_file(path));
    }
    let pinned = toml::to_string(&table).map_err(|e| JobFileError {
        file: PathBuf::from(path),
        line: None,
        field: None,
        message: format!("cannot re-encode the pinned job file: {e}"),
        hint: None,
    })?;
    JobSpec::from_toml_str(&pinned).map_err(|e| e.in_file(path))
}

/// Pins `table[key]` when it names an image tag or a layout without digest, recording what
/// was asked under `from_key`. True when it changed the table.
fn pin_image(
    table: &mut toml::Table,
    key: &str,
    from_key: &str,
    field: &str,
    path: &Path,
    resolver: &mut dyn Resolver,
) -> Result<bool, JobFileError> {
    let Some(toml::Value::String(reference)) = table.get(key) else {
        return Ok(false);
    };
    let asked = reference.clone();
    let pinned = if is_image_tag(&asked) {
        resolver.image_tag(&asked).map_err(|m| {
            error(
                path,
                field,
                format!("cannot resolve image tag `{asked}`: {m}"),
                "pin the image by digest (`NAME@sha256:<64 hex>`), or name a tag in an explicit \
                 registry (`HOST[:PORT]/REPOSITORY:TAG`) to have it pinned at submit",
            )
        })?
    } else if let Some(dir) = asked.strip_prefix("oci-layout:")
        && !dir.is_empty()
        && !dir.contains('@')
    {
        // A layout without a digest is pinned like a tag: to the manifest its index names
        // now, so the job file needs no rewriting when the layout is rebuilt.
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let digest = resolver.image_layout(&base.join(dir)).map_err(|m| {
            error(
                path,
                field,
                format!("`{asked}` has no digest and cannot be pinned: {m}"),
                "build the layout first, or pin it: `oci-layout:DIR@sha256:<64 hex>`",
            )
        })?;
        format!("{asked}@{}", digest.prefixed())
    } else {
        return Ok(false);
    };
    table.insert(key.into(), toml::Value::String(pinned));
    table.insert(from_key.into(), toml::Value::String(asked));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceSpec;

    struct Fixed;
    impl Resolver for Fixed {
        fn git_ref(&mut self, _url: &str, git_ref: &str) -> Result<GitCommit, String> {
            assert_eq!(git_ref, "v1");
            Ok(GitCommit::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap())
        }
        fn image_tag(&mut self, name: &str) -> Result<String, String> {
            let (repo, _) = name.rsplit_once(':').unwrap();
            Ok(format!("{repo}@sha256:{}", "ab".repeat(32)))
        }
        fn image_layout(&mut self, dir: &Path) -> Result<Sha256Digest, String> {
            if dir.ends_with("missing") {
                return Err("no index.json".into());
            }
            Ok(Sha256Digest::of(dir.to_string_lossy().as_bytes()))
        }
    }

    #[test]
    fn a_layout_without_a_digest_is_pinned_to_what_its_index_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.toml");
        let file = |image: &str| {
            format!(
                "[job]\nname = \"x\"\n[source]\npath = \".\"\n[image]\nref = \"{image}\"\n\
                 [[steps]]\nrun = \"true\"\n[outputs]\npaths = [\"a\"]\n"
            )
        };
        std::fs::write(&path, file("oci-layout:../base/oci")).unwrap();
        let spec = from_toml_file_resolving(&path, &mut Fixed).unwrap();
        let expected =
            Sha256Digest::of(dir.path().join("../base/oci").to_string_lossy().as_bytes());
        assert_eq!(
            spec.image.reference.to_string(),
            format!("oci-layout:../base/oci@{}", expected.prefixed())
        );
        assert_eq!(
            spec.image.resolved_from.as_deref(),
            Some("oci-layout:../base/oci")
        );
        std::fs::write(&path, file("oci-layout:missing")).unwrap();
        let e = from_toml_file_resolving(&path, &mut Fixed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image.ref") && e.contains("no digest"), "{e}");
    }

    #[test]
    fn an_image_outputs_base_is_pinned_like_the_job_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.toml");
        let file = |base: &str| {
            format!(
                "[job]\nname = \"x\"\n[source]\npath = \".\"\n[image]\nref = \"oci-layout:i\"\n\
                 [[steps]]\nrun = \"true\"\n[[outputs.images]]\nname = \"m\"\nrootfs = \"r\"\n\
                 base = \"{base}\"\n"
            )
        };
        std::fs::write(&path, file("registry.example.com/base:1")).unwrap();
        let spec = from_toml_file_resolving(&path, &mut Fixed).unwrap();
        let image = &spec.outputs.images[0];
        assert_eq!(
            image.base.as_ref().map(ToString::to_string),
            Some(format!(
                "registry.example.com/base@sha256:{}",
                "ab".repeat(32)
            ))
        );
        assert_eq!(
            image.base_resolved_from.as_deref(),
            Some("registry.example.com/base:1")
        );
        std::fs::write(&path, file("oci-layout:missing")).unwrap();
        let e = from_toml_file_resolving(&path, &mut Fixed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outputs.images[0].base"), "{e}");
    }

    #[test]
    fn pins_refs_and_tags_and_records_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock.toml");
        std::fs::write(
            &path,
            r#"
[job]
name = "x"
[source]
git = "https://git.example/app.git"
ref = "v1"
[image]
ref = "127.0.0.1:5000/base:latest"
[[steps]]
run = "true"
[outputs]
paths = ["a"]
"#,
        )
        .unwrap();
        let spec = from_toml_file_resolving(&path, &mut Fixed).unwrap();
        match &spec.source {
            SourceSpec::Git {
                commit, git_ref, ..
            } => {
                assert_eq!(commit.hex(), "0123456789abcdef0123456789abcdef01234567");
                assert_eq!(git_ref.as_deref(), Some("v1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            spec.image.resolved_from.as_deref(),
            Some("127.0.0.1:5000/base:latest")
        );
        assert!(spec.image.reference.to_string().contains("@sha256:abab"));
        // Without a resolver the same file is refused: jobs carry pins only.
        assert!(JobSpec::from_toml_file(&path).is_err());
    }
}
