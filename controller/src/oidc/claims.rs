//! The claims of a build token.

use serde::{Deserialize, Serialize};

/// Every claim a build token carries, as listed in the discovery document.
pub const CLAIM_NAMES: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "jti",
    "job_id",
    "repository",
    "ref",
    "ref_type",
    "sha",
    "profile",
    "builder_id",
    "runner_id",
    "job_definition_sha256",
];

/// The claims of a build token: the registered JWT claims plus airlock's own. Every value comes
/// from the control plane (the job record, its pinned source, the lease), never from a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildClaims {
    /// Issuer: the controller's issuer URL.
    pub iss: String,
    /// Subject: `repo:<repository>:ref:<ref>`, `repo:<repository>:pull_request`, or
    /// `repo:<repository>:commit:<sha>` (see [`super::subject`]).
    pub sub: String,
    /// Audience: one of the job's declared `[oidc] audiences`.
    pub aud: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Not before (unix seconds): equal to `iat`.
    pub nbf: u64,
    /// Expiry (unix seconds).
    pub exp: u64,
    /// A unique token id.
    pub jti: String,
    /// The job id.
    pub job_id: String,
    /// The source repository (git URL, or `file://<dir>` for local builds).
    pub repository: String,
    /// The verified ref (`refs/heads/main`, `refs/tags/v1`, `refs/pull/7/head`, the commit id,
    /// or `local`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// What `ref` is: `branch`, `tag`, `pull_request`, `commit` or `local`.
    pub ref_type: String,
    /// The commit id (or, for a local build, the sha256 of the source tree).
    pub sha: String,
    /// The trust profile the job ran under.
    pub profile: String,
    /// The builder id the job's provenance names.
    pub builder_id: String,
    /// The runner that ran the job.
    pub runner_id: String,
    /// sha256 (hex) of the job definition as submitted.
    pub job_definition_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_match_the_serialised_claims() {
        let claims = BuildClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            iat: 1,
            nbf: 1,
            exp: 2,
            jti: "j".into(),
            job_id: "job".into(),
            repository: "r".into(),
            git_ref: "local".into(),
            ref_type: "local".into(),
            sha: "x".into(),
            profile: "trusted".into(),
            builder_id: "b".into(),
            runner_id: "rn".into(),
            job_definition_sha256: "d".into(),
        };
        let json = serde_json::to_value(&claims).unwrap();
        let mut names: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut expected = CLAIM_NAMES.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }
}
