//! A job's runtime trace on the runner's side: the profile's `[trace]` decides whether its
//! steps are traced; each step's observations are kept here in order, summarized in the job
//! log, and reported with the job's completion (docs/trace.md).

use std::sync::Mutex;
use std::time::SystemTime;

use airlock_proto::v1 as pb;

use crate::profile::Profile;
use crate::report::events::EventSink;
use crate::sandbox::trace::{StepRecord, TRACED_SYSCALLS, TraceSetup};

/// The trace of one job attempt.
#[derive(Debug, Default)]
pub(super) struct JobTrace {
    /// What every step's supervisor shares; `None` when the profile does not trace.
    pub(super) setup: Option<TraceSetup>,
    fail_on_network: bool,
    steps: Mutex<Vec<pb::StepTrace>>,
}

impl JobTrace {
    /// The trace a job of `profile` gets.
    pub(super) fn for_profile(profile: &Profile) -> Self {
        Self {
            setup: profile.trace.enabled.then(|| TraceSetup {
                refuse_network: profile.trace.fail_on_network,
                ..TraceSetup::default()
            }),
            fail_on_network: profile.trace.fail_on_network,
            steps: Mutex::new(Vec::new()),
        }
    }

    /// Keeps step `index`'s record and says in the log what it saw.
    pub(super) async fn step_done(
        &self,
        events: &EventSink,
        index: u32,
        name: &str,
        started: SystemTime,
        record: StepRecord,
    ) {
        let outside = record.outside_attempts();
        let step = record.into_proto(name, index, unix_ms(started), unix_ms(SystemTime::now()));
        let reads = step.files.iter().filter(|f| f.access == "read").count();
        let mut line = format!(
            "trace: step `{name}` executed {} program{}, read {reads} file{}, wrote {}",
            step.execs.len(),
            plural(step.execs.len()),
            plural(reads),
            step.files.len() - reads,
        );
        if outside.is_empty() {
            line.push_str("; no network attempt outside the sandbox");
        } else {
            line.push_str(&format!("; network attempts: {}", outside.join(", ")));
        }
        let dropped = step.dropped_execs + step.dropped_files + step.dropped_network;
        if dropped > 0 {
            line.push_str(&format!("; {dropped} events over the caps, counted only"));
        }
        events.system(index, line).await;
        self.steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(step);
    }

    /// The trace as CompleteJob carries it; `None` when the job was not traced.
    pub(super) fn report(&self) -> Option<pb::RuntimeTrace> {
        self.setup.as_ref()?;
        Some(pb::RuntimeTrace {
            steps: self
                .steps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            syscalls: TRACED_SYSCALLS.iter().map(|s| (*s).to_owned()).collect(),
            fail_on_network: self.fail_on_network,
        })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
