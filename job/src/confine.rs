//! Where a `path` source may be packed from. The job file is attacker-controlled for an
//! untrusted pull request, so the directory it names is confined to the job file's own
//! tree (after resolving symlinks) unless the operator allows another directory, and
//! airlock's own state (keys, databases, runner state) is never packable.

use std::path::{Component, Path, PathBuf};

use crate::error::JobFileError;
use crate::source::SourceSpec;
use crate::spec::JobSpec;

/// The operator's rules for `path` sources.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    /// Directories (besides the job file's own) below which a source may lie
    /// (`--allow-source-dir`).
    pub allowed_dirs: Vec<PathBuf>,
    /// Directories a source may neither lie in nor contain, whatever is allowed: airlock's
    /// home, key and state directories.
    pub forbidden_dirs: Vec<PathBuf>,
}

impl JobSpec {
    /// Checks the `path` source of a job file whose directory is `base` against `policy`
    /// and makes it absolute (canonical, symlinks resolved: what is checked is what is
    /// packed). Other sources are left alone.
    pub fn confine_source(
        &mut self,
        base: &Path,
        policy: &SourcePolicy,
    ) -> Result<(), JobFileError> {
        let SourceSpec::Path { path, .. } = &mut self.source else {
            return Ok(());
        };
        let raw = PathBuf::from(&*path);
        let field = |message: String, hint: &str| {
            JobFileError::field("source.path", message, Some(hint.to_owned()))
        };
        let escapes = raw.is_absolute()
            || raw
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        let allowed: Vec<PathBuf> = policy
            .allowed_dirs
            .iter()
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .collect();
        if escapes && allowed.is_empty() {
            return Err(field(
                format!("`{}` leaves the job file's directory", raw.display()),
                "name a directory inside the job file's directory, e.g. `path = \".\"`; an \
                 operator can allow another one with --allow-source-dir DIR",
            ));
        }
        let base = std::fs::canonicalize(base).map_err(|e| {
            field(
                format!("the job file's directory {}: {e}", base.display()),
                "run from a directory that exists",
            )
        })?;
        let resolved = std::fs::canonicalize(base.join(&raw)).map_err(|e| {
            field(
                format!("`{}`: {e}", raw.display()),
                "name an existing directory",
            )
        })?;
        let inside = std::iter::once(&base)
            .chain(&allowed)
            .any(|root| resolved.starts_with(root));
        if !inside {
            return Err(field(
                format!(
                    "`{}` resolves to {}, outside the job file's directory {}",
                    raw.display(),
                    resolved.display(),
                    base.display()
                ),
                "keep the source inside the job file's directory (a symlink out of it \
                 counts as outside), or allow the directory with --allow-source-dir DIR",
            ));
        }
        for forbidden in &policy.forbidden_dirs {
            let forbidden = std::fs::canonicalize(forbidden).unwrap_or_else(|_| forbidden.clone());
            if resolved.starts_with(&forbidden) || forbidden.starts_with(&resolved) {
                return Err(field(
                    format!(
                        "{} overlaps airlock's own state {} (keys, databases, workspaces)",
                        resolved.display(),
                        forbidden.display()
                    ),
                    "airlock never packs its own state as a source, whatever is allowed; \
                     move the source elsewhere",
                ));
            }
        }
        *path = resolved.to_string_lossy().into_owned();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(path: &str) -> JobSpec {
        let toml = format!(
            "[job]\nname = \"j\"\n[source]\npath = \"{path}\"\n[image]\nref = \"oci-layout:x@sha256:{}\"\n\
             [[steps]]\nrun = \"true\"\n[outputs]\npaths = [\"a\"]\n",
            "0".repeat(64)
        );
        JobSpec::from_toml_str(&toml).expect("parses")
    }

    fn confine(path: &str, base: &Path, policy: &SourcePolicy) -> Result<String, String> {
        let mut spec = spec_with(path);
        spec.confine_source(base, policy)
            .map_err(|e| e.to_string())?;
        match spec.source {
            SourceSpec::Path { path, .. } => Ok(path),
            _ => Err("not a path".into()),
        }
    }

    #[test]
    fn sources_stay_in_the_job_files_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let repo = root.path().join("repo");
        std::fs::create_dir_all(repo.join("src")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("secret")).expect("mkdir");
        std::os::unix::fs::symlink(root.path().join("secret"), repo.join("link")).expect("ln");
        let none = SourcePolicy::default();
        let canonical = std::fs::canonicalize(&repo).expect("canonical");
        assert_eq!(
            confine(".", &repo, &none).expect("."),
            canonical.to_string_lossy()
        );
        assert!(confine("src", &repo, &none).is_ok());
        for bad in ["..", "../secret", "src/../../secret", "/etc", "link"] {
            let err = confine(bad, &repo, &none).expect_err(bad);
            assert!(err.contains("source.path"), "{bad}: {err}");
        }
        // The operator may allow a directory explicitly.
        let allow = SourcePolicy {
            allowed_dirs: vec![root.path().join("secret")],
            ..SourcePolicy::default()
        };
        assert!(confine("../secret", &repo, &allow).is_ok());
        assert!(confine("link", &repo, &allow).is_ok());
    }

    #[test]
    fn airlocks_own_state_is_never_packed() {
        let root = tempfile::tempdir().expect("tempdir");
        let home = root.path().join("home");
        std::fs::create_dir_all(home.join("keys")).expect("mkdir");
        let policy = SourcePolicy {
            allowed_dirs: vec![root.path().to_owned()],
            forbidden_dirs: vec![home.clone()],
        };
        // Inside it, or above it: both refused, even though the root is allowed.
        for bad in ["home/keys", "home", "."] {
            let err = confine(bad, root.path(), &policy).expect_err(bad);
            assert!(err.contains("airlock's own state"), "{bad}: {err}");
        }
    }
}
