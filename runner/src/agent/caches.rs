//! A job's `[[caches]]`, outside the sandbox: before the first step each is keyed by its
//! source files and restored from the controller when the controller finds one the job
//! may read; after the steps and outputs succeeded, each the controller lets this job save
//! is packed and uploaded. A cache is an optimization: a cache that cannot be restored
//! (missing, corrupt, refused) is logged and the job starts without it; a save that fails
//! is logged and the job's success stands.

use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use airlock_job::{CacheRoot, CacheSpec, JobSpec};
use airlock_proto::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tracing::warn;

use super::Runner;
use super::job::JobEnd;
use crate::report::events::EventSink;

/// One of the job's caches, keyed and (maybe) restored.
#[derive(Debug, Clone)]
pub(super) struct JobCache {
    /// Its `[[caches]]` entry.
    pub(super) spec: CacheSpec,
    /// Its key.
    pub(super) key: Sha256Digest,
    /// Its directory on the host (below `<job>/cache` or `<job>/work`).
    pub(super) dir: PathBuf,
    /// Whether a success saves it, and the largest archive the controller takes.
    pub(super) saves: Option<u64>,
    /// What was restored into it.
    pub(super) restored: Option<pb::CacheArchive>,
}

/// The caches of a job: `<job>/cache` (mounted at `/cache` when a cache lives there) and
/// each cache.
#[derive(Debug, Clone, Default)]
pub(super) struct JobCaches {
    /// `<job>/cache`, when any cache is under `/cache`.
    pub(super) cache_dir: Option<PathBuf>,
    /// Every cache, in job-file order.
    pub(super) caches: Vec<JobCache>,
}

impl JobCaches {
    /// What provenance records as restored.
    pub(super) fn restored(&self) -> Vec<pb::CacheArchive> {
        self.caches
            .iter()
            .filter_map(|c| c.restored.clone())
            .collect()
    }
}

/// A size for the job's log.
fn mib(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// Creates the directories of `rel` below `root` that are missing; any component that is a
/// symlink or not a directory is refused (the source is build-controlled).
fn real_dirs_below(root: &Path, rel: &Path) -> Result<(), String> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "{} is not a directory (a symlink or a file of the source)",
                    cur.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&cur).map_err(|e| format!("{}: {e}", cur.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", cur.display())),
        }
    }
    Ok(())
}

impl Runner {
    /// Keys and restores the job's caches into `job_dir`; `Err` only for the job's own
    /// mistakes (a key file that is not in the source) and infrastructure failures of the
    /// workspace. Runs before the workspace is given to the step.
    pub(super) async fn restore_caches(
        &mut self,
        lease: &pb::Lease,
        job_dir: &Path,
        work: &Path,
        spec: &JobSpec,
        events: &EventSink,
        not_after: std::time::SystemTime,
    ) -> Result<JobCaches, JobEnd> {
        let mut out = JobCaches::default();
        for cache in &spec.caches {
            let work_root = work.to_owned();
            let files = cache.key.clone();
            let key = tokio::task::spawn_blocking(move || {
                crate::fetch::cache_key::cache_key(&work_root, &files)
            })
            .await
            .map_err(|e| JobEnd::Infra(format!("keying a cache panicked: {e}")))?
            .map_err(|e| JobEnd::Failed {
                message: format!("cache `{}`: {e}", cache.name),
                exit_code: 0,
            })?;
            let (base, rel) = match cache.root() {
                Some(CacheRoot::Cache(rel)) => {
                    let dir = job_dir.join("cache");
                    if out.cache_dir.is_none() {
                        super::fs::mkdir_searchable(&dir)
                            .map_err(|e| JobEnd::Infra(e.to_string()))?;
                        out.cache_dir = Some(dir.clone());
                    }
                    (dir, rel)
                }
                Some(CacheRoot::Work(rel)) => (work.to_owned(), rel),
                None => {
                    return Err(JobEnd::Infra(format!(
                        "cache `{}` has a path the job file check should have refused",
                        cache.name
                    )));
                }
            };
            let rel = Path::new(rel);
            if let Some(parent) = rel.parent() {
                real_dirs_below(&base, parent).map_err(|e| JobEnd::Failed {
                    message: format!("cache `{}` at {}: {e}", cache.name, cache.path),
                    exit_code: 0,
                })?;
            }
            let dir = base.join(rel);
            let mut entry = JobCache {
                spec: cache.clone(),
                key,
                dir,
                saves: None,
                restored: None,
            };
            self.restore_one(lease, job_dir, &mut entry, events, not_after)
                .await;
            // The step finds the directory, restored or empty.
            if std::fs::symlink_metadata(&entry.dir).is_err() {
                std::fs::create_dir(&entry.dir)
                    .map_err(|e| JobEnd::Infra(format!("creating {}: {e}", entry.dir.display())))?;
            }
            out.caches.push(entry);
        }
        Ok(out)
    }

    /// Asks the controller for one cache and restores it whole, or logs why not.
    async fn restore_one(
        &mut self,
        lease: &pb::Lease,
        job_dir: &Path,
        cache: &mut JobCache,
        events: &EventSink,
        not_after: std::time::SystemTime,
    ) {
        let name = cache.spec.name.clone();
        let say = |m: String| events.system(0, format!("cache {name}: {m}"));
        let request = pb::RestoreCacheRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            name: name.clone(),
            key_sha256: cache.key.hex(),
        };
        let mut stream = match self.client.restore_cache(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                say(format!(
                    "the controller did not answer ({}); starting without it and not saving it",
                    status.message()
                ))
                .await;
                return;
            }
        };
        let header = match stream.next().await {
            Some(Ok(pb::RestoreCacheResponse {
                kind: Some(pb::restore_cache_response::Kind::Header(h)),
            })) => h,
            _ => {
                say("the controller's answer has no header; starting without it".into()).await;
                return;
            }
        };
        cache.saves = header.saves.then_some(header.max_archive_bytes);
        if !header.found {
            let saving = if header.saves {
                "it is saved if the job succeeds"
            } else {
                "this job's profile does not save it"
            };
            say(format!(
                "none to restore for {} key sha256:{}; starting empty ({saving})",
                header.project,
                cache.key.hex()
            ))
            .await;
            return;
        }
        if std::fs::symlink_metadata(&cache.dir).is_ok() {
            say(format!(
                "{} exists in the source; the source wins, nothing restored",
                cache.spec.path
            ))
            .await;
            return;
        }
        let Ok(archive_digest) = Sha256Digest::from_hex(&header.archive_sha256) else {
            say("the controller named an archive that is not a sha256; starting without it".into())
                .await;
            return;
        };
        say(format!(
            "restoring from the {} domain ({}, archive sha256:{})",
            header.domain,
            mib(header.size),
            header.archive_sha256
        ))
        .await;
        let file = job_dir.join(format!("cache-{name}.tar"));
        let received = receive(&mut stream, &file, header.size).await;
        let restored = match received {
            Ok(()) => {
                let (file, dir) = (file.clone(), cache.dir.clone());
                tokio::task::spawn_blocking(move || {
                    crate::fetch::cache_archive::restore(&file, &archive_digest, &dir, not_after)
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(format!("restoring panicked: {e}")))
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&file);
        match restored {
            Ok(()) => {
                say(format!(
                    "restored {} into {}",
                    mib(header.size),
                    cache.spec.path
                ))
                .await;
                cache.restored = Some(pb::CacheArchive {
                    name: name.clone(),
                    domain: header.domain,
                    key_sha256: header.key_sha256,
                    archive_sha256: header.archive_sha256,
                    size: header.size,
                });
            }
            Err(e) => {
                warn!(cache = %name, error = %e, "discarded a cache archive");
                say(format!("discarded ({e}); starting empty")).await;
            }
        }
    }

    /// Packs and uploads each cache this job saves (every sandbox process is dead); returns
    /// those the controller received.
    pub(super) async fn save_caches(
        &mut self,
        lease: &pb::Lease,
        job_dir: &Path,
        caches: &JobCaches,
        events: &EventSink,
    ) -> Vec<pb::CacheArchive> {
        let mut saved = Vec::new();
        for cache in &caches.caches {
            let Some(max) = cache.saves else { continue };
            let name = &cache.spec.name;
            let file = job_dir.join(format!("cache-{name}.save.tar"));
            let (dir, dest) = (cache.dir.clone(), file.clone());
            let packed = tokio::task::spawn_blocking(move || {
                crate::fetch::cache_archive::save(&dir, &dest).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("packing panicked: {e}")));
            let result = match packed {
                Ok((_, size)) if size > max => Err(format!(
                    "{} is over the controller's limit of {}",
                    mib(size),
                    mib(max)
                )),
                Ok((digest, size)) => {
                    events
                        .system(
                            0,
                            format!(
                                "cache {name}: saving {} (archive sha256:{})",
                                mib(size),
                                digest.hex()
                            ),
                        )
                        .await;
                    self.upload_cache(lease, cache, &file, digest, size)
                        .await
                        .map(|()| (digest, size))
                }
                Err(e) => Err(format!("cannot pack {}: {e}", cache.spec.path)),
            };
            let _ = std::fs::remove_file(&file);
            match result {
                Ok((digest, size)) => {
                    events.system(0, format!("cache {name}: saved")).await;
                    saved.push(pb::CacheArchive {
                        name: name.clone(),
                        domain: String::new(),
                        key_sha256: cache.key.hex(),
                        archive_sha256: digest.hex(),
                        size,
                    });
                }
                Err(e) => {
                    warn!(cache = %name, error = %e, "a cache was not saved");
                    events
                        .system(0, format!("cache {name}: not saved: {e}"))
                        .await;
                }
            }
        }
        saved
    }

    /// Streams one packed archive to the controller.
    async fn upload_cache(
        &mut self,
        lease: &pb::Lease,
        cache: &JobCache,
        file: &Path,
        digest: Sha256Digest,
        size: u64,
    ) -> Result<(), String> {
        use pb::save_cache_request::Kind;
        let reader = tokio::fs::File::open(file)
            .await
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let header = pb::SaveCacheRequest {
            kind: Some(Kind::Header(pb::SaveCacheHeader {
                job_id: lease.job_id.clone(),
                lease_token: lease.lease_token.clone(),
                name: cache.spec.name.clone(),
                key_sha256: cache.key.hex(),
                archive_sha256: digest.hex(),
                size,
            })),
        };
        let (stream, feeder) = super::upload::header_then_file(
            header,
            reader,
            size,
            |d| pb::SaveCacheRequest {
                kind: Some(Kind::Data(d)),
            },
            format!("the archive of cache {}", cache.spec.name),
        );
        let answer = self.client.save_cache(stream).await;
        feeder
            .await
            .map_err(|e| format!("upload task panicked: {e}"))??;
        answer
            .map(|_| ())
            .map_err(|s| format!("the controller refused it: {}", s.message()))
    }
}

/// Writes the archive's data messages to `file`, refusing more than `size` bytes.
async fn receive(
    stream: &mut tonic::Streaming<pb::RestoreCacheResponse>,
    file: &Path,
    size: u64,
) -> Result<(), String> {
    let mut out = tokio::fs::File::create(file)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut received = 0u64;
    while let Some(message) = stream.next().await {
        let message = message.map_err(|s| format!("the download broke off: {}", s.message()))?;
        let Some(pb::restore_cache_response::Kind::Data(data)) = message.kind else {
            return Err("the controller sent a second header".into());
        };
        received = received.saturating_add(data.len() as u64);
        if received > size {
            return Err(format!("more than the announced {size} bytes"));
        }
        out.write_all(&data)
            .await
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    out.flush()
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(())
}
