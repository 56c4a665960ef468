//! Admission policy as code: the Rego v1 files of `[policy] dir`, package
//! `airlock.admission`, evaluated in-process (regorus) for every submission, the API's and
//! the webhooks' alike. `deny` is a set of messages. In `enforce` mode any message refuses the
//! job and nothing is stored but an audit line; in `evaluate` mode the job is admitted and the
//! messages are recorded in its history and provenance. The bundle's digest, the mode and
//! the decision are in every admitted job's provenance (`internalParameters.admissionPolicy`).

pub mod bundle;
pub mod decision;
pub mod engine;
pub mod input;

use std::path::PathBuf;

pub use bundle::PolicyBundle;
pub use decision::{AdmissionRecord, Decision};
pub use engine::Admission;
pub use input::{ClientInput, admission_input};

/// The rule every bundle defines.
pub const DENY_RULE: &str = "data.airlock.admission.deny";

/// Why a policy bundle cannot be used or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or the directory cannot be read.
    #[error("{}: {message}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No `*.rego` file in the directory.
    #[error("{}: no *.rego policy file in the directory", dir.display())]
    Empty {
        /// The directory.
        dir: PathBuf,
    },
    /// A file does not parse (the message has its line and column).
    #[error("{}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// No file is in package `airlock.admission`.
    #[error(
        "{}: no policy file declares `package airlock.admission` with a `deny` rule",
        dir.display()
    )]
    NoDenyRule {
        /// The directory.
        dir: PathBuf,
    },
    /// Evaluation failed (a runtime error, the time limit, a `deny` that is not a set).
    #[error("the admission policy failed: {0}")]
    Eval(String),
}
