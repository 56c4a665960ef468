//! `[policy]` of `controller.toml`: admission policies in Rego, evaluated at every submission.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a `deny` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Any `deny` message refuses the submission (`PERMISSION_DENIED`).
    #[default]
    Enforce,
    /// The job is admitted; the messages are recorded in its history and provenance.
    Evaluate,
}

impl PolicyMode {
    /// The name used in configuration and provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Enforce => "enforce",
            PolicyMode::Evaluate => "evaluate",
        }
    }
}

/// `[policy]`: a directory of `*.rego` files (Rego v1, package `airlock.admission`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The directory; relative to the configuration file.
    pub dir: PathBuf,
    /// `"enforce"` (default) or `"evaluate"`.
    #[serde(default)]
    pub mode: PolicyMode,
}
