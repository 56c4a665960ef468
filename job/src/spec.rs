//! The whole job: parsed strictly, validated, and serialized canonically.

use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_attest::Sha256Digest;
use serde::{Deserialize, Serialize};

use crate::caches::CacheSpec;
use crate::deps::DepsSpec;
use crate::error::{HINT_SEPARATOR, JobFileError};
use crate::image_output::ImageOutputSpec;
use crate::image_ref::ImageRef;
use crate::source::SourceSpec;
use crate::step::StepSpec;
use crate::trigger::Trigger;
use crate::units::{ByteSize, HumanDuration};

/// Trust profiles a job may name (files in `sandbox-profiles/`).
pub const PROFILES: &[&str] = &["untrusted-pr", "trusted", "release"];

/// A job file, parsed and validated. Its JSON form is what a client submits and
/// what provenance records as `externalParameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// `[job]`
    pub job: JobMeta,
    /// `[source]`
    pub source: SourceSpec,
    /// `[image]`
    pub image: ImageSpec,
    /// `[[inputs]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputSpec>,
    /// `[[deps]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<DepsSpec>,
    /// `[[caches]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<CacheSpec>,
    /// `[[steps]]`
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// `[outputs]`
    #[serde(default)]
    pub outputs: OutputsSpec,
    /// `[resources]`
    #[serde(default)]
    pub resources: ResourcesSpec,
    /// `[oidc]`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
    /// The forge event that queued the job: set by the controller's webhook receiver only
    /// (a job file or an API client that writes it is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

/// `[job]`: identity, trust profile, routing and time limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMeta {
    /// Name for humans and file names: `[A-Za-z0-9._-]`, 1-64 characters.
    pub name: String,
    /// Trust profile; decides the sandbox profile and the provenance builder id.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Runner selector: every label must be carried by the runner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Wall-clock limit for the whole job.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_profile() -> String {
    // The most restrictive profile is the safe default.
    "untrusted-pr".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 60))
}

/// `[image]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The image, pinned by manifest digest.
    #[serde(rename = "ref")]
    pub reference: ImageRef,
    /// The `NAME:TAG` the client resolved to `ref` at submit time, recorded as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_from: Option<String>,
}

/// A declared download, fetched and verified outside the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Mounted at `/inputs/<name>`.
    pub name: String,
    /// Where to fetch it.
    pub url: String,
    /// Expected sha256 of the bytes.
    pub sha256: Sha256Digest,
}

/// `[outputs]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsSpec {
    /// Paths or globs relative to `/out`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `[[outputs.images]]`: OCI images packaged from directories under `/out`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageOutputSpec>,
}

impl OutputsSpec {
    /// True when `path` (relative to `/out`) is a file of one of the `[[outputs.images]]`
    /// layouts, `<name>/...`: stored and fetched like an output, but not a subject.
    pub fn in_image_layout(&self, path: &str) -> bool {
        self.images.iter().any(|i| {
            path.strip_prefix(&i.name)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// `[resources]`: requests, capped by the profile's ceilings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    /// Memory limit.
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// Maximum number of processes/threads.
    #[serde(default = "default_pids")]
    pub pids: u64,
    /// Size of the `/tmp` tmpfs.
    #[serde(default = "default_tmp")]
    pub tmp: ByteSize,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        Self {
            memory: default_memory(),
            pids: default_pids(),
            tmp: default_tmp(),
        }
    }
}

fn default_memory() -> ByteSize {
    ByteSize(2 << 30)
}
fn default_pids() -> u64 {
    1024
}
fn default_tmp() -> ByteSize {
    ByteSize(1 << 30)
}

/// `[oidc]`: audiences the build may request tokens for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSpec {
    /// Allowed `aud` values.
    pub audiences: Vec<String>,
}

impl JobSpec {
    /// Reads and validates a job file. Errors name the file and the field.
    pub fn from_toml_file(path: &Path) -> Result<Self, JobFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| JobFileError {
            file: path.to_path_buf(),
            line: None,
            field: None,
            message: format!("cannot read the job file: {e}"),
            hint: Some("pass the path of an existing airlock.toml".into()),
        })?;
        Self::from_toml_str(&text).map_err(|e| e.in_file(path))
    }

    /// Parses and validates job file text.
    pub fn from_toml_str(text: &str) -> Result<Self, JobFileError> {
        let de = toml::Deserializer::parse(text).map_err(|e| JobFileError {
            file: PathBuf::new(),
            line: line_of(text, e.span()),
            field: None,
            message: format!("not valid TOML: {}", e.message()),
            hint: Some("see docs/job-file.md for the format".into()),
        })?;
        let spec: JobSpec = serde_path_to_error::deserialize(de).map_err(|e| {
            let line = line_of(text, e.inner().span());
            let mut err = serde_error(e, |inner| inner.message().to_string());
            err.line = line;
            err
        })?;
        if spec.trigger.is_some() {
            return Err(JobFileError::field(
                "trigger",
                "is set by the controller for jobs a forge webhook queued; a job file cannot \
                 set it",
                Some("remove the [trigger] table".into()),
            ));
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a spec that arrived as JSON (the API form).
    pub fn from_json(bytes: &[u8]) -> Result<Self, JobFileError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let spec: JobSpec = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| serde_error(e, |inner| inner.to_string()))?;
        de.end().map_err(|e| JobFileError {
            file: PathBuf::new(),
            line: None,
            field: None,
            message: format!("trailing data after the spec: {e}"),
            hint: None,
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// The canonical JSON form (stable field order, sorted maps).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The spec as a JSON value (for provenance `externalParameters`).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The job's wall-clock limit.
    pub fn timeout(&self) -> Duration {
        self.job.timeout.0
    }

    /// The display name of step `index` (0-based).
    pub fn step_name(&self, index: usize) -> String {
        self.steps
            .get(index)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| format!("step-{}", index + 1))
    }

    /// Makes the source path and an `oci-layout:` directory absolute, relative to `base`
    /// (the job file's directory).
    pub fn resolve_relative_paths(&mut self, base: &Path) {
        let absolutize = |p: &str| -> String {
            let joined = base.join(p);
            std::fs::canonicalize(&joined)
                .unwrap_or(joined)
                .to_string_lossy()
                .into_owned()
        };
        if let SourceSpec::Path { path, .. } = &mut self.source {
            *path = absolutize(path);
        }
        if let ImageRef::OciLayout { dir, .. } = &mut self.image.reference {
            *dir = absolutize(dir);
        }
        for image in &mut self.outputs.images {
            if let Some(ImageRef::OciLayout { dir, .. }) = &mut image.base {
                *dir = absolutize(dir);
            }
        }
    }
}

/// The 1-based line of a byte span's start.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> Option<usize> {
    let start = span?.start;
    Some(text.get(..start)?.matches('\n').count() + 1)
}

fn serde_error<E>(
    e: serde_path_to_error::Error<E>,
    message: impl Fn(&E) -> String,
) -> JobFileError {
    let path = e.path().to_string();
    let inner = message(e.inner());
    let (message, own_hint) = match inner.split_once(HINT_SEPARATOR) {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (inner.clone(), None),
    };
    let hint = own_hint.or_else(|| {
        if message.contains("unknown field") {
            Some(
                "remove the field or fix its spelling; see docs/job-file.md for every field".into(),
            )
        } else if message.contains("missing field") {
            Some("add the field; see docs/job-file.md".into())
        } else {
            Some("see docs/job-file.md".into())
        }
    });
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    JobFileError {
        file: PathBuf::new(),
        line: None,
        field: (path != "." && !path.is_empty()).then_some(path),
        message,
        hint,
    }
}
