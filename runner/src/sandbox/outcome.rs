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
    /// Wall time from starting the helper to its exit (includes ~10 ms of container set-up).
    pub duration: Duration,
}

impl StepOutcome {
    /// Whether the step succeeded: exit code 0, not killed, not timed out, not cancelled.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.cancelled
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
            duration: Duration::ZERO,
        };
        assert!(ok.success());
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
