//! Output uploads: checking a header before bytes flow, recording what the controller hashed,
//! and comparing the runner's report with the recorded set.

use std::collections::BTreeMap;

use airlock_attest::Sha256Digest;
use airlock_job::is_clean_relative;
use airlock_proto::v1 as pb;

use super::Scheduler;
use crate::api::status::ApiError;
use crate::ids::{JobId, LeaseToken};
use crate::store::OutputRecord;

/// An output upload that passed its checks and may now stream bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputClaim {
    /// The job.
    pub job: JobId,
    /// The lease.
    pub token: LeaseToken,
    /// The clean relative path.
    pub path: String,
    /// The runner's claimed digest.
    pub sha256: Sha256Digest,
    /// The runner's claimed size.
    pub size: u64,
    /// Whether the file had an execute bit.
    pub executable: bool,
}

impl Scheduler {
    /// Checks an output header before any bytes are accepted.
    pub async fn claim_output(&self, header: &pb::OutputHeader) -> Result<OutputClaim, ApiError> {
        let job = JobId::parse("header.job_id", &header.job_id)?;
        let token = LeaseToken::parse("header.lease_token", &header.lease_token)?;
        let record = self.fenced(self.store.leased_job(job, token).await)?;
        let path = header.path.clone();
        if !is_clean_relative(&path) || path.contains('\\') {
            return Err(ApiError::invalid(
                "header.path",
                format!(
                    "{path:?} is not a clean relative path ('/'-separated, no `..` or `.`, not \
                     absolute, no NUL)"
                ),
            ));
        }
        let sha256 = Sha256Digest::from_hex(&header.sha256).map_err(|e| {
            ApiError::invalid("header.sha256", format!("not 64 lowercase hex digits: {e}"))
        })?;
        if header.size > self.max_upload {
            return Err(ApiError::ResourceExhausted(format!(
                "output `{path}` is {} bytes; the controller accepts at most {} \
                 (max_upload_bytes)",
                header.size, self.max_upload
            )));
        }
        if self.store.output_exists(job, record.attempt, &path).await? {
            return Err(ApiError::AlreadyExists(format!(
                "output `{path}` of job {job} was already uploaded; each path is uploaded once"
            )));
        }
        Ok(OutputClaim {
            job,
            token,
            path,
            sha256,
            size: header.size,
            executable: header.executable,
        })
    }

    /// Records an uploaded output whose bytes the controller hashed itself.
    pub async fn record_output(
        &self,
        claim: &OutputClaim,
        sha256: Sha256Digest,
        size: u64,
    ) -> Result<(), ApiError> {
        self.store
            .insert_output(
                claim.job,
                claim.token,
                &OutputRecord {
                    path: claim.path.clone(),
                    sha256,
                    size,
                    executable: claim.executable,
                },
            )
            .await?;
        tracing::info!(job_id = %claim.job, path = %claim.path, sha256 = %sha256, size, "output recorded");
        Ok(())
    }
}

/// Checks that the runner's reported outputs and the controller's recorded outputs are the same
/// set with the same digests and sizes. The error names every mismatch.
pub fn compare_outputs(
    reported: &[pb::OutputFile],
    recorded: &[OutputRecord],
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut claimed: BTreeMap<&str, &pb::OutputFile> = BTreeMap::new();
    for o in reported {
        if claimed.insert(o.path.as_str(), o).is_some() {
            problems.push(format!("output `{}` is reported twice", o.path));
        }
    }
    let stored: BTreeMap<&str, &OutputRecord> =
        recorded.iter().map(|o| (o.path.as_str(), o)).collect();
    for (path, claim) in &claimed {
        match stored.get(path) {
            None => problems.push(format!(
                "output `{path}` is reported by the runner but was never uploaded"
            )),
            Some(rec) if rec.sha256.hex() != claim.sha256 => problems.push(format!(
                "output `{path}`: the runner reports sha256 {} but the controller computed {}",
                claim.sha256, rec.sha256
            )),
            Some(rec) if rec.size != claim.size => problems.push(format!(
                "output `{path}`: the runner reports {} bytes but the controller received {}",
                claim.size, rec.size
            )),
            Some(rec) if rec.executable != claim.executable => problems.push(format!(
                "output `{path}`: the runner reports executable={} but uploaded it with \
                 executable={}",
                claim.executable, rec.executable
            )),
            Some(_) => {}
        }
    }
    for path in stored.keys() {
        if !claimed.contains_key(path) {
            problems.push(format!(
                "output `{path}` was uploaded but is missing from the completion report"
            ));
        }
    }
    if recorded.is_empty() && reported.is_empty() {
        problems.push("no outputs were uploaded".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, data: &[u8]) -> OutputRecord {
        OutputRecord {
            path: path.into(),
            sha256: Sha256Digest::of(data),
            size: data.len() as u64,
            executable: false,
        }
    }

    fn rep(path: &str, data: &[u8]) -> pb::OutputFile {
        pb::OutputFile {
            path: path.into(),
            sha256: Sha256Digest::of(data).hex(),
            size: data.len() as u64,
            executable: false,
        }
    }

    #[test]
    fn output_sets_must_match() {
        let stored = [rec("a", b"1"), rec("b", b"2")];
        assert!(compare_outputs(&[rep("b", b"2"), rep("a", b"1")], &stored).is_ok());
        let e = compare_outputs(&[rep("a", b"1"), rep("b", b"X")], &stored).unwrap_err();
        assert!(
            e.contains("output `b`") && e.contains("controller computed"),
            "{e}"
        );
        let e = compare_outputs(&[rep("a", b"1")], &stored).unwrap_err();
        assert!(e.contains("`b` was uploaded but is missing"), "{e}");
        let e = compare_outputs(&[rep("a", b"1"), rep("b", b"2"), rep("c", b"3")], &stored)
            .unwrap_err();
        assert!(
            e.contains("`c` is reported by the runner but was never uploaded"),
            "{e}"
        );
        assert!(compare_outputs(&[], &[]).is_err());
    }
}
