//! `GET /jobs/{id}/events?after=SEQ`: what the job page's live tail polls. JSON with the
//! log text, step updates and state since event `SEQ`, and the sequence number to ask after
//! next time. 401 without a login (unless `[web] anonymous_read`).

use airlock_proto::v1 as pb;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::EventKind;
use crate::web::error::WebError;
use crate::web::steps::StepView;
use crate::web::{Shared, params};

/// Events read per poll.
const EVENTS: u32 = 512;

/// Log bytes sent per poll; past that `more` is set and the page asks again at once.
const MAX_LOG_BYTES: usize = 256 * 1024;

/// The answer.
#[derive(Debug, Serialize)]
pub(crate) struct Update {
    /// The job's state now.
    pub(crate) state: &'static str,
    /// Whether it is terminal.
    pub(crate) terminal: bool,
    /// Its message now.
    pub(crate) message: String,
    /// Its exit code now.
    pub(crate) exit_code: i32,
    /// The log text of the events sent (lossy UTF-8).
    pub(crate) log: String,
    /// The steps the events sent updated, in order.
    pub(crate) steps: Vec<StepView>,
    /// The last event sent (or `after` when none): poll after this next.
    pub(crate) seq: u64,
    /// More events are waiting: poll again without a pause.
    pub(crate) more: bool,
}

/// `events` condensed into log text and step updates, up to [`MAX_LOG_BYTES`] of log:
/// `(log, steps, last seq taken, whether events were left over)`.
pub(crate) fn condense(events: &[pb::JobEvent], after: u64) -> (Vec<u8>, Vec<StepView>, u64, bool) {
    let mut log = Vec::new();
    let mut steps = Vec::new();
    let mut seq = after;
    for (i, event) in events.iter().enumerate() {
        match &event.kind {
            Some(EventKind::Log(chunk)) => {
                if !log.is_empty() && log.len() + chunk.data.len() > MAX_LOG_BYTES {
                    return (log, steps, seq, true);
                }
                log.extend_from_slice(&chunk.data);
            }
            Some(EventKind::Step(step)) => steps.push(StepView::from_event(step)),
            Some(EventKind::State(_)) | None => {}
        }
        seq = event.seq;
        if log.len() >= MAX_LOG_BYTES && i + 1 < events.len() {
            return (log, steps, seq, true);
        }
    }
    (log, steps, seq, false)
}

/// `GET /jobs/{id}/events?after=SEQ`.
pub(crate) async fn events(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match update(&web, &headers, &raw, query.as_deref()).await {
        Ok(update) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&update).unwrap_or_else(|_| "{}".to_owned()),
        )
            .into_response(),
        Err(e) => e.into_json(),
    }
}

async fn update(
    web: &Shared,
    headers: &HeaderMap,
    raw: &str,
    query: Option<&str>,
) -> Result<Update, WebError> {
    let id = params::job_id(raw)?;
    if web.session(headers).await?.is_none() && !web.anonymous_read {
        return Err(WebError::Unauthorized);
    }
    let after = params::number::<u64>(query, "after")?.unwrap_or(0);
    // The record first: if it is terminal, the events below include its last one.
    let record = web.scheduler.job(id).await?;
    let events = web
        .scheduler
        .store()
        .events_after(id, after, EVENTS)
        .await?;
    let full = events.len() == usize::try_from(EVENTS).unwrap_or(usize::MAX);
    let (log, steps, seq, cut) = condense(&events, after);
    Ok(Update {
        state: record.state.as_str(),
        terminal: record.state.is_terminal(),
        message: record.message,
        exit_code: record.exit_code,
        log: String::from_utf8_lossy(&log).into_owned(),
        steps,
        seq,
        more: cut || full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_event(seq: u64, data: &[u8]) -> pb::JobEvent {
        pb::JobEvent {
            seq,
            time_ms: 0,
            kind: Some(EventKind::Log(pb::LogChunk {
                step_index: 0,
                stream: 0,
                data: data.to_vec(),
            })),
        }
    }

    #[test]
    fn events_condense_into_text_and_steps_with_a_cap() {
        let step = pb::JobEvent {
            seq: 3,
            time_ms: 0,
            kind: Some(EventKind::Step(pb::StepEvent {
                step_index: 0,
                step_name: "build".into(),
                phase: pb::step_event::Phase::Started as i32,
                exit_code: 0,
                duration_ms: 0,
            })),
        };
        let events = [log_event(2, b"a"), step, log_event(4, b"b")];
        let (log, steps, seq, more) = condense(&events, 1);
        assert_eq!((log.as_slice(), seq, more), (&b"ab"[..], 4, false));
        assert_eq!(steps[0].name, "build");
        assert_eq!(condense(&[], 7), (Vec::new(), Vec::new(), 7, false));

        let big = vec![b'x'; MAX_LOG_BYTES - 1];
        let events = [log_event(1, &big), log_event(2, b"yy"), log_event(3, b"z")];
        let (log, _, seq, more) = condense(&events, 0);
        assert_eq!((log.len(), seq, more), (MAX_LOG_BYTES - 1, 1, true));
        // One chunk larger than the cap is still sent whole, alone.
        let huge = vec![b'x'; MAX_LOG_BYTES + 1];
        let (log, _, seq, more) = condense(&[log_event(5, &huge), log_event(6, b"a")], 4);
        assert_eq!((log.len(), seq, more), (MAX_LOG_BYTES + 1, 5, true));
    }
}
