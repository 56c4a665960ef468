//! Encodings shared by the backends: job events as encoded `airlock.v1.JobEvent` messages,
//! labels as JSON arrays, ids and digests as text.

use airlock_attest::Sha256Digest;
use airlock_proto::v1 as pb;
use prost::Message;

use super::StoreError;
use crate::state::JobState;

/// Every column of `jobs` that [`JobRecord`](super::JobRecord) reads, in one list.
pub(crate) const JOB_COLUMNS: &str = "id, name, spec_json, profile, labels, source_sha256, state, \
    message, exit_code, attempt, runner_id, lease_token, created_ms, leased_ms, started_ms, \
    finished_ms, log_sha256, builder_id, envelope_json, bundle_json, keyid, public_key_pem, \
    priority, tenant, timeout_ms, max_attempts, lease_expires_ms, deadline_ms, cancel_requested";

/// What happened: the `kind` of an `airlock.v1.JobEvent`.
pub type EventKind = pb::job_event::Kind;

pub(crate) fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::State(_) => "state",
        EventKind::Step(_) => "step",
        EventKind::Log(_) => "log",
    }
}

/// A state-change event.
pub fn state_event(state: JobState, message: &str) -> EventKind {
    EventKind::State(pb::StateChange {
        state: state.to_proto_i32(),
        message: message.to_owned(),
    })
}

pub(crate) fn decode(bytes: &[u8]) -> Result<pb::JobEvent, StoreError> {
    pb::JobEvent::decode(bytes).map_err(|e| StoreError::Corrupt(format!("job event: {e}")))
}

pub(crate) fn labels_to_json(labels: &[String]) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn labels_from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("labels {text:?}: {e}")))
}

pub(crate) fn parse_digest(column: &str, hex: &str) -> Result<Sha256Digest, StoreError> {
    Sha256Digest::from_hex(hex).map_err(|e| StoreError::Corrupt(format!("{column} {hex:?}: {e}")))
}

pub(crate) fn parse_uuid(column: &str, s: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::try_parse(s).map_err(|e| StoreError::Corrupt(format!("{column} {s:?}: {e}")))
}

pub(crate) fn carries_all(runner: &[String], required: &[String]) -> bool {
    required.iter().all(|label| runner.contains(label))
}
