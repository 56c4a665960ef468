//! How a step ended. A non-zero exit is an outcome, not an error.

use std::time::Duration;

/// The end of one sandboxed step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutcome {
    /// The exit code, when the step exited by itself.
    pub exit_code: Option<i32>,
    /// The signal number, when a signal killed the step (9 when the sandbox killed it).
    pub signal: Option<i32>,
    /// The step ran out of time and was killed.
    pub timed_out: bool,
    /// The step was cancelled and killed.
    pub cancelled: bool,
    /// The memory cgroup recorded an OOM kill (the step hit its memory limit).
    pub oom_killed: bool,
    /// A fork or clone failed because the step reached its process limit.
    pub pids_exhausted: bool,
    /// The step's `/tmp` was full when it ended.
    pub tmp_full: bool,
    /// Wall time from starting the helper to its report (includes ~5 ms of container set-up).
    pub duration: Duration,
    /// What the step did, when it was traced.
    pub trace: Option<super::trace::StepRecord>,
}

/// Why a step that did not succeed failed, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Killed when the job's wall-clock limit passed.
    TimedOut,
    /// Cancelled by a user or the controller.
    Cancelled,
    /// Killed by the kernel's OOM killer at the memory limit.
    OutOfMemory,
    /// A fork failed at the process limit (the step usually fails after that).
    PidsLimit,
    /// `/tmp` was full (ENOSPC at its size cap).
    TmpFull,
    /// Killed by a signal for another reason.
    Signalled,
    /// Exited non-zero.
    ExitCode,
}

impl FailureKind {
    /// A stable name for logs, messages and APIs: `timed-out`, `cancelled`, `out-of-memory`,
    /// `pids-limit`, `tmp-full`, `signalled`, `exit-code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimedOut => "timed-out",
            Self::Cancelled => "cancelled",
            Self::OutOfMemory => "out-of-memory",
            Self::PidsLimit => "pids-limit",
            Self::TmpFull => "tmp-full",
            Self::Signalled => "signalled",
            Self::ExitCode => "exit-code",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StepOutcome {
    /// A step cancelled before anything of it started.
    pub(crate) fn cancelled_before_start() -> Self {
        Self {
            exit_code: None,
            signal: None,
            timed_out: false,
            cancelled: true,
            oom_killed: false,
            pids_exhausted: false,
            tmp_full: false,
            duration: Duration::ZERO,
            trace: None,
        }
    }

    /// Whether the step succeeded: exit code 0, not killed, not timed out, not cancelled.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.cancelled
    }

    /// Why the step failed; `None` when it succeeded. A limit that was hit wins over the exit
    /// code it caused (a fork bomb's shell exits 1 or 254 after `fork` failed).
    pub fn failure_kind(&self) -> Option<FailureKind> {
        if self.success() {
            return None;
        }
        Some(if self.timed_out {
            FailureKind::TimedOut
        } else if self.cancelled {
            FailureKind::Cancelled
        } else if self.oom_killed {
            FailureKind::OutOfMemory
        } else if self.pids_exhausted {
            FailureKind::PidsLimit
        } else if self.tmp_full {
            FailureKind::TmpFull
        } else if self.exit_code.is_none() {
            FailureKind::Signalled
        } else {
            FailureKind::ExitCode
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clean_zero_exit_is_success() {
        let ok = StepOutcome {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            cancelled: false,
            oom_killed: false,
            pids_exhausted: false,
            tmp_full: false,
            duration: Duration::ZERO,
            trace: None,
        };
        assert!(ok.success());
        assert_eq!(ok.failure_kind(), None);
        let oom = StepOutcome {
            exit_code: None,
            signal: Some(9),
            oom_killed: true,
            pids_exhausted: true,
            ..ok.clone()
        };
        assert_eq!(oom.failure_kind(), Some(FailureKind::OutOfMemory));
        let full = StepOutcome {
            exit_code: Some(1),
            tmp_full: true,
            ..ok.clone()
        };
        assert_eq!(
            full.failure_kind().map(FailureKind::as_str),
            Some("tmp-full")
        );
        assert!(
            !StepOutcome {
                exit_code: Some(3),
                ..ok.clone()
            }
            .success()
        );
        assert!(
            !StepOutcome {
                exit_code: None,
                signal: Some(9),
                ..ok.clone()
            }
            .success()
        );
        assert!(
            !StepOutcome {
                timed_out: true,
                ..ok
            }
            .success()
        );
    }
}
