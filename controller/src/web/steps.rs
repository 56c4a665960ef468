//! A job's steps as the job page shows them: the steps its spec plans (pending until they
//! start), brought up to date by the runner's step events (started, finished with an exit
//! code and a duration).

use airlock_proto::v1 as pb;
use serde::Serialize;

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StepStatus {
    /// Not started.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished with exit code 0.
    Succeeded,
    /// Finished with another exit code.
    Failed,
    /// Started, and the job ended before it finished (cancelled, timed out, infra failure).
    Interrupted,
}

impl StepStatus {
    /// The text and CSS suffix of the status.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Interrupted => "interrupted",
        }
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StepView {
    /// 0-based position in the spec.
    pub(crate) index: u32,
    /// Its name (the spec's, or `step-N`).
    pub(crate) name: String,
    /// Where it is.
    pub(crate) status: StepStatus,
    /// The exit code once finished.
    pub(crate) exit_code: Option<i32>,
    /// Its wall time once finished, in ms.
    pub(crate) duration_ms: Option<u64>,
}

impl StepView {
    /// What one step event says of its step.
    pub(crate) fn from_event(event: &pb::StepEvent) -> Self {
        let finished = event.phase == pb::step_event::Phase::Finished as i32;
        Self {
            index: event.step_index,
            name: event.step_name.clone(),
            status: match (finished, event.exit_code) {
                (false, _) => StepStatus::Running,
                (true, 0) => StepStatus::Succeeded,
                (true, _) => StepStatus::Failed,
            },
            exit_code: finished.then_some(event.exit_code),
            duration_ms: finished.then_some(event.duration_ms),
        }
    }
}

/// The steps of the stored spec `spec_json`, all pending (none if it does not parse: the
/// events still show the steps that ran).
pub(crate) fn planned(spec_json: &[u8]) -> Vec<StepView> {
    let Ok(spec) = airlock_job::JobSpec::from_json(spec_json) else {
        return Vec::new();
    };
    (0..spec.steps.len())
        .map(|i| StepView {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            name: spec.step_name(i),
            status: StepStatus::Pending,
            exit_code: None,
            duration_ms: None,
        })
        .collect()
}

/// `steps` brought up to date by `events` (in order); a step no spec listed is added in
/// index order. Once the job is `terminal`, a step still running was interrupted.
pub(crate) fn derive(
    mut steps: Vec<StepView>,
    events: &[pb::StepEvent],
    terminal: bool,
) -> Vec<StepView> {
    for event in events {
        let update = StepView::from_event(event);
        match steps.binary_search_by_key(&update.index, |s| s.index) {
            Ok(i) => steps[i] = update,
            Err(i) => steps.insert(i, update),
        }
    }
    if terminal {
        for step in &mut steps {
            if step.status == StepStatus::Running {
                step.status = StepStatus::Interrupted;
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::step_event::Phase;

    fn event(index: u32, name: &str, phase: Phase, exit_code: i32) -> pb::StepEvent {
        pb::StepEvent {
            step_index: index,
            step_name: name.into(),
            phase: phase as i32,
            exit_code,
            duration_ms: 7,
        }
    }

    #[test]
    fn events_move_planned_steps_along() {
        let spec = br#"{"job":{"name":"j","profile":"trusted"},"source":{"path":"."},
            "image":{"ref":"oci-layout:/x@sha256:0000000000000000000000000000000000000000000000000000000000000000"},
            "steps":[{"name":"build","run":"make"},{"run":"make test"}],
            "outputs":{"paths":["app"]}}"#;
        let plan = planned(spec);
        assert_eq!(
            plan.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["build", "step-2"]
        );
        let events = [
            event(0, "build", Phase::Started, 0),
            event(0, "build", Phase::Finished, 0),
            event(1, "step-2", Phase::Started, 0),
        ];
        let steps = derive(plan.clone(), &events, false);
        assert_eq!(
            steps.iter().map(|s| s.status).collect::<Vec<_>>(),
            [StepStatus::Succeeded, StepStatus::Running]
        );
        assert_eq!(
            (steps[0].exit_code, steps[0].duration_ms),
            (Some(0), Some(7))
        );
        let ended = derive(plan, &events, true);
        assert_eq!(ended[1].status, StepStatus::Interrupted);

        // Without a parsable spec the events alone list the steps, in index order.
        assert!(planned(b"not json").is_empty());
        let steps = derive(
            Vec::new(),
            &[
                event(1, "b", Phase::Finished, 2),
                event(0, "a", Phase::Finished, 0),
            ],
            true,
        );
        assert_eq!(
            steps
                .iter()
                .map(|s| (s.name.as_str(), s.status, s.exit_code))
                .collect::<Vec<_>>(),
            [
                ("a", StepStatus::Succeeded, Some(0)),
                ("b", StepStatus::Failed, Some(2))
            ]
        );
    }
}
