//! Ordered, batched delivery of step events and logs to the controller.

use std::sync::Arc;
use std::time::Duration;

use airlock_proto::auth::AuthedChannel;
use airlock_proto::v1::runner_event::Kind;
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use airlock_proto::v1::{LogChunk, LogStream, ReportEventsRequest, RunnerEvent, StepEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Batches are sent when this much log data is pending...
const BATCH_BYTES: usize = 256 * 1024;
/// ...or when the oldest pending event is this old.
const BATCH_DELAY: Duration = Duration::from_millis(50);

/// The sending half: cheap to clone, used by the job's phases.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<RunnerEvent>,
}

impl EventSink {
    /// A runner-side message shown in the job's log.
    pub async fn system(&self, step_index: u32, message: impl Into<String>) {
        let mut data = message.into().into_bytes();
        data.push(b'\n');
        self.send(Kind::Log(LogChunk {
            step_index,
            stream: LogStream::System as i32,
            data,
        }))
        .await;
    }

    /// A step's own output.
    pub async fn log(&self, step_index: u32, stream: LogStream, data: Vec<u8>) {
        self.send(Kind::Log(LogChunk {
            step_index,
            stream: stream as i32,
            data,
        }))
        .await;
    }

    /// A step started or finished.
    pub async fn step(&self, event: StepEvent) {
        self.send(Kind::Step(event)).await;
    }

    /// From a blocking thread.
    pub fn system_blocking(&self, step_index: u32, message: impl Into<String>) {
        let mut data = message.into().into_bytes();
        data.push(b'\n');
        let _ = self.tx.blocking_send(RunnerEvent {
            kind: Some(Kind::Log(LogChunk {
                step_index,
                stream: LogStream::System as i32,
                data,
            })),
        });
    }

    async fn send(&self, kind: Kind) {
        // A closed channel means the reporter gave up (controller gone); the job's
        // completion call reports that failure.
        let _ = self.tx.send(RunnerEvent { kind: Some(kind) }).await;
    }
}

/// The reporting task: owns the receiving half and a client.
#[derive(Debug)]
pub struct EventReporter {
    handle: JoinHandle<Result<(), tonic::Status>>,
}

impl EventReporter {
    /// Starts reporting for one job lease. `cancel` is set when the controller asks
    /// the job to stop.
    pub fn start(
        client: RunnerServiceClient<AuthedChannel>,
        job_id: String,
        lease_token: String,
        cancel: Arc<watch::Sender<bool>>,
    ) -> (EventSink, EventReporter) {
        let (tx, rx) = mpsc::channel(1024);
        let handle = tokio::spawn(report(client, job_id, lease_token, rx, cancel));
        (EventSink { tx }, EventReporter { handle })
    }

    /// Waits until every event sent before the last sink was dropped is delivered.
    pub async fn finish(self) -> Result<(), tonic::Status> {
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(tonic::Status::internal(format!(
                "event reporter panicked: {e}"
            ))),
        }
    }
}

async fn report(
    mut client: RunnerServiceClient<AuthedChannel>,
    job_id: String,
    lease_token: String,
    mut rx: mpsc::Receiver<RunnerEvent>,
    cancel: Arc<watch::Sender<bool>>,
) -> Result<(), tonic::Status> {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut bytes = 0usize;
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while bytes < BATCH_BYTES {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ev)) => {
                    if let Some(Kind::Log(l)) = &ev.kind {
                        bytes += l.data.len();
                    }
                    batch.push(ev);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let resp = client
            .report_events(ReportEventsRequest {
                job_id: job_id.clone(),
                lease_token: lease_token.clone(),
                events: batch,
            })
            .await?;
        if resp.into_inner().cancel_requested {
            let _ = cancel.send(true);
        }
    }
    Ok(())
}
