//! The control plane's job logic: admission, the queue and leases, progress, output checks,
//! completion and provenance. The gRPC services are thin adapters over [`Scheduler`]; time
//! and ids are injected so every decision here is testable.
//!
//! This file holds the type, its constructor and accessors; each other file holds one part
//! of the job lifecycle as a further `impl Scheduler` block.

mod build_tokens;
mod caches;
mod complete;
mod images;
mod lease;
mod outputs;
mod progress;
mod queries;
mod runners;
mod submit;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use crate::api::status::ApiError;
use crate::blobs::store::BlobStore;
use crate::caches::CacheStorage;
use crate::clock::{Clock, IdGen, unix_ms};
use crate::config::Mode;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::oidc::Minter;
use crate::provenance::signer::Signer;
use crate::scheduling::SchedulingConfig;
use crate::state::JobState;
use crate::store::{Store, StoreError};

pub use caches::CacheSaveClaim;
pub use complete::RunnerCompletion;
pub use lease::MAX_ACQUIRE_WAIT;
pub use outputs::{OutputClaim, compare_outputs};
pub use queries::trigger_of;
pub use submit::MAX_IDEMPOTENCY_KEY;

/// How often a waiting AcquireJob re-queries the store even without a local notification
/// (retry backoffs ending, jobs queued through another replica).
const ACQUIRE_REPOLL: Duration = Duration::from_millis(500);

/// Shared state and logic behind both services.
#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    blobs: BlobStore,
    hub: Arc<Hub>,
    signer: Signer,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    issuer: String,
    mode: Mode,
    max_upload: u64,
    scheduling: SchedulingConfig,
    metrics: Arc<Metrics>,
    minter: Option<Minter>,
    caches: Option<CacheStorage>,
    admission: Option<crate::policy::Admission>,
}

/// The parts a [`Scheduler`] is made of.
#[derive(Debug)]
pub struct SchedulerParts {
    /// The database.
    pub store: Store,
    /// The blob store.
    pub blobs: BlobStore,
    /// The provenance signer.
    pub signer: Signer,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The id generator.
    pub ids: Arc<dyn IdGen>,
    /// Issuer URL (no trailing `/`).
    pub issuer: String,
    /// Server or local.
    pub mode: Mode,
    /// Upload cap, in bytes.
    pub max_upload: u64,
    /// Leases, retries, deadlines, fairness.
    pub scheduling: SchedulingConfig,
    /// The build-token minter (`[oidc]`); `None`: no build tokens are issued.
    pub minter: Option<Minter>,
    /// Build-cache storage and policy (`[caches]`); `None`: caches are off.
    pub caches: Option<CacheStorage>,
    /// The admission policy (`[policy]`); `None`: every authorized job is admitted.
    pub admission: Option<crate::policy::Admission>,
}

fn now_ms(clock: &dyn Clock) -> i64 {
    unix_ms(clock.now())
}
impl Scheduler {
    /// Assembles a scheduler.
    pub fn new(parts: SchedulerParts) -> Self {
        Self {
            store: parts.store,
            blobs: parts.blobs,
            hub: Arc::new(Hub::default()),
            signer: parts.signer,
            clock: parts.clock,
            ids: parts.ids,
            issuer: parts.issuer.trim_end_matches('/').to_owned(),
            mode: parts.mode,
            max_upload: parts.max_upload,
            scheduling: parts.scheduling,
            metrics: Arc::new(Metrics::default()),
            minter: parts.minter,
            caches: parts.caches,
            admission: parts.admission,
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Now by the scheduler's clock, ms since the Unix epoch (web session expiry).
    pub fn now_ms(&self) -> i64 {
        now_ms(&*self.clock)
    }

    /// The scheduling settings.
    pub fn scheduling(&self) -> &SchedulingConfig {
        &self.scheduling
    }

    /// The `/metrics` text.
    pub async fn render_metrics(&self) -> Result<String, ApiError> {
        let depth = self.store.queue_depth().await?;
        Ok(self.metrics.render(depth))
    }

    /// Counts a refused stale-lease call, then passes the error on.
    fn fenced<T>(&self, r: Result<T, StoreError>) -> Result<T, ApiError> {
        if let Err(StoreError::StaleLease { job, state }) = &r {
            self.metrics
                .stale_lease_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(job_id = %job, %state, "refused a call with a stale lease token");
        }
        Ok(r?)
    }

    /// Records a job that reached a terminal state.
    fn finished(&self, record_created_ms: i64, state: JobState, now_ms: i64) {
        self.metrics.finished.inc(state.as_str());
        self.metrics
            .end_to_end
            .observe_ms(now_ms.saturating_sub(record_created_ms));
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The notification hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}
