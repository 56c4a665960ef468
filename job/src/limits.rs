//! Bounds on every quantity a job file sets, checked when it is parsed: a value the sandbox
//! or the controller would refuse later (and retry as an infrastructure failure) is refused
//! here, with its range.

use std::time::Duration;

use crate::error::JobFileError;
use crate::source::SourceSpec;
use crate::spec::JobSpec;
use crate::step::Command;

/// Largest canonical JSON form of a job (what is submitted and recorded in provenance),
/// well below the gRPC message limit.
pub const MAX_SPEC_BYTES: usize = 1 << 20;
/// Most steps in a job.
pub const MAX_STEPS: usize = 100;
/// Largest `run` script or `argv` of one step, in bytes.
pub const MAX_COMMAND_BYTES: usize = 256 << 10;
/// Most `argv` entries of one step.
pub const MAX_ARGV: usize = 4096;
/// Most `env` entries of one step.
pub const MAX_ENV: usize = 256;
/// Largest `env` value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 32 << 10;
/// Most declared inputs.
pub const MAX_INPUTS: usize = 256;
/// Most `[[deps]]` lockfiles.
pub const MAX_DEPS: usize = 16;
/// Longest URL (inputs, git and archive sources).
pub const MAX_URL_BYTES: usize = 2048;
/// Most output patterns.
pub const MAX_OUTPUTS: usize = 256;
/// Longest output pattern, in bytes.
pub const MAX_OUTPUT_PATH_BYTES: usize = 1024;
/// Most runner labels.
pub const MAX_LABELS: usize = 32;
/// Most OIDC audiences.
pub const MAX_AUDIENCES: usize = 16;
/// Longest job timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(48 * 3600);
/// Smallest and largest memory limit.
pub const MEMORY_RANGE: (u64, u64) = (16 << 20, 1 << 40);
/// Smallest and largest `/tmp`.
pub const TMP_RANGE: (u64, u64) = (1 << 20, 1 << 40);
/// Largest process limit.
pub const MAX_PIDS: u64 = 1 << 20;

/// Checks every bound; the error names the field and the allowed range.
pub(crate) fn check(spec: &JobSpec) -> Result<(), JobFileError> {
    let over = |field: String, what: String, hint: String| {
        Err(JobFileError::field(field, what, Some(hint)))
    };
    let timeout = spec.job.timeout.0;
    if timeout > MAX_TIMEOUT {
        return over(
            "job.timeout".into(),
            format!(
                "{} is longer than the longest timeout, 48h",
                spec.job.timeout
            ),
            "split the job, or ask for less".into(),
        );
    }
    if spec.job.labels.len() > MAX_LABELS {
        return over(
            "job.labels".into(),
            format!("{} labels; at most {MAX_LABELS}", spec.job.labels.len()),
            "select runners with fewer labels".into(),
        );
    }
    if spec.steps.len() > MAX_STEPS {
        return over(
            "steps".into(),
            format!("{} steps; at most {MAX_STEPS}", spec.steps.len()),
            "join steps into scripts kept in the source tree".into(),
        );
    }
    for (i, step) in spec.steps.iter().enumerate() {
        let (bytes, field) = match &step.command {
            Command::Shell(run) => (run.len(), "run"),
            Command::Argv(argv) => {
                if argv.len() > MAX_ARGV {
                    return over(
                        format!("steps[{i}].argv"),
                        format!("{} arguments; at most {MAX_ARGV}", argv.len()),
                        "put long argument lists in a file of the source tree".into(),
                    );
                }
                (argv.iter().map(String::len).sum(), "argv")
            }
        };
        if bytes > MAX_COMMAND_BYTES {
            return over(
                format!("steps[{i}].{field}"),
                format!("the command is {bytes} bytes; at most {MAX_COMMAND_BYTES} (256 KiB)"),
                "keep long scripts in the source tree and run them from there".into(),
            );
        }
        if step.env.len() > MAX_ENV {
            return over(
                format!("steps[{i}].env"),
                format!("{} variables; at most {MAX_ENV}", step.env.len()),
                "set fewer variables, or read them from a file of the source tree".into(),
            );
        }
        if let Some((k, v)) = step.env.iter().find(|(_, v)| v.len() > MAX_ENV_VALUE_BYTES) {
            return over(
                format!("steps[{i}].env.{k}"),
                format!(
                    "the value is {} bytes; at most {MAX_ENV_VALUE_BYTES} (32 KiB)",
                    v.len()
                ),
                "keep large values in a file of the source tree".into(),
            );
        }
    }
    if spec.inputs.len() > MAX_INPUTS {
        return over(
            "inputs".into(),
            format!("{} inputs; at most {MAX_INPUTS}", spec.inputs.len()),
            "pack inputs into fewer archives".into(),
        );
    }
    if spec.deps.len() > MAX_DEPS {
        return over(
            "deps".into(),
            format!("{} lockfiles; at most {MAX_DEPS}", spec.deps.len()),
            "build the parts of a monorepo as separate jobs".into(),
        );
    }
    for (i, dep) in spec.deps.iter().enumerate() {
        if dep.lockfile.len() > MAX_OUTPUT_PATH_BYTES {
            return over(
                format!("deps[{i}].lockfile"),
                format!(
                    "the path is {} bytes; at most {MAX_OUTPUT_PATH_BYTES}",
                    dep.lockfile.len()
                ),
                "use a shorter path".into(),
            );
        }
    }
    for (i, input) in spec.inputs.iter().enumerate() {
        if input.url.len() > MAX_URL_BYTES {
            return over(
                format!("inputs[{i}].url"),
                format!(
                    "the URL is {} bytes; at most {MAX_URL_BYTES}",
                    input.url.len()
                ),
                "use a shorter URL".into(),
            );
        }
    }
    let source_url = match &spec.source {
        SourceSpec::Git { url, .. } => Some(("source.git", url)),
        SourceSpec::Archive { url, .. } => Some(("source.archive", url)),
        SourceSpec::Path { .. } => None,
    };
    if let Some((field, url)) = source_url
        && url.len() > MAX_URL_BYTES
    {
        return over(
            field.into(),
            format!("the URL is {} bytes; at most {MAX_URL_BYTES}", url.len()),
            "use a shorter URL".into(),
        );
    }
    if spec.outputs.paths.len() > MAX_OUTPUTS {
        return over(
            "outputs.paths".into(),
            format!(
                "{} patterns; at most {MAX_OUTPUTS}",
                spec.outputs.paths.len()
            ),
            "use globs, e.g. `dist/*`".into(),
        );
    }
    for (i, p) in spec.outputs.paths.iter().enumerate() {
        if p.len() > MAX_OUTPUT_PATH_BYTES {
            return over(
                format!("outputs.paths[{i}]"),
                format!("{} bytes; at most {MAX_OUTPUT_PATH_BYTES}", p.len()),
                "use a shorter path".into(),
            );
        }
    }
    let r = &spec.resources;
    let in_range = |v: u64, (lo, hi): (u64, u64)| (lo..=hi).contains(&v);
    if !in_range(r.memory.0, MEMORY_RANGE) {
        return over(
            "resources.memory".into(),
            format!("{} is outside 16MiB..=1TiB", r.memory),
            "write e.g. `2GiB`".into(),
        );
    }
    if !in_range(r.tmp.0, TMP_RANGE) {
        return over(
            "resources.tmp".into(),
            format!("{} is outside 1MiB..=1TiB", r.tmp),
            "write e.g. `512MiB`; /tmp is a tmpfs of this size".into(),
        );
    }
    if !(1..=MAX_PIDS).contains(&r.pids) {
        return over(
            "resources.pids".into(),
            format!("{} is outside 1..={MAX_PIDS}", r.pids),
            "write e.g. `1024`".into(),
        );
    }
    if let Some(oidc) = &spec.oidc
        && oidc.audiences.len() > MAX_AUDIENCES
    {
        return over(
            "oidc.audiences".into(),
            format!(
                "{} audiences; at most {MAX_AUDIENCES}",
                oidc.audiences.len()
            ),
            "ask for the audiences this job needs".into(),
        );
    }
    let bytes = spec.to_json().len();
    if bytes > MAX_SPEC_BYTES {
        return over(
            "job".into(),
            format!("the job is {bytes} bytes as submitted; at most {MAX_SPEC_BYTES} (1 MiB)"),
            "keep scripts and data in the source tree, not in the job file".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::spec::JobSpec;

    fn job(extra_steps: &str, resources: &str) -> Result<JobSpec, String> {
        let toml = format!(
            "[job]\nname = \"j\"\n[source]\npath = \".\"\n[image]\nref = \"oci-layout:x@sha256:{}\"\n\
             [[steps]]\nrun = \"true\"\n{extra_steps}[outputs]\npaths = [\"a\"]\n[resources]\n{resources}",
            "0".repeat(64)
        );
        JobSpec::from_toml_str(&toml).map_err(|e| e.to_string())
    }

    #[test]
    fn resources_outside_their_range_are_refused_with_the_range() {
        assert!(job("", "").is_ok());
        for (resources, field, range) in [
            ("tmp = \"0\"", "resources.tmp", "1MiB..=1TiB"),
            ("tmp = \"4KiB\"", "resources.tmp", "1MiB..=1TiB"),
            ("memory = \"1MiB\"", "resources.memory", "16MiB..=1TiB"),
            ("memory = \"2TiB\"", "resources.memory", "16MiB..=1TiB"),
            ("pids = 0", "resources.pids", "1..="),
            ("pids = 100000000", "resources.pids", "1..="),
        ] {
            let err = job("", resources).expect_err(resources);
            assert!(
                err.contains(field) && err.contains(range),
                "{resources}: {err}"
            );
        }
    }

    #[test]
    fn counts_and_sizes_are_capped_before_anything_is_sent() {
        let many: String = (0..101)
            .map(|i| format!("[[steps]]\nname = \"s{i}\"\nrun = \"true\"\n"))
            .collect();
        assert!(
            job(&many, "")
                .expect_err("101 steps")
                .contains("at most 100")
        );
        // A 6 MB script (the gRPC limit reproducer) is refused by name, not by the transport.
        let huge = format!(
            "[[steps]]\nname = \"big\"\nrun = \"{}\"\n",
            "x".repeat(6 << 20)
        );
        let err = job(&huge, "").expect_err("6 MB script");
        assert!(
            err.contains("steps[1].run") && err.contains("256 KiB"),
            "{err}"
        );
        let timeout = "[job]\nname = \"j\"\ntimeout = \"100h\"\n";
        let toml = format!(
            "{timeout}[source]\npath = \".\"\n[image]\nref = \"oci-layout:x@sha256:{}\"\n[[steps]]\nrun = \"true\"\n[outputs]\npaths = [\"a\"]\n",
            "0".repeat(64)
        );
        let err = JobSpec::from_toml_str(&toml).expect_err("100h").to_string();
        assert!(err.contains("job.timeout") && err.contains("48h"), "{err}");
    }

    #[test]
    fn outputs_named_like_airlocks_files_are_refused() {
        for name in [
            "clob.intoto.jsonl",
            "clob.sigstore.json",
            "x.airlock-partial",
            "provdir.intoto.jsonl/a",
        ] {
            let toml = format!(
                "[job]\nname = \"clob\"\n[source]\npath = \".\"\n[image]\nref = \"oci-layout:x@sha256:{}\"\n\
                 [[steps]]\nrun = \"true\"\n[outputs]\npaths = [\"{name}\"]\n",
                "0".repeat(64)
            );
            let err = JobSpec::from_toml_str(&toml).expect_err(name).to_string();
            assert!(
                err.contains("outputs.paths[0]") && err.contains("airlock"),
                "{name}: {err}"
            );
        }
    }
}
