//! GitHub and Forgejo/Gitea payloads (Forgejo's are GitHub-shaped): `push` (branches and
//! tags) and `pull_request` (`opened`, `synchronize`/`synchronized`, `reopened`); `ping`
//! and everything else are ignored.

use airlock_job::{ChangeRequest, ForgeKind, TriggerEvent};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::event::{ForgeEvent, Parsed, PayloadError, commit, invalid, json, push};

#[derive(Deserialize)]
struct Repository {
    #[serde(default)]
    id: Option<u64>,
    full_name: String,
    clone_url: String,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    repository: Repository,
    sender: User,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    /// `null` when the head repository was deleted.
    repo: Option<Repository>,
}

#[derive(Deserialize)]
struct PullRequest {
    head: Branch,
    base: Branch,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    number: u64,
    pull_request: PullRequest,
    sender: User,
}

/// The event name: `X-GitHub-Event`, or for Forgejo `X-Forgejo-Event` / `X-Gitea-Event`.
pub fn event_name(kind: ForgeKind, headers: &HeaderMap) -> Result<String, PayloadError> {
    let names: &[&'static str] = match kind {
        ForgeKind::Forgejo => &["X-Forgejo-Event", "X-Gitea-Event"],
        _ => &["X-GitHub-Event"],
    };
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .map(str::to_owned)
        .ok_or(PayloadError::MissingEvent(names[0]))
}

/// Parses an authenticated GitHub or Forgejo webhook body.
pub fn parse(kind: ForgeKind, event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    match event {
        "ping" => Ok(Parsed::Ignore("ping: the webhook works".into())),
        "push" => {
            let p: PushPayload = json(event, body)?;
            if p.deleted {
                return Ok(Parsed::Ignore(format!("{} was deleted", p.git_ref)));
            }
            push(
                p.repository.full_name,
                p.repository.clone_url,
                p.git_ref,
                &p.after,
                p.sender.login,
            )
            .map_err(|m| invalid(event, m))
        }
        // Gitea-compatible forges name an update `pull_request_sync` in some versions.
        "pull_request" | "pull_request_sync" => pull_request(kind, event, body),
        other => Ok(Parsed::Ignore(format!(
            "`{other}` events do not start jobs (push and pull_request do)"
        ))),
    }
}

fn pull_request(kind: ForgeKind, event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    let p: PullRequestPayload = json(event, body)?;
    let builds = match kind {
        ForgeKind::Forgejo => ["opened", "synchronized", "reopened"].as_slice(),
        _ => ["opened", "synchronize", "reopened"].as_slice(),
    };
    if !builds.contains(&p.action.as_str()) {
        return Ok(Parsed::Ignore(format!(
            "pull request #{} {}: only opened, synchronize and reopened start jobs",
            p.number, p.action
        )));
    }
    let Some(base) = p.pull_request.base.repo else {
        return Err(invalid(event, "pull_request.base.repo is null".into()));
    };
    let Some(head) = p.pull_request.head.repo else {
        return Ok(Parsed::Ignore(format!(
            "pull request #{}: its head repository was deleted",
            p.number
        )));
    };
    // A fork is any head repository that is not the base itself; compare ids too when both
    // are given (a fork renamed to the base's name is still a fork).
    let fork = head.full_name != base.full_name
        || matches!((head.id, base.id), (Some(h), Some(b)) if h != b);
    let head_ref = p.pull_request.head.git_ref;
    Ok(Parsed::Build(ForgeEvent {
        event: TriggerEvent::PullRequest,
        repository: base.full_name,
        head_repository: head.full_name.clone(),
        clone_url: head.clone_url,
        commit: commit("pull_request.head.sha", &p.pull_request.head.sha)
            .map_err(|m| invalid(event, m))?,
        git_ref: if head_ref.starts_with("refs/") {
            head_ref
        } else {
            format!("refs/heads/{head_ref}")
        },
        sender: p.sender.login,
        change_request: Some(ChangeRequest {
            number: p.number,
            head_repository: head.full_name,
            fork,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    fn repo(id: u64, name: &str) -> serde_json::Value {
        json!({"id": id, "full_name": name, "clone_url": format!("https://github.com/{name}.git")})
    }

    fn pr(action: &str, head: serde_json::Value) -> Vec<u8> {
        json!({
            "action": action, "number": 7,
            "pull_request": {
                "head": {"ref": "feature", "sha": SHA, "repo": head},
                "base": {"ref": "main", "sha": "1".repeat(40), "repo": repo(1, "org/app")},
            },
            "sender": {"login": "alice"},
        })
        .to_string()
        .into_bytes()
    }

    fn build(parsed: Parsed) -> ForgeEvent {
        match parsed {
            Parsed::Build(e) => e,
            Parsed::Ignore(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn a_pull_request_from_a_fork_is_marked_fork() {
        let e = build(
            parse(
                ForgeKind::Github,
                "pull_request",
                &pr("opened", repo(2, "alice/app")),
            )
            .unwrap(),
        );
        assert_eq!(e.event, TriggerEvent::PullRequest);
        assert_eq!(e.repository, "org/app");
        assert_eq!(e.head_repository, "alice/app");
        assert_eq!(e.clone_url, "https://github.com/alice/app.git");
        assert_eq!(e.commit.hex(), SHA);
        assert_eq!(e.git_ref, "refs/heads/feature");
        assert_eq!(e.sender, "alice");
        assert!(e.change_request.unwrap().fork);
    }

    #[test]
    fn same_repository_is_not_a_fork_but_a_different_id_is() {
        let e = build(
            parse(
                ForgeKind::Github,
                "pull_request",
                &pr("synchronize", repo(1, "org/app")),
            )
            .unwrap(),
        );
        assert!(!e.change_request.unwrap().fork);
        let e = build(
            parse(
                ForgeKind::Github,
                "pull_request",
                &pr("reopened", repo(9, "org/app")),
            )
            .unwrap(),
        );
        assert!(e.change_request.unwrap().fork, "same name, other id");
    }

    #[test]
    fn other_actions_and_deleted_heads_are_ignored() {
        for action in ["closed", "edited", "labeled", "synchronized"] {
            assert!(
                matches!(
                    parse(
                        ForgeKind::Github,
                        "pull_request",
                        &pr(action, repo(1, "org/app"))
                    )
                    .unwrap(),
                    Parsed::Ignore(_)
                ),
                "{action}"
            );
        }
        // Forgejo spells it `synchronized`.
        build(
            parse(
                ForgeKind::Forgejo,
                "pull_request",
                &pr("synchronized", repo(1, "org/app")),
            )
            .unwrap(),
        );
        assert!(matches!(
            parse(
                ForgeKind::Github,
                "pull_request",
                &pr("opened", serde_json::Value::Null)
            )
            .unwrap(),
            Parsed::Ignore(_)
        ));
    }

    #[test]
    fn pushes_of_branches_and_tags() {
        let body = |r: &str, after: &str, deleted: bool| {
            json!({"ref": r, "after": after, "deleted": deleted, "repository": repo(1, "org/app"),
                   "sender": {"login": "bob"}})
            .to_string()
            .into_bytes()
        };
        let e = build(
            parse(
                ForgeKind::Github,
                "push",
                &body("refs/heads/main", SHA, false),
            )
            .unwrap(),
        );
        assert_eq!(
            (e.event, e.git_ref.as_str()),
            (TriggerEvent::Push, "refs/heads/main")
        );
        assert!(e.change_request.is_none());
        let e = build(
            parse(
                ForgeKind::Github,
                "push",
                &body("refs/tags/v1.0.0", SHA, false),
            )
            .unwrap(),
        );
        assert_eq!(e.event, TriggerEvent::Tag);
        let zero = "0".repeat(40);
        assert!(matches!(
            parse(
                ForgeKind::Github,
                "push",
                &body("refs/heads/x", &zero, true)
            )
            .unwrap(),
            Parsed::Ignore(_)
        ));
        assert!(matches!(
            parse(
                ForgeKind::Github,
                "push",
                &body("refs/heads/x", &zero, false)
            )
            .unwrap(),
            Parsed::Ignore(_)
        ));
        assert!(matches!(
            parse(ForgeKind::Github, "push", &body("refs/notes/x", SHA, false)).unwrap(),
            Parsed::Ignore(_)
        ));
        assert!(
            parse(
                ForgeKind::Github,
                "push",
                &body("refs/heads/x", "abc", false)
            )
            .is_err()
        );
        assert!(matches!(
            parse(ForgeKind::Github, "ping", b"{}").unwrap(),
            Parsed::Ignore(_)
        ));
        assert!(matches!(
            parse(ForgeKind::Github, "issues", b"{}").unwrap(),
            Parsed::Ignore(_)
        ));
    }

    #[test]
    fn malformed_payloads_name_the_field() {
        let err = parse(ForgeKind::Github, "push", br#"{"ref": 1}"#).unwrap_err();
        assert!(err.to_string().contains("ref"), "{err}");
        assert!(parse(ForgeKind::Github, "pull_request", b"not json").is_err());
    }
}
