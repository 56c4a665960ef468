//! What an evaluation decided, and the record of it kept with an admitted job.

use airlock_attest::Sha256Digest;
use serde_json::{Value, json};

use crate::config::PolicyMode;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No `deny` message.
    Allow,
    /// At least one.
    Deny,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// One evaluation: the bundle, the mode, the decision and its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionRecord {
    /// The bundle digest.
    pub digest: Sha256Digest,
    /// The mode it ran in.
    pub mode: PolicyMode,
    /// What it decided.
    pub decision: Decision,
    /// The `deny` messages, sorted.
    pub messages: Vec<String>,
}

impl AdmissionRecord {
    /// True when the job may be queued (no deny, or evaluate mode).
    pub fn admits(&self) -> bool {
        self.decision == Decision::Allow || self.mode == PolicyMode::Evaluate
    }

    /// The JSON kept with the job and recorded as `internalParameters.admissionPolicy`.
    pub fn to_json(&self) -> Value {
        json!({
            "digest": {"sha256": self.digest.hex()},
            "mode": self.mode.as_str(),
            "decision": self.decision.as_str(),
            "messages": self.messages,
        })
    }

    /// The messages of a stored record (evaluate mode's would-be denials).
    pub fn stored_messages(stored: &Value) -> Vec<String> {
        stored["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}
