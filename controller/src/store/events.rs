//! Job events: an append-only, per-job numbered log of state changes, step events and log
//! chunks, stored as encoded `airlock.v1.JobEvent` messages.

use airlock_attest::{Sha256Digest, Sha256Hasher};
use airlock_proto::v1 as pb;
use prost::Message;

use super::codec::{EventKind, decode, kind_name};
use super::sql::{Conn, query};
use super::{Store, StoreError};
use crate::ids::JobId;

/// Rows fetched per query when scanning a job's events.
const PAGE: i64 = 512;

/// The end of a job's log, as [`Store::log_tail`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    /// The last bytes of the log, in order.
    pub data: Vec<u8>,
    /// True when earlier bytes were left out.
    pub truncated: bool,
}

/// Appends `kinds` as the job's next events (all at `time_ms`) inside the caller's
/// transaction. Returns the sequence number of the last one (the current last if `kinds` is
/// empty).
pub(super) async fn append(
    conn: &mut Conn<'_>,
    job: JobId,
    time_ms: i64,
    kinds: impl IntoIterator<Item = EventKind>,
) -> Result<u64, StoreError> {
    let mut seq: i64 = query("SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id = $1")
        .bind(job.to_string())
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    for kind in kinds {
        seq += 1;
        let name = kind_name(&kind);
        let event = pb::JobEvent {
            seq: u64::try_from(seq).unwrap_or(0),
            time_ms,
            kind: Some(kind),
        };
        query("INSERT INTO job_events (job_id, seq, time_ms, kind, event) VALUES ($1, $2, $3, $4, $5)")
            .bind(job.to_string())
            .bind(seq)
            .bind(time_ms)
            .bind(name)
            .bind(event.encode_to_vec())
            .execute(conn)
            .await?;
    }
    Ok(u64::try_from(seq).unwrap_or(0))
}

impl Store {
    /// Up to `limit` events of `job` with `seq > after_seq`, in order.
    pub async fn events_after(
        &self,
        job: JobId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<pb::JobEvent>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let rows = query(
            "SELECT event FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(job.to_string())
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut pooled.conn())
        .await?;
        rows.iter()
            .map(|row| decode(&row.try_get::<Vec<u8>, _>(0)?))
            .collect()
    }

    /// The sequence number of the job's last event (0 when it has none).
    pub async fn last_event_seq(&self, job: JobId) -> Result<u64, StoreError> {
        let seq: i64 = query("SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id = $1")
            .bind(job.to_string())
            .fetch_one(&mut self.pool.acquire().await?.conn())
            .await?
            .try_get(0)?;
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    /// The job's step events with `seq <= up_to_seq`, in order.
    pub async fn step_events(
        &self,
        job: JobId,
        up_to_seq: u64,
    ) -> Result<Vec<pb::StepEvent>, StoreError> {
        let rows = query(
            "SELECT event FROM job_events WHERE job_id = $1 AND kind = 'step' AND seq <= $2 \
             ORDER BY seq",
        )
        .bind(job.to_string())
        .bind(i64::try_from(up_to_seq).unwrap_or(i64::MAX))
        .fetch_all(&mut self.pool.acquire().await?.conn())
        .await?;
        let mut steps = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(EventKind::Step(step)) = decode(&row.try_get::<Vec<u8>, _>(0)?)?.kind {
                steps.push(step);
            }
        }
        Ok(steps)
    }

    /// The last `max_bytes` (or fewer) of the job's log chunks with `seq <= up_to_seq`,
    /// read backwards a page at a time, so a long log is not read whole.
    pub async fn log_tail(
        &self,
        job: JobId,
        up_to_seq: u64,
        max_bytes: usize,
    ) -> Result<LogTail, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut total = 0usize;
        let mut before = i64::try_from(up_to_seq)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        'pages: loop {
            let rows = query(
                "SELECT seq, event FROM job_events WHERE job_id = $1 AND kind = 'log' \
                 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            )
            .bind(job.to_string())
            .bind(before)
            .bind(PAGE)
            .fetch_all(&mut conn)
            .await?;
            for row in &rows {
                before = row.try_get(0)?;
                if let Some(EventKind::Log(chunk)) = decode(&row.try_get::<Vec<u8>, _>(1)?)?.kind {
                    total = total.saturating_add(chunk.data.len());
                    chunks.push(chunk.data);
                    if total >= max_bytes {
                        break 'pages;
                    }
                }
            }
            if rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        let mut data = Vec::with_capacity(total.min(max_bytes));
        for chunk in chunks.iter().rev() {
            data.extend_from_slice(chunk);
        }
        // The tail reached `max_bytes`: it is cut if bytes were dropped from the oldest chunk
        // read or if older chunks exist.
        let truncated = if total > max_bytes {
            true
        } else if total == max_bytes {
            query(
                "SELECT 1 FROM job_events WHERE job_id = $1 AND kind = 'log' AND seq < $2 LIMIT 1",
            )
            .bind(job.to_string())
            .bind(before)
            .fetch_optional(&mut conn)
            .await?
            .is_some()
        } else {
            false
        };
        if data.len() > max_bytes {
            data.drain(..data.len() - max_bytes);
        }
        Ok(LogTail { data, truncated })
    }

    /// sha256 of the concatenated `data` of the job's log chunks, in event order.
    pub async fn log_digest(&self, job: JobId) -> Result<Sha256Digest, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        let mut hasher = Sha256Hasher::new();
        let mut after: i64 = 0;
        loop {
            let rows = query(
                "SELECT seq, event FROM job_events WHERE job_id = $1 AND kind = 'log' AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(job.to_string())
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut conn)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                after = row.try_get(0)?;
                if let Some(EventKind::Log(chunk)) = decode(&row.try_get::<Vec<u8>, _>(1)?)?.kind {
                    hasher.update(&chunk.data);
                }
            }
        }
        Ok(hasher.finalize())
    }
}
