//! Building a [`JobTokenContext`] from the controller's record of a job: the submitted,
//! validated [`JobSpec`] plus what only the control plane knows (lease, state, deadline).

use std::time::SystemTime;

use airlock_attest::Sha256Digest;
use airlock_job::{JobSpec, Trigger, TriggerEvent};

use super::mint::JobTokenContext;
use super::subject::{SourceIdentity, SourceRef, SubjectError};

/// What the control plane knows about a job besides its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFacts {
    /// The job id.
    pub job_id: String,
    /// The runner holding the job's lease.
    pub runner_id: String,
    /// The builder id the job's provenance names.
    pub builder_id: String,
    /// Whether the job's sandbox profile allows build tokens (`build_tokens`).
    pub profile_allows_tokens: bool,
    /// A branch, tag or pull request the control plane verified (not the job file's `ref`).
    pub verified_ref: Option<SourceRef>,
    /// sha256 of the job definition as stored.
    pub job_definition_sha256: Sha256Digest,
    /// Whether the job has reached a final state.
    pub ended: bool,
    /// The job's deadline.
    pub deadline: SystemTime,
}

/// The ref a forge webhook vouched for: the controller authenticated the event and took the
/// commit from it, so a branch push names its branch, a tag push its tag, and a pull or merge
/// request its number (never its head branch, which a fork names freely).
pub fn verified_ref(trigger: &Trigger) -> Option<SourceRef> {
    match trigger.event {
        TriggerEvent::Push => trigger
            .git_ref
            .strip_prefix("refs/heads/")
            .map(|b| SourceRef::Branch(b.to_owned())),
        TriggerEvent::Tag => trigger
            .git_ref
            .strip_prefix("refs/tags/")
            .map(|t| SourceRef::Tag(t.to_owned())),
        TriggerEvent::PullRequest | TriggerEvent::MergeRequest => trigger
            .change_request
            .as_ref()
            .map(|cr| SourceRef::PullRequest { number: cr.number }),
    }
}

impl JobTokenContext {
    /// The token context of a job: profile, audiences and source from its spec, the rest from
    /// `facts`. A job without `[oidc]` gets an empty audience list (every request refused).
    pub fn for_job(spec: &JobSpec, facts: JobFacts) -> Result<Self, SubjectError> {
        let mut source = SourceIdentity::from_source(&spec.source)?;
        if let Some(verified) = facts.verified_ref {
            source = source.with_verified_ref(verified)?;
        }
        Ok(Self {
            job_id: facts.job_id,
            source,
            profile: spec.job.profile.clone(),
            profile_allows_tokens: facts.profile_allows_tokens,
            audiences: spec
                .oidc
                .as_ref()
                .map(|o| o.audiences.clone())
                .unwrap_or_default(),
            builder_id: facts.builder_id,
            runner_id: facts.runner_id,
            job_definition_sha256: facts.job_definition_sha256,
            ended: facts.ended,
            deadline: facts.deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn spec(extra: &str) -> JobSpec {
        let toml = format!(
            r#"[job]
name = "app"
profile = "trusted"

[source]
git = "https://git.example.com/org/app.git"
commit = "{SHA}"
ref = "main"

[image]
ref = "registry.example.com/base@sha256:{}"

[[steps]]
run = "true"

[outputs]
paths = ["app"]
{extra}"#,
            "a".repeat(64)
        );
        JobSpec::from_toml_str(&toml).unwrap()
    }

    fn facts(verified_ref: Option<SourceRef>) -> JobFacts {
        JobFacts {
            job_id: "j".into(),
            runner_id: "r".into(),
            builder_id: "https://ci.example/builders/trusted".into(),
            profile_allows_tokens: true,
            verified_ref,
            job_definition_sha256: Sha256Digest::of(b"spec"),
            ended: false,
            deadline: UNIX_EPOCH + Duration::from_secs(10),
        }
    }

    #[test]
    fn audiences_profile_and_source_come_from_the_spec() {
        let ctx = JobTokenContext::for_job(
            &spec("[oidc]\naudiences = [\"sts.amazonaws.com\"]\n"),
            facts(None),
        )
        .unwrap();
        assert_eq!(ctx.audiences, vec!["sts.amazonaws.com".to_owned()]);
        assert_eq!(ctx.profile, "trusted");
        // The job file's `ref = "main"` is the client's word: the commit form is used.
        assert_eq!(
            ctx.source.subject(),
            format!("repo:https://git.example.com/org/app.git:commit:{SHA}")
        );
        let verified =
            JobTokenContext::for_job(&spec(""), facts(Some(SourceRef::Branch("main".into()))))
                .unwrap();
        assert_eq!(
            verified.source.subject(),
            "repo:https://git.example.com/org/app.git:ref:refs/heads/main"
        );
        assert!(verified.audiences.is_empty(), "no [oidc]: no audiences");
    }

    #[test]
    fn forge_triggers_verify_branches_tags_and_pull_request_numbers() {
        let trigger = |event, git_ref: &str, number: Option<u64>| Trigger {
            forge: "gh".into(),
            kind: airlock_job::ForgeKind::Github,
            event,
            repository: "org/app".into(),
            git_ref: git_ref.into(),
            sender: "a".into(),
            delivery: "d".into(),
            change_request: number.map(|number| airlock_job::ChangeRequest {
                number,
                head_repository: "org/app".into(),
                fork: false,
            }),
        };
        assert_eq!(
            verified_ref(&trigger(TriggerEvent::Push, "refs/heads/main", None)),
            Some(SourceRef::Branch("main".into()))
        );
        assert_eq!(
            verified_ref(&trigger(TriggerEvent::Tag, "refs/tags/v1", None)),
            Some(SourceRef::Tag("v1".into()))
        );
        // A pull request is named by its number, never by the head branch it comes from.
        assert_eq!(
            verified_ref(&trigger(
                TriggerEvent::PullRequest,
                "refs/heads/main",
                Some(7)
            )),
            Some(SourceRef::PullRequest { number: 7 })
        );
        assert_eq!(
            verified_ref(&trigger(TriggerEvent::Push, "refs/notes/x", None)),
            None
        );
    }
}
