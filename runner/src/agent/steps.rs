//! Phase 2 of a job: each step in a fresh sandbox, its logs forwarded as events, its
//! end turned into the job's end when it failed.

use std::time::Instant;

use airlock_job::JobSpec;
use airlock_proto::v1::step_event::Phase;
use airlock_proto::v1::{Lease, LogStream, StepEvent};
use tokio::sync::{mpsc, watch};

use super::Runner;
use super::job::JobEnd;
use super::prepare::PreparedJob;
use crate::profile::Profile;
use crate::report::events::EventSink;
use crate::sandbox::{
    FailureKind, JobSandbox, PreparedStep, SandboxError, SandboxPlan, StepOutcome, Stream,
};
use crate::services::token_broker::TokenBroker;

impl Runner {
    /// Runs the job's steps in order, each in a fresh container of the attempt's sandbox
    /// `job`, until one fails, the job times out or it is cancelled (`Err` holds how the job
    /// ended then). `broker`, when the job has one, is mounted into every step.
    ///
    /// Each step's container is created while the step before it runs, so a step starts
    /// as soon as the previous one has ended; a container prepared for a step that will not
    /// run is discarded before this returns.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_steps(
        &self,
        job: &JobSandbox,
        lease: &Lease,
        events: &EventSink,
        cancel: &watch::Receiver<bool>,
        spec: &JobSpec,
        profile: &Profile,
        id_map: crate::sandbox::IdMap,
        deadline: Instant,
        prepared: &PreparedJob,
        broker: Option<&TokenBroker>,
    ) -> Result<(), JobEnd> {
        let plans = StepPlans {
            spec,
            profile,
            id_map,
            prepared,
            broker,
        };
        let container_id =
            |i| crate::state::container_id(&lease.job_id, lease.attempt, i, self.instance.id());
        if spec.steps.is_empty() {
            return Ok(());
        }
        let mut current = job.prepare_step(&container_id(0), &plans.plan(0)).await;
        for i in 0..spec.steps.len() {
            let following =
                (i + 1 < spec.steps.len()).then(|| (container_id(i + 1), plans.plan(i + 1)));
            // The step starts first; the next one's container is created while it runs.
            let prepare_following = async {
                match &following {
                    Some((id, plan)) => Some(job.prepare_step(id, plan).await),
                    None => None,
                }
            };
            let run = self.run_one_step(job, events, cancel, spec, deadline, prepared, i, current);
            let (ended, next) = tokio::join!(run, prepare_following);
            if let Err(end) = ended {
                if let Some(Ok(step)) = next
                    && let Err(e) = job.discard(step).await
                {
                    tracing::warn!(job = %lease.job_id, error = %e, "could not discard a prepared step");
                }
                return Err(end);
            }
            match next {
                Some(next) => current = next,
                None => break,
            }
        }
        Ok(())
    }

    /// Runs step `i`, prepared as `step` (or not, `Err`), and turns its end into the job's
    /// when it failed.
    #[allow(clippy::too_many_arguments)]
    async fn run_one_step(
        &self,
        job: &JobSandbox,
        events: &EventSink,
        cancel: &watch::Receiver<bool>,
        spec: &JobSpec,
        deadline: Instant,
        prepared: &PreparedJob,
        i: usize,
        step: Result<PreparedStep, SandboxError>,
    ) -> Result<(), JobEnd> {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let name = spec.step_name(i);
        let step =
            step.map_err(|e| JobEnd::Infra(format!("step `{name}`: sandbox failure: {e}")))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            if let Err(e) = job.discard(step).await {
                tracing::warn!(error = %e, "could not discard a prepared step");
            }
            return Err(JobEnd::TimedOut(format!(
                "the job exceeded its timeout of {}",
                spec.job.timeout
            )));
        }
        events
            .step(StepEvent {
                step_index: index,
                step_name: name.clone(),
                phase: Phase::Started as i32,
                exit_code: 0,
                duration_ms: 0,
            })
            .await;
        let (tx, mut rx) = mpsc::channel::<crate::sandbox::OutputChunk>(64);
        let forward = {
            let events = events.clone();
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    let stream = match chunk.stream {
                        Stream::Stdout => LogStream::Stdout,
                        Stream::Stderr => LogStream::Stderr,
                    };
                    events.log(index, stream, chunk.data).await;
                }
            })
        };
        let started = std::time::SystemTime::now();
        let result = job.run_prepared(step, remaining, cancel.clone(), tx).await;
        let _ = forward.await;
        let mut outcome = match result {
            Ok(o) => o,
            Err(e) => {
                return Err(JobEnd::Infra(format!(
                    "step `{name}`: sandbox failure: {e}"
                )));
            }
        };
        if let Some(record) = outcome.trace.take() {
            prepared
                .trace
                .step_done(events, index, &name, started, record)
                .await;
        }
        let code = exit_code_of(&outcome);
        events
            .step(StepEvent {
                step_index: index,
                step_name: name.clone(),
                phase: Phase::Finished as i32,
                exit_code: code,
                duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            })
            .await;
        match outcome.failure_kind() {
            None => Ok(()),
            Some(FailureKind::Cancelled) => {
                Err(JobEnd::Cancelled(format!("cancelled during step `{name}`")))
            }
            Some(FailureKind::TimedOut) => Err(JobEnd::TimedOut(format!(
                "timed-out: step `{name}` was killed: the job exceeded its timeout of {}",
                spec.job.timeout
            ))),
            Some(kind) => Err(JobEnd::Failed {
                message: failure_message(kind, &name, code, spec),
                exit_code: code,
            }),
        }
    }
}

/// What every step's sandbox plan is made of.
struct StepPlans<'a> {
    spec: &'a JobSpec,
    profile: &'a Profile,
    id_map: crate::sandbox::IdMap,
    prepared: &'a PreparedJob,
    broker: Option<&'a TokenBroker>,
}

impl StepPlans<'_> {
    /// The sandbox plan of step `i`.
    fn plan(&self, i: usize) -> SandboxPlan {
        let Self {
            spec,
            profile,
            id_map,
            prepared,
            broker,
        } = self;
        let PreparedJob {
            work,
            out,
            source_epoch,
            inputs_dir,
            deps,
            caches,
            image,
            ..
        } = prepared;
        let step = &spec.steps[i];
        let mut plan = SandboxPlan::new(&image.rootfs, work, out, step.command.argv(), *id_map);
        let mut env: Vec<(String, String)> = image
            .env
            .iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        env.push(("SOURCE_DATE_EPOCH".into(), source_epoch.to_string()));
        if let Some(deps) = deps {
            env.extend(deps.env.iter().cloned());
        }
        env.extend(step.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        plan.env = env;
        plan.inputs_dir = inputs_dir.clone();
        plan.deps_dir = deps.as_ref().map(|d| d.dir.clone());
        plan.cache_dir = caches.cache_dir.clone();
        plan.tmp_size_bytes = spec.resources.tmp.0;
        plan.memory_bytes = Some(spec.resources.memory.0);
        plan.pids = Some(spec.resources.pids);
        plan.cpu_millis = Some(profile.cpu_millis());
        plan.open_files = Some(open_files_limit(profile.ceilings.open_files));
        plan.file_size_bytes = Some(profile.ceilings.output_bytes.0);
        plan.seccomp = profile.seccomp.clone();
        plan.trace = prepared.trace.setup.clone();
        if let Some(broker) = broker {
            plan.oidc_socket_dir = Some(broker.socket_dir().to_owned());
            plan.env.extend(
                crate::services::token_broker::step_env()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
        }
        plan
    }
}

/// The message of a failed step: starts with the failure kind (`out-of-memory:`,
/// `pids-limit:`, `tmp-full:`), except for a plain non-zero exit.
fn failure_message(kind: FailureKind, name: &str, code: i32, spec: &JobSpec) -> String {
    let r = &spec.resources;
    match kind {
        FailureKind::OutOfMemory => format!(
            "{kind}: step `{name}` was killed by the kernel's OOM killer at its memory limit of {}",
            r.memory
        ),
        FailureKind::PidsLimit => format!(
            "{kind}: step `{name}` reached its process limit of {} (a fork failed) and ended with code {code}",
            r.pids
        ),
        FailureKind::TmpFull => format!(
            "{kind}: step `{name}` filled /tmp to its cap of {} (no space left on device) and ended with code {code}",
            r.tmp
        ),
        FailureKind::Signalled => format!(
            "{kind}: step `{name}` was killed by signal {} (exit code {code})",
            code - 128
        ),
        _ => format!("step `{name}` failed with exit code {code}"),
    }
}

/// `RLIMIT_NOFILE` for a step: the profile's, but never above the runner's own hard limit
/// (a user namespace cannot raise it).
fn open_files_limit(wanted: u64) -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| wanted.min(hard))
        .unwrap_or(wanted)
}

/// The step's exit code as a shell would show it (128+N for signal N).
fn exit_code_of(o: &StepOutcome) -> i32 {
    match (o.exit_code, o.signal) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    }
}
