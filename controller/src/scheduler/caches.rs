//! The build caches of a leased job: what a restore finds (the trust-domain rule applied to
//! the controller's own record of the job's profile, never to what the runner says), which
//! saves are accepted, how a runner's cache report is checked before it reaches provenance,
//! and what a success records.

use std::collections::BTreeSet;

use airlock_attest::Sha256Digest;
use airlock_job::JobSpec;
use airlock_proto::v1 as pb;

use super::{Scheduler, now_ms};
use crate::api::status::ApiError;
use crate::caches::{CachePlan, CacheStorage, TrustDomain, plan, project_of};
use crate::ids::{JobId, LeaseToken};
use crate::provenance::caches::{CacheReport, CacheUse};
use crate::store::{CacheRecord, JobRecord};

/// A cache save that passed its checks and may now stream bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSaveClaim {
    /// The job.
    pub job: JobId,
    /// The `[[caches]]` name.
    pub name: String,
    /// The runner's claimed digest.
    pub sha256: Sha256Digest,
    /// The runner's claimed size.
    pub size: u64,
}

fn digest(field: &str, hex: &str) -> Result<Sha256Digest, ApiError> {
    Sha256Digest::from_hex(hex)
        .map_err(|e| ApiError::invalid(field, format!("not 64 lowercase hex digits: {e}")))
}

/// The plan for the cache `name` of the job `spec`, or why the name is not one of its caches.
fn plan_of(
    storage: &CacheStorage,
    spec: &JobSpec,
    project: &str,
    name: &str,
    key: Sha256Digest,
) -> Result<CachePlan, String> {
    if !spec.caches.iter().any(|c| c.name == name) {
        return Err(format!("the job declares no cache named `{name}`"));
    }
    Ok(plan(storage.policy, &spec.job.profile, project, name, key))
}

fn spec_of(record: &JobRecord) -> Result<JobSpec, ApiError> {
    JobSpec::from_json(&record.spec_json)
        .map_err(|e| ApiError::FailedPrecondition(format!("the stored spec no longer parses: {e}")))
}

impl Scheduler {
    /// The cache storage, if caches are on.
    pub fn cache_storage(&self) -> Option<&CacheStorage> {
        self.caches.as_ref()
    }

    /// Finds the cache to restore for `name` of a leased job: the header to send and, when
    /// found, the archive to stream after it.
    pub async fn restore_cache(
        &self,
        job: JobId,
        token: LeaseToken,
        name: &str,
        key_hex: &str,
    ) -> Result<(pb::CacheHeader, Option<Sha256Digest>), ApiError> {
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        let key = digest("key_sha256", key_hex)?;
        let Some(storage) = &self.caches else {
            return Ok((pb::CacheHeader::default(), None));
        };
        let spec = spec_of(&record)?;
        let project = project_of(&spec);
        let plan = plan_of(storage, &spec, &project, name, key)
            .map_err(|m| ApiError::invalid("name", m))?;
        let mut header = pb::CacheHeader {
            saves: plan.save.is_some(),
            max_archive_bytes: storage.max_archive_bytes,
            project,
            ..Default::default()
        };
        for lookup in &plan.restore {
            let Some(found) = storage
                .store
                .find_cache(lookup, now_ms(&*self.clock))
                .await?
            else {
                continue;
            };
            if !storage.blobs.contains(&found.archive).await {
                // Its archive was lost (or deleted by hand): forget it and look further.
                tracing::warn!(job_id = %job, cache = name, archive = %found.archive, "a cache's archive is missing; forgetting the cache");
                storage.store.forget_cache(&found.scope, &found.key).await?;
                continue;
            }
            tracing::info!(job_id = %job, cache = name, domain = found.scope.domain.as_str(), archive = %found.archive, "cache found");
            header.found = true;
            header.domain = found.scope.domain.as_str().to_owned();
            header.key_sha256 = found.key.hex();
            header.archive_sha256 = found.archive.hex();
            header.size = found.size;
            return Ok((header, Some(found.archive)));
        }
        Ok((header, None))
    }

    /// Checks a cache save's header before any bytes are accepted.
    pub async fn claim_cache_save(
        &self,
        header: &pb::SaveCacheHeader,
    ) -> Result<CacheSaveClaim, ApiError> {
        let job = JobId::parse("header.job_id", &header.job_id)?;
        let token = LeaseToken::parse("header.lease_token", &header.lease_token)?;
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        let Some(storage) = &self.caches else {
            return Err(ApiError::FailedPrecondition(
                "this controller keeps no caches ([caches] enabled = false)".into(),
            ));
        };
        let key = digest("header.key_sha256", &header.key_sha256)?;
        let sha256 = digest("header.archive_sha256", &header.archive_sha256)?;
        let spec = spec_of(&record)?;
        let plan = plan_of(storage, &spec, &project_of(&spec), &header.name, key)
            .map_err(|m| ApiError::invalid("header.name", m))?;
        if plan.save.is_none() {
            return Err(ApiError::FailedPrecondition(format!(
                "a `{}` job does not save caches here",
                spec.job.profile
            )));
        }
        if header.size > storage.max_archive_bytes {
            return Err(ApiError::ResourceExhausted(format!(
                "cache `{}` is {} bytes; the controller keeps archives of at most {} \
                 ([caches] max_archive_bytes)",
                header.name, header.size, storage.max_archive_bytes
            )));
        }
        Ok(CacheSaveClaim {
            job,
            name: header.name.clone(),
            sha256,
            size: header.size,
        })
    }

    /// Checks a runner's report of the caches a succeeded job restored and saved: every name
    /// is one of the job's caches, each restored domain is one the job may read, each saved
    /// archive is in the cache store with its size. The error says what is wrong.
    pub(super) async fn check_cache_report(
        &self,
        spec: &JobSpec,
        restored: &[pb::CacheArchive],
        saved: &[pb::CacheArchive],
    ) -> Result<CacheReport, String> {
        let declared: Vec<String> = spec.caches.iter().map(|c| c.name.clone()).collect();
        let Some(storage) = &self.caches else {
            if restored.is_empty() && saved.is_empty() {
                return Ok(CacheReport {
                    declared,
                    ..CacheReport::default()
                });
            }
            return Err("caches are reported but this controller keeps none".into());
        };
        let project = project_of(spec);
        let mut report = CacheReport {
            declared,
            ..CacheReport::default()
        };
        for (list, is_save) in [(restored, false), (saved, true)] {
            let mut seen = BTreeSet::new();
            for c in list {
                let what = if is_save { "saved" } else { "restored" };
                if !seen.insert(c.name.as_str()) {
                    return Err(format!("cache `{}` is reported {what} twice", c.name));
                }
                let key = Sha256Digest::from_hex(&c.key_sha256)
                    .map_err(|e| format!("{what} cache `{}`: key: {e}", c.name))?;
                let archive = Sha256Digest::from_hex(&c.archive_sha256)
                    .map_err(|e| format!("{what} cache `{}`: archive: {e}", c.name))?;
                let plan = plan_of(storage, spec, &project, &c.name, key)?;
                let domain = if is_save {
                    let Some((scope, _)) = plan.save else {
                        return Err(format!(
                            "cache `{}` is reported saved by a job that saves none",
                            c.name
                        ));
                    };
                    let on_disk = tokio::fs::metadata(storage.blobs.path_of(&archive))
                        .await
                        .map(|m| m.len())
                        .ok();
                    if on_disk != Some(c.size) {
                        return Err(format!(
                            "saved cache `{}`: no archive sha256:{} of {} bytes was uploaded",
                            c.name, c.archive_sha256, c.size
                        ));
                    }
                    scope.domain
                } else {
                    let domain = TrustDomain::parse(&c.domain).ok_or_else(|| {
                        format!("restored cache `{}`: domain {:?}", c.name, c.domain)
                    })?;
                    if !plan.restore.iter().any(|l| l.scope.domain == domain) {
                        return Err(format!(
                            "restored cache `{}` is reported from the {} domain, which a `{}` \
                             job never reads",
                            c.name, c.domain, spec.job.profile
                        ));
                    }
                    domain
                };
                let used = CacheUse {
                    name: c.name.clone(),
                    domain,
                    project: project.clone(),
                    key,
                    archive,
                    size: c.size,
                };
                if is_save {
                    report.saved.push(used);
                } else {
                    report.restored.push(used);
                }
            }
        }
        Ok(report)
    }

    /// Records the caches a job saved, once it is SUCCEEDED: each replaces its scope and
    /// key, the scope is trimmed to its cap, and archives nothing names any more are
    /// deleted. Failures are logged; the job's success stands.
    pub(super) async fn record_saved_caches(&self, job: JobId, saved: &[CacheUse]) {
        let Some(storage) = &self.caches else { return };
        let now = now_ms(&*self.clock);
        for c in saved {
            let record = CacheRecord {
                scope: crate::caches::Scope {
                    project: c.project.clone(),
                    domain: c.domain,
                    name: c.name.clone(),
                },
                key: c.key,
                archive: c.archive,
                size: c.size,
                created_ms: now,
                used_ms: now,
            };
            let mut unused = Vec::new();
            match storage.store.save_cache(&record).await {
                Ok(replaced) => unused.extend(replaced),
                Err(e) => {
                    tracing::warn!(job_id = %job, cache = %c.name, error = %e, "could not record a saved cache");
                    continue;
                }
            }
            match storage
                .store
                .evict_caches(&record.scope, storage.max_scope_bytes)
                .await
            {
                Ok(evicted) => {
                    if !evicted.is_empty() {
                        tracing::info!(job_id = %job, cache = %c.name, evicted = evicted.len(), "evicted least recently used caches of the scope");
                    }
                    unused.extend(evicted);
                }
                Err(e) => {
                    tracing::warn!(job_id = %job, cache = %c.name, error = %e, "could not evict caches")
                }
            }
            tracing::info!(job_id = %job, cache = %c.name, domain = c.domain.as_str(), archive = %c.archive, size = c.size, "cache saved");
            storage.drop_archives(&unused).await;
        }
    }
}
