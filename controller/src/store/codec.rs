//! Encodings shared by the backends: job events as encoded `airlock.v1.JobEvent` messages,
//! labels as JSON arrays, ids and digests as text.

use airlock_attest::Sha256Digest;
use airlock_proto::v1 as pb;
use prost::Message;

use super::sql::Row;
use super::{JobRecord, StoreError, StoredProvenance};
use crate::ids::{JobId, LeaseToken, RunnerId};
use crate::state::JobState;

/// Every column of `jobs` that [`JobRecord`](super::JobRecord) reads, in one list.
pub(crate) const JOB_COLUMNS: &str = "id, name, spec_json, profile, labels, source_sha256, state, \
    message, exit_code, attempt, runner_id, lease_token, created_ms, leased_ms, started_ms, \
    finished_ms, log_sha256, builder_id, envelope_json, bundle_json, keyid, public_key_pem, \
    priority, tenant, timeout_ms, max_attempts, lease_expires_ms, deadline_ms, cancel_requested, \
    job_token_expires_ms, admission_json, signer_keyid";

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

pub(crate) fn parse_token_digest(
    column: &str,
    hex: &str,
) -> Result<crate::auth::digest::TokenDigest, StoreError> {
    hex.parse()
        .map_err(|e| StoreError::Corrupt(format!("{column} {hex:?}: {e}")))
}

pub(crate) fn parse_uuid(column: &str, s: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::try_parse(s).map_err(|e| StoreError::Corrupt(format!("{column} {s:?}: {e}")))
}

pub(crate) fn carries_all(runner: &[String], required: &[String]) -> bool {
    required.iter().all(|label| runner.contains(label))
}

/// Decodes a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &Row) -> Result<JobRecord, StoreError> {
    let state: String = row.try_get("state")?;
    let state = JobState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("job state {state:?}")))?;
    let opt_digest = |col: &str| -> Result<_, StoreError> {
        row.try_get::<Option<String>, _>(col)?
            .map(|h| parse_digest(col, &h))
            .transpose()
    };
    let envelope: Option<String> = row.try_get("envelope_json")?;
    let provenance = match envelope {
        Some(envelope_json) => Some(StoredProvenance {
            envelope_json,
            bundle_json: row
                .try_get::<Option<String>, _>("bundle_json")?
                .unwrap_or_default(),
            keyid: row
                .try_get::<Option<String>, _>("keyid")?
                .unwrap_or_default(),
            public_key_pem: row
                .try_get::<Option<String>, _>("public_key_pem")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    let attempt: i64 = row.try_get("attempt")?;
    let max_attempts: i64 = row.try_get("max_attempts")?;
    Ok(JobRecord {
        id: JobId::new(parse_uuid("id", &row.try_get::<String, _>("id")?)?),
        name: row.try_get("name")?,
        spec_json: row.try_get("spec_json")?,
        profile: row.try_get("profile")?,
        labels: labels_from_json(&row.try_get::<String, _>("labels")?)?,
        source_sha256: opt_digest("source_sha256")?,
        state,
        message: row.try_get("message")?,
        exit_code: row.try_get("exit_code")?,
        attempt: u32::try_from(attempt)
            .map_err(|_| StoreError::Corrupt(format!("attempt {attempt}")))?,
        runner_id: row
            .try_get::<Option<String>, _>("runner_id")?
            .map(|s| parse_uuid("runner_id", &s).map(RunnerId::new))
            .transpose()?,
        lease_token: row
            .try_get::<Option<String>, _>("lease_token")?
            .map(|s| parse_uuid("lease_token", &s).map(LeaseToken::new))
            .transpose()?,
        created_ms: row.try_get("created_ms")?,
        leased_ms: row.try_get("leased_ms")?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        log_sha256: opt_digest("log_sha256")?,
        builder_id: row.try_get("builder_id")?,
        provenance,
        priority: row.try_get("priority")?,
        tenant: row.try_get("tenant")?,
        timeout_ms: row.try_get("timeout_ms")?,
        max_attempts: u32::try_from(max_attempts)
            .map_err(|_| StoreError::Corrupt(format!("max_attempts {max_attempts}")))?,
        lease_expires_ms: row.try_get("lease_expires_ms")?,
        deadline_ms: row.try_get("deadline_ms")?,
        cancel_requested: row.try_get("cancel_requested")?,
        job_token_expires_ms: row.try_get("job_token_expires_ms")?,
        admission_json: row.try_get("admission_json")?,
        signer_keyid: row.try_get("signer_keyid")?,
    })
}
