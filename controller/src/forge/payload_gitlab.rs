//! GitLab payloads (`X-Gitlab-Event`): `Push Hook`, `Tag Push Hook` and `Merge Request Hook`
//! (`open`, `reopen`, and `update` when it brought new commits); everything else is ignored.

use airlock_job::{ChangeRequest, TriggerEvent};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::event::{ForgeEvent, Parsed, PayloadError, commit, invalid, json, push};

#[derive(Deserialize)]
struct Project {
    #[serde(default)]
    id: Option<u64>,
    path_with_namespace: String,
    git_http_url: String,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    after: String,
    /// The commit the ref now points to (for an annotated tag, `after` is the tag object).
    #[serde(default)]
    checkout_sha: Option<String>,
    user_username: String,
    project: Project,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct LastCommit {
    id: String,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    #[serde(default)]
    action: Option<String>,
    /// Present on an `update` that pushed new commits.
    #[serde(default)]
    oldrev: Option<String>,
    source_branch: String,
    source_project_id: u64,
    target_project_id: u64,
    last_commit: LastCommit,
    source: Project,
    target: Project,
}

#[derive(Deserialize)]
struct MergeRequestPayload {
    user: User,
    object_attributes: MergeRequest,
}

/// The `X-Gitlab-Event` header.
pub fn event_name(headers: &HeaderMap) -> Result<String, PayloadError> {
    headers
        .get("X-Gitlab-Event")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or(PayloadError::MissingEvent("X-Gitlab-Event"))
}

/// Parses an authenticated GitLab webhook body.
pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    match event {
        "Push Hook" | "Tag Push Hook" => {
            let p: PushPayload = json(event, body)?;
            let after = match p.checkout_sha.as_deref() {
                Some(sha) if !sha.is_empty() => sha,
                _ => p.after.as_str(),
            };
            let parsed = push(
                p.project.path_with_namespace,
                p.project.git_http_url,
                p.git_ref,
                after,
                p.user_username,
            )
            .map_err(|m| invalid(event, m))?;
            let expected = if event == "Tag Push Hook" {
                TriggerEvent::Tag
            } else {
                TriggerEvent::Push
            };
            match &parsed {
                Parsed::Build(e) if e.event != expected => Err(invalid(
                    event,
                    format!("ref {} does not match the event", e.git_ref),
                )),
                _ => Ok(parsed),
            }
        }
        "Merge Request Hook" => merge_request(event, body),
        other => Ok(Parsed::Ignore(format!(
            "`{other}` events do not start jobs (Push Hook, Tag Push Hook and Merge Request \
             Hook do)"
        ))),
    }
}

fn merge_request(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    let p: MergeRequestPayload = json(event, body)?;
    let mr = p.object_attributes;
    let action = mr.action.as_deref().unwrap_or("");
    let builds = match action {
        "open" | "reopen" => true,
        "update" => mr.oldrev.as_deref().is_some_and(|r| !r.is_empty()),
        _ => false,
    };
    if !builds {
        return Ok(Parsed::Ignore(format!(
            "merge request !{} {action}: only open, reopen and updates with new commits start \
             jobs",
            mr.iid
        )));
    }
    let fork = mr.source_project_id != mr.target_project_id
        || matches!((mr.source.id, mr.target.id), (Some(s), Some(t)) if s != t)
        || mr.source.path_with_namespace != mr.target.path_with_namespace;
    Ok(Parsed::Build(ForgeEvent {
        event: TriggerEvent::MergeRequest,
        repository: mr.target.path_with_namespace,
        head_repository: mr.source.path_with_namespace.clone(),
        clone_url: mr.source.git_http_url,
        commit: commit("object_attributes.last_commit.id", &mr.last_commit.id)
            .map_err(|m| invalid(event, m))?,
        git_ref: format!("refs/heads/{}", mr.source_branch),
        sender: p.user.username,
        change_request: Some(ChangeRequest {
            number: mr.iid,
            head_repository: mr.source.path_with_namespace,
            fork,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";

    fn project(id: u64, path: &str) -> serde_json::Value {
        json!({"id": id, "path_with_namespace": path,
               "git_http_url": format!("https://gitlab.example/{path}.git")})
    }

    fn mr(action: &str, oldrev: Option<&str>, source: u64) -> Vec<u8> {
        let src = if source == 1 {
            "group/app"
        } else {
            "mallory/app"
        };
        json!({
            "object_kind": "merge_request",
            "user": {"username": "mallory"},
            "project": project(1, "group/app"),
            "object_attributes": {
                "iid": 3, "action": action, "oldrev": oldrev, "source_branch": "fix",
                "source_project_id": source, "target_project_id": 1,
                "last_commit": {"id": SHA},
                "source": project(source, src), "target": project(1, "group/app"),
            }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_merge_request_from_a_fork() {
        let Parsed::Build(e) = parse("Merge Request Hook", &mr("open", None, 2)).unwrap() else {
            panic!("ignored")
        };
        assert_eq!(e.event, TriggerEvent::MergeRequest);
        assert_eq!(e.repository, "group/app");
        assert_eq!(e.head_repository, "mallory/app");
        assert_eq!(e.clone_url, "https://gitlab.example/mallory/app.git");
        assert_eq!(e.git_ref, "refs/heads/fix");
        let cr = e.change_request.unwrap();
        assert!(cr.fork);
        assert_eq!(cr.number, 3);
        let Parsed::Build(e) = parse("Merge Request Hook", &mr("reopen", None, 1)).unwrap() else {
            panic!("ignored")
        };
        assert!(!e.change_request.unwrap().fork);
    }

    #[test]
    fn updates_build_only_with_new_commits() {
        assert!(matches!(
            parse("Merge Request Hook", &mr("update", None, 1)).unwrap(),
            Parsed::Ignore(_)
        ));
        assert!(matches!(
            parse(
                "Merge Request Hook",
                &mr("update", Some(&"1".repeat(40)), 1)
            )
            .unwrap(),
            Parsed::Build(_)
        ));
        for action in ["close", "merge", "approved"] {
            assert!(matches!(
                parse("Merge Request Hook", &mr(action, None, 1)).unwrap(),
                Parsed::Ignore(_)
            ));
        }
    }

    #[test]
    fn pushes_use_checkout_sha() {
        let body = |kind: &str, r: &str, checkout: Option<&str>| {
            json!({"object_kind": kind, "ref": r, "after": "2".repeat(40), "checkout_sha": checkout,
                   "user_username": "jsmith", "project": project(1, "group/app")})
            .to_string()
            .into_bytes()
        };
        let Parsed::Build(e) = parse(
            "Tag Push Hook",
            &body("tag_push", "refs/tags/v1", Some(SHA)),
        )
        .unwrap() else {
            panic!("ignored")
        };
        assert_eq!((e.event, e.commit.hex().as_str()), (TriggerEvent::Tag, SHA));
        assert_eq!(e.sender, "jsmith");
        let Parsed::Build(e) = parse("Push Hook", &body("push", "refs/heads/main", None)).unwrap()
        else {
            panic!("ignored")
        };
        assert_eq!(e.commit.hex(), "2".repeat(40));
        assert!(parse("Push Hook", &body("push", "refs/tags/v1", Some(SHA))).is_err());
        assert!(matches!(
            parse("Note Hook", b"{}").unwrap(),
            Parsed::Ignore(_)
        ));
    }
}
