//! The job lifecycle: states, their database names, and the proto enum.

use std::fmt;

use airlock_proto::v1 as pb;

/// Where a job is in its lifecycle. See `airlock.v1.JobState` for the meaning of each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a runner.
    Queued,
    /// Handed to a runner that has not reported a start yet.
    Leased,
    /// Steps are executing.
    Running,
    /// Finished, outputs verified, provenance signed.
    Succeeded,
    /// A step failed.
    Failed,
    /// Cancelled on request.
    Cancelled,
    /// Exceeded its time limit.
    TimedOut,
    /// The platform failed.
    InfraFailed,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Leased,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
        JobState::InfraFailed,
    ];

    /// The name stored in the database (and shown to humans).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Leased => "LEASED",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::TimedOut => "TIMED_OUT",
            JobState::InfraFailed => "INFRA_FAILED",
        }
    }

    /// Parses a database name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// True for states a job never leaves.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            JobState::Queued | JobState::Leased | JobState::Running
        )
    }

    /// True while a runner holds the job.
    pub fn is_leased(self) -> bool {
        matches!(self, JobState::Leased | JobState::Running)
    }

    /// The proto enum.
    pub fn to_proto(self) -> pb::JobState {
        match self {
            JobState::Queued => pb::JobState::Queued,
            JobState::Leased => pb::JobState::Leased,
            JobState::Running => pb::JobState::Running,
            JobState::Succeeded => pb::JobState::Succeeded,
            JobState::Failed => pb::JobState::Failed,
            JobState::Cancelled => pb::JobState::Cancelled,
            JobState::TimedOut => pb::JobState::TimedOut,
            JobState::InfraFailed => pb::JobState::InfraFailed,
        }
    }

    /// The proto enum's wire value.
    pub fn to_proto_i32(self) -> i32 {
        self.to_proto() as i32
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_terminal_states() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(
                s.to_proto().as_str_name(),
                format!("JOB_STATE_{}", s.as_str())
            );
        }
        assert!(JobState::Succeeded.is_terminal());
        assert!(!JobState::Running.is_terminal());
        assert_eq!(JobState::parse("nope"), None);
    }
}
