//! Runtime trace: what each step did, observed from outside the sandbox with seccomp user
//! notification (docs/trace.md). The step's filter gains `SCMP_ACT_NOTIFY` rules for the
//! [`TRACED_SYSCALLS`] and names a listener socket in the bundle; a supervisor thread of the
//! runner receives the notify fd there and answers every call.
//!
//! - [`supervisor`]: the thread and its answers;
//! - [`memory`]: reading paths and addresses from the target;
//! - [`paths`]: absolute sandbox paths and their classes;
//! - [`net`]: socket addresses;
//! - [`hash`]: digests of executed and read files, opened inside the process's root;
//! - [`record`]: per-step aggregation with caps.

pub mod hash;
pub mod memory;
pub mod net;
pub mod paths;
pub mod record;
pub mod supervisor;

pub use record::StepRecord;
pub use supervisor::{Supervisor, TRACED_SYSCALLS, TraceSetup};

/// The listener socket's name in a step's bundle directory.
pub const LISTENER_SOCKET: &str = "trace.sock";
