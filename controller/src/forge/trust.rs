//! The one decision a job file never makes for itself: which profile a forge event runs as.
//! A pull (merge) request from a fork always runs as `untrusted-pr`; `release` only for a
//! tag push of a repository the configuration lists in `release_repositories`.

use airlock_job::TriggerEvent;

use super::event::ForgeEvent;
use crate::config::ForgeConfig;

/// The profile of a fork's pull request, whatever its job file says.
pub const UNTRUSTED_PR: &str = "untrusted-pr";

/// The profile that signs release provenance.
pub const RELEASE: &str = "release";

/// The profile a job runs as, and a note when it is not the one its file asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The profile.
    pub profile: String,
    /// Why the file's profile was replaced (recorded in the job's history).
    pub note: Option<String>,
}

/// Why the event may not run the job file at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Decides the profile of `event` whose job file asks for `asked`.
pub fn decide(asked: &str, event: &ForgeEvent, forge: &ForgeConfig) -> Result<Decision, Refused> {
    if event.change_request.as_ref().is_some_and(|cr| cr.fork) {
        let note = (asked != UNTRUSTED_PR).then(|| {
            format!(
                "the job file asks for profile `{asked}`; a pull request from a fork \
                 ({}) runs as `{UNTRUSTED_PR}`",
                event.head_repository
            )
        });
        return Ok(Decision {
            profile: UNTRUSTED_PR.to_owned(),
            note,
        });
    }
    if asked == RELEASE {
        if event.event != TriggerEvent::Tag {
            return Err(Refused(format!(
                "profile `{RELEASE}` runs only for tag pushes, not for a {} event; build \
                 releases from tags",
                event.event.as_str()
            )));
        }
        if !forge
            .release_repositories
            .iter()
            .any(|r| r == &event.repository)
        {
            return Err(Refused(format!(
                "profile `{RELEASE}`: repository {} is not in forges.release_repositories of \
                 forge `{}`; an operator must allow it",
                event.repository, forge.name
            )));
        }
    }
    Ok(Decision {
        profile: asked.to_owned(),
        note: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_attest::GitCommit;
    use airlock_job::{ChangeRequest, ForgeKind};

    fn forge(release: &[&str]) -> ForgeConfig {
        let mut forge = ForgeConfig::example(ForgeKind::Github, "https://api.example");
        forge.release_repositories = release.iter().map(|s| (*s).to_owned()).collect();
        forge
    }

    fn event(kind: TriggerEvent, fork: Option<bool>) -> ForgeEvent {
        ForgeEvent {
            event: kind,
            repository: "org/app".into(),
            head_repository: if fork == Some(true) {
                "eve/app"
            } else {
                "org/app"
            }
            .into(),
            clone_url: "https://forge.example/org/app.git".into(),
            commit: GitCommit::from_hex(&"a".repeat(40)).unwrap(),
            git_ref: "refs/heads/main".into(),
            sender: "eve".into(),
            change_request: fork.map(|fork| ChangeRequest {
                number: 1,
                head_repository: "eve/app".into(),
                fork,
            }),
        }
    }

    #[test]
    fn a_fork_always_runs_untrusted_whatever_it_asks() {
        for asked in ["trusted", "release", "untrusted-pr"] {
            let d = decide(
                asked,
                &event(TriggerEvent::PullRequest, Some(true)),
                &forge(&["org/app"]),
            )
            .unwrap();
            assert_eq!(d.profile, UNTRUSTED_PR, "{asked}");
            assert_eq!(d.note.is_some(), asked != UNTRUSTED_PR);
        }
    }

    #[test]
    fn release_only_for_allowed_tag_pushes() {
        let allowed = forge(&["org/app"]);
        assert_eq!(
            decide("release", &event(TriggerEvent::Tag, None), &allowed)
                .unwrap()
                .profile,
            "release"
        );
        assert!(decide("release", &event(TriggerEvent::Tag, None), &forge(&[])).is_err());
        assert!(decide("release", &event(TriggerEvent::Push, None), &allowed).is_err());
        assert!(
            decide(
                "release",
                &event(TriggerEvent::PullRequest, Some(false)),
                &allowed
            )
            .is_err()
        );
        assert_eq!(
            decide(
                "trusted",
                &event(TriggerEvent::PullRequest, Some(false)),
                &allowed
            )
            .unwrap()
            .profile,
            "trusted"
        );
    }
}
