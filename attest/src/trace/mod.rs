//! Runtime traces: what a job's steps did — programs executed, files opened, network calls
//! with an address — as the runner's seccomp supervisor observed them, as an in-toto
//! Statement v1 with predicate `https://in-toto.io/attestation/runtime-trace/v0.2` signed
//! beside the provenance (same key, same subjects), and the hermeticity verdict drawn from it
//! ([`verdict`]). docs/trace.md describes every field.

mod model;
mod predicate;
mod statement;
mod verdict;

pub use model::*;
pub use predicate::*;
pub use statement::{RUNTIME_TRACE_PREDICATE_TYPE, TraceStatement};
pub use verdict::{Hermeticity, hermeticity};

/// Why a trace statement could not be made, signed or checked.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The statement is not a trace statement airlock writes.
    #[error("runtime trace statement: {0}")]
    Statement(String),
    /// A timestamp cannot be written.
    #[error("runtime trace: {0}")]
    Time(#[from] crate::timestamp::TimestampError),
    /// Signing failed.
    #[error("cannot sign the runtime trace statement: {0}")]
    Sign(#[source] crate::sign::SignError),
    /// The envelope's signature did not verify.
    #[error("the runtime trace statement's signature: {0}")]
    Verify(#[source] crate::verify::VerifyError),
}
