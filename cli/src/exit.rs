//! Exit codes (stable: scripts rely on them) and the error type that carries one.

use std::fmt;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The build failed (the user's fault): a step exited non-zero, an output is missing,
    /// or verification did not pass.
    BuildFailed = 1,
    /// Bad input or usage: a job file, a flag, a missing file.
    Usage = 2,
    /// The platform failed: controller, runner, sandbox, signing, storage.
    Infra = 3,
}

/// An error with the exit code it maps to.
pub struct Failure {
    /// Exit code.
    pub code: Exit,
    /// The error and its causes.
    pub error: anyhow::Error,
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:#}", self.code, self.error)
    }
}

/// Tags a result's error with an exit code.
pub trait OrExit<T> {
    /// Bad input or usage.
    fn usage(self) -> Result<T, Failure>;
    /// Platform failure.
    fn infra(self) -> Result<T, Failure>;
    /// The build's (or the artifact's) fault.
    fn build_failed(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn usage(self) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code: Exit::Usage,
            error: e.into(),
        })
    }
    fn infra(self) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code: Exit::Infra,
            error: e.into(),
        })
    }
    fn build_failed(self) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code: Exit::BuildFailed,
            error: e.into(),
        })
    }
}

/// Shorthand for a usage failure with a message.
pub fn usage(msg: impl fmt::Display) -> Failure {
    Failure {
        code: Exit::Usage,
        error: anyhow::anyhow!("{msg}"),
    }
}

/// Shorthand for an infrastructure failure with a message.
pub fn infra(msg: impl fmt::Display) -> Failure {
    Failure {
        code: Exit::Infra,
        error: anyhow::anyhow!("{msg}"),
    }
}

/// Maps a gRPC status from the controller to an exit code: bad requests are the
/// caller's fault, everything else is the platform's.
pub fn from_status(context: &str, status: tonic::Status) -> Failure {
    use tonic::Code;
    let code = match status.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::FailedPrecondition
        | Code::Unauthenticated
        | Code::PermissionDenied => Exit::Usage,
        _ => Exit::Infra,
    };
    Failure {
        code,
        error: anyhow::anyhow!("{context}: {} ({:?})", status.message(), status.code()),
    }
}
