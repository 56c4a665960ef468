//! A forge event in airlock's terms, whichever forge sent it: what to build (repository,
//! commit, clone URL) and who asked (ref, sender, pull request).

use airlock_attest::GitCommit;
use airlock_job::{ChangeRequest, TriggerEvent};

/// An authenticated event that should queue a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeEvent {
    /// What happened.
    pub event: TriggerEvent,
    /// The base repository (`owner/name`): statuses go there.
    pub repository: String,
    /// The repository that holds `commit` (a fork's, for a pull request from a fork): the
    /// job file is read from it, and it is cloned.
    pub head_repository: String,
    /// The clone URL of `head_repository`.
    pub clone_url: String,
    /// The commit to build.
    pub commit: GitCommit,
    /// The full ref (`refs/heads/main`, `refs/tags/v1`, the pull request's head branch).
    pub git_ref: String,
    /// Who caused it.
    pub sender: String,
    /// Set for pull and merge requests.
    pub change_request: Option<ChangeRequest>,
}

/// What a webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Build this.
    Build(ForgeEvent),
    /// Nothing to build (a ping, a closed pull request, a branch deletion), and why.
    Ignore(String),
}

/// Why a payload cannot be understood (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The event header is missing.
    #[error("missing {0} header")]
    MissingEvent(&'static str),
    /// The body is not the JSON the event should carry.
    #[error("the {event} payload is not valid: {message}")]
    Invalid {
        /// The event name.
        event: String,
        /// What is wrong (serde's message, with the field path).
        message: String,
    },
}

/// The commit id of a payload field, or why it is not one.
pub(super) fn commit(field: &str, value: &str) -> Result<GitCommit, String> {
    GitCommit::from_hex(value).map_err(|_| format!("{field}: `{value}` is not a full commit id"))
}

/// True for the all-zero id forges send as the new value of a deleted ref.
pub(super) fn is_zero_commit(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b == b'0')
}

/// `Parsed::Build` for a push of `git_ref` (a branch or a tag), or `Ignore` for any other
/// ref and for deletions.
pub(super) fn push(
    repository: String,
    clone_url: String,
    git_ref: String,
    after: &str,
    sender: String,
) -> Result<Parsed, String> {
    if after.is_empty() || is_zero_commit(after) {
        return Ok(Parsed::Ignore(format!("{git_ref} was deleted")));
    }
    let event = if git_ref.starts_with("refs/tags/") {
        TriggerEvent::Tag
    } else if git_ref.starts_with("refs/heads/") {
        TriggerEvent::Push
    } else {
        return Ok(Parsed::Ignore(format!(
            "{git_ref} is neither a branch nor a tag"
        )));
    };
    Ok(Parsed::Build(ForgeEvent {
        event,
        head_repository: repository.clone(),
        repository,
        clone_url,
        commit: commit("after", after)?,
        git_ref,
        sender,
        change_request: None,
    }))
}

/// Parses `body` as `T`, naming the event and the field path on error.
pub(super) fn json<T: serde::de::DeserializeOwned>(
    event: &str,
    body: &[u8],
) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| PayloadError::Invalid {
        event: event.to_owned(),
        message: e.to_string(),
    })
}

/// A [`PayloadError::Invalid`] for `event`.
pub(super) fn invalid(event: &str, message: String) -> PayloadError {
    PayloadError::Invalid {
        event: event.to_owned(),
        message,
    }
}
