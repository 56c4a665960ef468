//! Ordered, batched delivery of step events and logs to the controller. Every log chunk
//! passes through a [`Redactor`] per (step, stream) first, so the job's secrets (its lease
//! token and job token, the runner's registration secret and runner tokens, anything
//! registered with [`EventSink::add_secret`]) never leave the runner, even when a step prints
//! one split across writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_proto::auth::AuthedChannel;
use airlock_proto::v1::runner_event::Kind;
use airlock_proto::v1::runner_service_client::RunnerServiceClient;
use airlock_proto::v1::{LogChunk, LogStream, ReportEventsRequest, RunnerEvent, StepEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::report::redact::Redactor;

/// What travels from the sinks to the reporting task, in order.
#[derive(Debug)]
enum Message {
    Event(RunnerEvent),
    /// A value to redact from everything reported after it.
    Secret(Vec<u8>),
}

/// Batches are sent when this much log data is pending...
const BATCH_BYTES: usize = 256 * 1024;
/// ...or when the oldest pending event is this old.
const BATCH_DELAY: Duration = Duration::from_millis(50);

/// The sending half: cheap to clone, used by the job's phases.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Message>,
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
        let _ = self.tx.blocking_send(Message::Event(RunnerEvent {
            kind: Some(Kind::Log(LogChunk {
                step_index,
                stream: LogStream::System as i32,
                data,
            })),
        }));
    }

    /// Registers a secret value (a token handed to the job, a registry credential): from now
    /// on it is replaced by `[REDACTED]` in every log chunk reported.
    pub async fn add_secret(&self, secret: impl AsRef<[u8]>) {
        let _ = self
            .tx
            .send(Message::Secret(secret.as_ref().to_vec()))
            .await;
    }

    async fn send(&self, kind: Kind) {
        // A closed channel means the reporter gave up (controller gone); the job's
        // completion call reports that failure.
        let _ = self
            .tx
            .send(Message::Event(RunnerEvent { kind: Some(kind) }))
            .await;
    }
}

/// The reporting task: owns the receiving half and a client.
#[derive(Debug)]
pub struct EventReporter {
    handle: JoinHandle<Result<(), tonic::Status>>,
}

impl EventReporter {
    /// Starts reporting for one job lease. `cancel` is set when the controller asks
    /// the job to stop. The lease token is redacted from the logs from the start.
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

/// Redacts log chunks per (step, stream) and flushes held-back bytes when a step finishes
/// and when the job ends.
#[derive(Debug, Default)]
struct Redaction {
    secrets: Vec<Vec<u8>>,
    streams: HashMap<(u32, i32), Redactor>,
}

impl Redaction {
    fn add(&mut self, secret: Vec<u8>) {
        for r in self.streams.values_mut() {
            r.add(&secret);
        }
        self.secrets.push(secret);
    }

    /// The events to report for `event` (a log chunk may be held back in part or whole).
    fn apply(&mut self, event: RunnerEvent, out: &mut Vec<RunnerEvent>) {
        match event.kind {
            Some(Kind::Log(mut chunk)) => {
                let secrets = &self.secrets;
                let r = self
                    .streams
                    .entry((chunk.step_index, chunk.stream))
                    .or_insert_with(|| Redactor::new(secrets));
                chunk.data = r.push(&chunk.data);
                if !chunk.data.is_empty() {
                    out.push(RunnerEvent {
                        kind: Some(Kind::Log(chunk)),
                    });
                }
            }
            Some(Kind::Step(step)) => {
                self.flush(Some(step.step_index), out);
                out.push(RunnerEvent {
                    kind: Some(Kind::Step(step)),
                });
            }
            None => {}
        }
    }

    /// Emits what the redactors of `step` (or of every step) still hold.
    fn flush(&mut self, step: Option<u32>, out: &mut Vec<RunnerEvent>) {
        let mut keys: Vec<_> = self
            .streams
            .keys()
            .filter(|(s, _)| step.is_none_or(|x| x == *s))
            .copied()
            .collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(r) = self.streams.get_mut(&key) {
                let data = r.finish();
                if !data.is_empty() {
                    out.push(RunnerEvent {
                        kind: Some(Kind::Log(LogChunk {
                            step_index: key.0,
                            stream: key.1,
                            data,
                        })),
                    });
                }
            }
        }
    }
}

fn log_bytes(events: &[RunnerEvent]) -> usize {
    events
        .iter()
        .map(|e| match &e.kind {
            Some(Kind::Log(l)) => l.data.len(),
            _ => 0,
        })
        .sum()
}

async fn report(
    mut client: RunnerServiceClient<AuthedChannel>,
    job_id: String,
    lease_token: String,
    mut rx: mpsc::Receiver<Message>,
    cancel: Arc<watch::Sender<bool>>,
) -> Result<(), tonic::Status> {
    let mut redaction = Redaction::default();
    redaction.add(lease_token.clone().into_bytes());
    let mut open = true;
    while open {
        let mut batch = Vec::new();
        match rx.recv().await {
            Some(Message::Event(ev)) => redaction.apply(ev, &mut batch),
            Some(Message::Secret(s)) => redaction.add(s),
            None => open = false,
        }
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while open && log_bytes(&batch) < BATCH_BYTES {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Message::Event(ev))) => redaction.apply(ev, &mut batch),
                Ok(Some(Message::Secret(s))) => redaction.add(s),
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        if !open {
            redaction.flush(None, &mut batch);
        }
        if batch.is_empty() {
            continue;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(step: u32, data: &[u8]) -> RunnerEvent {
        RunnerEvent {
            kind: Some(Kind::Log(LogChunk {
                step_index: step,
                stream: LogStream::Stdout as i32,
                data: data.to_vec(),
            })),
        }
    }

    fn text(events: &[RunnerEvent]) -> String {
        events
            .iter()
            .map(|e| match &e.kind {
                Some(Kind::Log(l)) => String::from_utf8_lossy(&l.data).into_owned(),
                Some(Kind::Step(_)) => "|".into(),
                None => String::new(),
            })
            .collect()
    }

    #[test]
    fn secrets_split_across_chunks_are_redacted_and_flushed_at_step_end() {
        let mut r = Redaction::default();
        r.add(b"lease-token-123".to_vec());
        let mut out = Vec::new();
        r.apply(log(0, b"token is lease-to"), &mut out);
        r.apply(log(0, b"ken-123 ok lease"), &mut out);
        r.apply(
            RunnerEvent {
                kind: Some(Kind::Step(StepEvent {
                    step_index: 0,
                    ..Default::default()
                })),
            },
            &mut out,
        );
        assert_eq!(text(&out), "token is [REDACTED] ok lease|");
        r.add(b"added-later".to_vec());
        r.apply(log(1, b"x added-later y"), &mut out);
        r.flush(None, &mut out);
        assert!(text(&out).ends_with("x [REDACTED] y"), "{}", text(&out));
    }
}
