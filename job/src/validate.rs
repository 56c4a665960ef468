//! The checks that hold across a job spec's fields (names, profiles, steps, outputs,
//! audiences, every bound of `limits`), run by every constructor of [`JobSpec`].

use std::collections::BTreeSet;

use crate::error::JobFileError;
use crate::names::{is_clean_relative, is_job_name, is_name};
use crate::spec::{JobSpec, PROFILES};

impl JobSpec {
    /// Checks that hold across fields. Called by every constructor.
    pub fn validate(&self) -> Result<(), JobFileError> {
        if !is_job_name(&self.job.name) {
            return Err(JobFileError::field(
                "job.name",
                format!("`{}` is not a valid job name", self.job.name),
                Some("use 1-64 characters from [A-Za-z0-9._-], not starting with `.`".into()),
            ));
        }
        if !PROFILES.contains(&self.job.profile.as_str()) {
            return Err(JobFileError::field(
                "job.profile",
                format!("unknown profile `{}`", self.job.profile),
                Some(format!("use one of: {}", PROFILES.join(", "))),
            ));
        }
        for (i, label) in self.job.labels.iter().enumerate() {
            if !is_name(label, 63) {
                return Err(JobFileError::field(
                    format!("job.labels[{i}]"),
                    format!("`{label}` is not a valid label"),
                    Some("labels use [A-Za-z0-9._-], 1-63 characters".into()),
                ));
            }
        }
        if self.job.timeout.0.is_zero() {
            return Err(JobFileError::field(
                "job.timeout",
                "the timeout is zero",
                Some("write e.g. `10m`".into()),
            ));
        }
        if self.steps.is_empty() {
            return Err(JobFileError::field(
                "steps",
                "the job has no steps",
                Some("add a `[[steps]]` table with `run = \"...\"`".into()),
            ));
        }
        let mut names = BTreeSet::new();
        for i in 0..self.steps.len() {
            let name = self.step_name(i);
            if !names.insert(name.clone()) {
                return Err(JobFileError::field(
                    format!("steps[{i}].name"),
                    format!("step name `{name}` is used twice"),
                    Some("give each step its own name".into()),
                ));
            }
        }
        let mut input_names = BTreeSet::new();
        for (i, input) in self.inputs.iter().enumerate() {
            if !is_name(&input.name, 64) || !input_names.insert(input.name.as_str()) {
                return Err(JobFileError::field(
                    format!("inputs[{i}].name"),
                    format!("input name `{}` is invalid or repeated", input.name),
                    Some("each input needs a unique name from [A-Za-z0-9._-]".into()),
                ));
            }
        }
        let mut lockfiles = BTreeSet::new();
        for (i, dep) in self.deps.iter().enumerate() {
            if !is_clean_relative(&dep.lockfile) {
                return Err(JobFileError::field(
                    format!("deps[{i}].lockfile"),
                    format!(
                        "`{}` must be a relative path inside the source without `.` or `..`",
                        dep.lockfile
                    ),
                    Some("write e.g. `Cargo.lock` or `web/package-lock.json`".into()),
                ));
            }
            if !lockfiles.insert(dep.lockfile.as_str()) {
                return Err(JobFileError::field(
                    format!("deps[{i}].lockfile"),
                    format!("`{}` is listed twice", dep.lockfile),
                    Some("list each lockfile once".into()),
                ));
            }
        }
        crate::caches::validate(&self.caches)?;
        if self.outputs.paths.is_empty() && self.outputs.images.is_empty() {
            return Err(JobFileError::field(
                "outputs.paths",
                "no outputs are declared",
                Some(
                    "list the files the build writes to /out, e.g. `paths = [\"hello\"]`, or \
                     declare an `[[outputs.images]]`"
                        .into(),
                ),
            ));
        }
        crate::image_output::validate(&self.outputs.images, &self.outputs.paths)?;
        for (i, p) in self.outputs.paths.iter().enumerate() {
            if !is_clean_relative(p) {
                return Err(JobFileError::field(
                    format!("outputs.paths[{i}]"),
                    format!("`{p}` must be a relative path under /out without `.` or `..`"),
                    Some("write e.g. `hello` or `bin/*`".into()),
                ));
            }
            if let Err(e) = globset::Glob::new(p) {
                return Err(JobFileError::field(
                    format!("outputs.paths[{i}]"),
                    format!("bad glob: {e}"),
                    None,
                ));
            }
        }
        for (i, p) in self.outputs.paths.iter().enumerate() {
            if let Some(component) = crate::reserved::reserved_component(p) {
                return Err(JobFileError::field(
                    format!("outputs.paths[{i}]"),
                    format!(
                        "`{component}` is a name airlock writes next to the outputs (its \
                         provenance, bundle or temporary files)"
                    ),
                    Some(format!(
                        "rename the output; names ending in {} are airlock's",
                        crate::reserved::RESERVED_OUTPUT_SUFFIXES.join(", ")
                    )),
                ));
            }
        }
        for (i, p) in self.outputs.paths.iter().enumerate() {
            if crate::reserved::is_sbom_file_name(&self.job.name, p) {
                return Err(JobFileError::field(
                    format!("outputs.paths[{i}]"),
                    format!(
                        "`{p}` is the name of this job's SBOM, which airlock writes next to the outputs"
                    ),
                    Some(
                        "rename the output (an SBOM of the build's own may use any other name)"
                            .to_owned(),
                    ),
                ));
            }
        }
        crate::limits::check(self)?;
        if let Some(trigger) = &self.trigger {
            trigger.validate()?;
            if trigger.is_fork() && self.job.profile != "untrusted-pr" {
                return Err(JobFileError::field(
                    "job.profile",
                    "a pull request from a fork runs as `untrusted-pr`",
                    None,
                ));
            }
        }
        if let Some(oidc) = &self.oidc {
            for (i, aud) in oidc.audiences.iter().enumerate() {
                if aud.is_empty()
                    || aud.len() > 256
                    || aud.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(JobFileError::field(
                        format!("oidc.audiences[{i}]"),
                        "invalid audience",
                        None,
                    ));
                }
            }
        }
        Ok(())
    }
}
