//! `trigger`: the forge event that made a job, set by the controller's webhook receiver and
//! never by a job file or an API client. It travels in the spec so that provenance records it
//! in `externalParameters` exactly as the job was queued.

use serde::{Deserialize, Serialize};

use crate::error::JobFileError;

/// Longest repository name, ref or sender kept in a trigger.
pub const MAX_TRIGGER_FIELD: usize = 255;

/// The forge software that sent the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// GitHub (github.com or GitHub Enterprise Server).
    Github,
    /// GitLab.
    Gitlab,
    /// Forgejo or Gitea (the Gitea-compatible API).
    Forgejo,
}

impl ForgeKind {
    /// The name used in configuration and provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Forgejo => "forgejo",
        }
    }
}

/// What happened in the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerEvent {
    /// Commits pushed to a branch.
    Push,
    /// A tag pushed.
    Tag,
    /// A pull request opened, updated or reopened (GitHub, Forgejo).
    PullRequest,
    /// A merge request opened, updated or reopened (GitLab).
    MergeRequest,
}

impl TriggerEvent {
    /// The name used in provenance and job history.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerEvent::Push => "push",
            TriggerEvent::Tag => "tag",
            TriggerEvent::PullRequest => "pull_request",
            TriggerEvent::MergeRequest => "merge_request",
        }
    }

    /// True for a pull or merge request.
    pub fn is_change_request(self) -> bool {
        matches!(self, TriggerEvent::PullRequest | TriggerEvent::MergeRequest)
    }
}

/// The pull (merge) request part of a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// Its number in the base repository (GitHub/Forgejo `number`, GitLab `iid`).
    pub number: u64,
    /// The repository holding the head commit (`owner/name`).
    pub head_repository: String,
    /// True when the head repository is not the base repository: the job then runs as
    /// `untrusted-pr`, whatever its job file says.
    pub fork: bool,
}

/// A forge event, as recorded with the job it queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The `[[forges]] name` of the controller configuration that received it.
    pub forge: String,
    /// The forge software.
    pub kind: ForgeKind,
    /// What happened.
    pub event: TriggerEvent,
    /// The base repository (`owner/name`, GitLab `group/project`): statuses go there.
    pub repository: String,
    /// The full ref: `refs/heads/main`, `refs/tags/v1.2.0`, a pull request's head branch.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Who caused the event (login name).
    pub sender: String,
    /// The forge's delivery id of the webhook call.
    pub delivery: String,
    /// Set for pull and merge requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_request: Option<ChangeRequest>,
}

impl Trigger {
    /// One line for job history and logs, e.g. `github pull_request #7 of org/app from fork
    /// alice/app by alice`.
    pub fn describe(&self) -> String {
        let mut line = format!("{} {}", self.kind.as_str(), self.event.as_str());
        if let Some(cr) = &self.change_request {
            line.push_str(&format!(" #{} of {}", cr.number, self.repository));
            if cr.fork {
                line.push_str(&format!(" from fork {}", cr.head_repository));
            }
        } else {
            line.push_str(&format!(" of {} {}", self.repository, self.git_ref));
        }
        line.push_str(&format!(" by {}", self.sender));
        line
    }

    /// True when the trigger alone forces the `untrusted-pr` profile.
    pub fn is_fork(&self) -> bool {
        self.change_request.as_ref().is_some_and(|cr| cr.fork)
    }

    /// Checks the recorded text fields (they are displayed and sent back to the forge).
    pub(crate) fn validate(&self) -> Result<(), JobFileError> {
        let mut fields = vec![
            ("trigger.forge", self.forge.as_str()),
            ("trigger.repository", self.repository.as_str()),
            ("trigger.ref", self.git_ref.as_str()),
            ("trigger.sender", self.sender.as_str()),
            ("trigger.delivery", self.delivery.as_str()),
        ];
        if let Some(cr) = &self.change_request {
            fields.push((
                "trigger.change_request.head_repository",
                cr.head_repository.as_str(),
            ));
        }
        for (field, value) in fields {
            if value.is_empty()
                || value.len() > MAX_TRIGGER_FIELD
                || value.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(JobFileError::field(
                    field,
                    "must be 1-255 characters without spaces or control characters",
                    None,
                ));
            }
        }
        if self.event.is_change_request() != self.change_request.is_some() {
            return Err(JobFileError::field(
                "trigger.change_request",
                "is set exactly for pull_request and merge_request events",
                None,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> Trigger {
        Trigger {
            forge: "gh".into(),
            kind: ForgeKind::Github,
            event: TriggerEvent::PullRequest,
            repository: "org/app".into(),
            git_ref: "refs/heads/feature".into(),
            sender: "alice".into(),
            delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            change_request: Some(ChangeRequest {
                number: 7,
                head_repository: "alice/app".into(),
                fork: true,
            }),
        }
    }

    #[test]
    fn describes_a_fork_pull_request() {
        let t = trigger();
        assert!(t.is_fork());
        assert_eq!(
            t.describe(),
            "github pull_request #7 of org/app from fork alice/app by alice"
        );
        t.validate().unwrap();
    }

    #[test]
    fn refuses_spaces_control_characters_and_a_missing_change_request() {
        let mut t = trigger();
        t.sender = "alice\nFORGED".into();
        assert!(t.validate().is_err());
        let mut t = trigger();
        t.repository = String::new();
        assert!(t.validate().is_err());
        let mut t = trigger();
        t.change_request = None;
        assert!(t.validate().is_err());
        let mut t = trigger();
        t.event = TriggerEvent::Push;
        assert!(t.validate().is_err());
    }
}
