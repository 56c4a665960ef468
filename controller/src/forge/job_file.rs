//! From the job file at the event's commit to the spec that is queued: parsed strictly like
//! any job file, its `[source]` replaced by the repository's clone URL and the exact commit,
//! its profile decided by [`super::trust`], and the event recorded as its `trigger`.

use airlock_job::{ForgeKind, JobSpec, SourceSpec, Trigger};

use super::event::ForgeEvent;
use super::trust::{self, Decision};
use crate::config::ForgeConfig;

/// Largest job file read from a repository.
pub const MAX_JOB_FILE_BYTES: usize = 1 << 20;

/// Why the job file cannot be queued (reported to the forge as an `error` status).
#[derive(Debug, thiserror::Error)]
pub enum JobFileRefused {
    /// Not UTF-8, too large, or not a valid job file.
    #[error("{message} (commit {commit})")]
    Invalid {
        /// The commit.
        commit: String,
        /// What is wrong: the path in the repository, line, field, fix.
        message: String,
    },
    /// The event may not run this job file's profile.
    #[error("{path}: {reason}")]
    Profile {
        /// The path in the repository.
        path: String,
        /// Why.
        reason: trust::Refused,
    },
}

/// The spec to queue for `event` from the job file `bytes`, and the profile decision.
pub fn spec_for(
    forge: &ForgeConfig,
    event: &ForgeEvent,
    delivery: &str,
    bytes: &[u8],
) -> Result<(JobSpec, Decision), JobFileRefused> {
    let path = std::path::Path::new(&forge.job_file);
    let invalid = |message: String| JobFileRefused::Invalid {
        commit: event.commit.hex(),
        message,
    };
    let in_file = |e: airlock_job::JobFileError| invalid(e.in_file(path).to_string());
    if bytes.len() > MAX_JOB_FILE_BYTES {
        return Err(invalid(format!(
            "{}: {} bytes is more than the {MAX_JOB_FILE_BYTES} a job file may have",
            forge.job_file,
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| invalid(format!("{}: is not UTF-8", forge.job_file)))?;
    // Errors are reported against the file as written (its lines), except those about
    // `[source]`, which is replaced: a job file written for `airlock run` names a local path.
    if let Err(e) = JobSpec::from_toml_str(text)
        && !e
            .field
            .as_deref()
            .is_some_and(|f| f == "source" || f.starts_with("source."))
        && !e.message.contains("`source`")
    {
        return Err(in_file(e));
    }
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(format!("{}: {}", forge.job_file, e.message())))?;
    let mut source = toml::Table::new();
    source.insert("git".into(), event.clone_url.clone().into());
    source.insert("commit".into(), event.commit.hex().into());
    table.insert("source".into(), toml::Value::Table(source));
    let rewritten =
        toml::to_string(&table).map_err(|e| invalid(format!("{}: {e}", forge.job_file)))?;
    let mut spec = JobSpec::from_toml_str(&rewritten).map_err(in_file)?;
    let decision = trust::decide(&spec.job.profile, event, forge).map_err(|reason| {
        JobFileRefused::Profile {
            path: forge.job_file.clone(),
            reason,
        }
    })?;
    spec.job.profile.clone_from(&decision.profile);
    spec.source = SourceSpec::Git {
        url: event.clone_url.clone(),
        commit: event.commit,
        git_ref: Some(event.git_ref.clone()),
    };
    spec.trigger = Some(trigger(forge.kind, &forge.name, event, delivery));
    // Re-validate the whole spec as the controller will when it is queued.
    let spec = JobSpec::from_json(&spec.to_json()).map_err(in_file)?;
    Ok((spec, decision))
}

/// The recorded trigger of `event`.
pub fn trigger(kind: ForgeKind, forge: &str, event: &ForgeEvent, delivery: &str) -> Trigger {
    Trigger {
        forge: forge.to_owned(),
        kind,
        event: event.event,
        repository: event.repository.clone(),
        git_ref: event.git_ref.clone(),
        sender: event.sender.clone(),
        delivery: delivery.to_owned(),
        change_request: event.change_request.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_attest::GitCommit;
    use airlock_job::{ChangeRequest, TriggerEvent};

    fn forge() -> ForgeConfig {
        ForgeConfig::example(ForgeKind::Github, "https://api.example")
    }

    fn fork_pr() -> ForgeEvent {
        ForgeEvent {
            event: TriggerEvent::PullRequest,
            repository: "org/app".into(),
            head_repository: "eve/app".into(),
            clone_url: "https://forge.example/eve/app.git".into(),
            commit: GitCommit::from_hex(&"c".repeat(40)).unwrap(),
            git_ref: "refs/heads/evil".into(),
            sender: "eve".into(),
            change_request: Some(ChangeRequest {
                number: 4,
                head_repository: "eve/app".into(),
                fork: true,
            }),
        }
    }

    const FILE: &str = r#"
[job]
name = "hello"
profile = "trusted"

[source]
path = "."

[image]
ref = "registry.example/base@sha256:2222222222222222222222222222222222222222222222222222222222222222"

[[steps]]
run = "true"

[outputs]
paths = ["x"]
"#;

    #[test]
    fn a_fork_pr_becomes_untrusted_at_its_head_commit() {
        let (spec, decision) = spec_for(&forge(), &fork_pr(), "d-1", FILE.as_bytes()).unwrap();
        assert_eq!(spec.job.profile, "untrusted-pr");
        assert!(decision.note.unwrap().contains("`trusted`"));
        assert_eq!(
            spec.source,
            SourceSpec::Git {
                url: "https://forge.example/eve/app.git".into(),
                commit: GitCommit::from_hex(&"c".repeat(40)).unwrap(),
                git_ref: Some("refs/heads/evil".into()),
            }
        );
        let trigger = spec.trigger.unwrap();
        assert_eq!(trigger.delivery, "d-1");
        assert!(trigger.is_fork());
    }

    #[test]
    fn a_job_file_cannot_forge_its_trigger_and_errors_name_the_line() {
        let forged = format!(
            "{FILE}\n[trigger]\nforge = \"gh\"\nkind = \"github\"\nevent = \"tag\"\n\
             repository = \"org/app\"\nref = \"refs/tags/v1\"\nsender = \"x\"\ndelivery = \"x\"\n"
        );
        let err = spec_for(&forge(), &fork_pr(), "d", forged.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("trigger"), "{err}");
        let err = spec_for(&forge(), &fork_pr(), "d", b"[job\nname=1").unwrap_err();
        assert!(err.to_string().starts_with("airlock.toml:1: "), "{err}");
        assert!(err.to_string().contains("(commit cccc"), "{err}");
        let err = spec_for(&forge(), &fork_pr(), "d", &[0xff, 0xfe]).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    #[test]
    fn release_from_a_branch_is_refused() {
        let mut event = fork_pr();
        event.change_request = None;
        event.event = TriggerEvent::Push;
        event.git_ref = "refs/heads/main".into();
        let file = FILE.replace("\"trusted\"", "\"release\"");
        let err = spec_for(&forge(), &event, "d", file.as_bytes()).unwrap_err();
        assert!(matches!(err, JobFileRefused::Profile { .. }), "{err}");
    }
}
