//! The compiled bundle and its evaluation. Each evaluation runs on a clone of the compiled
//! engine (policies are parsed once), with a wall-clock limit; `deny` must be a set (or
//! array) of messages, and anything else fails closed.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;

use super::bundle::PolicyBundle;
use super::decision::{AdmissionRecord, Decision};
use super::{DENY_RULE, PolicyError};
use crate::config::{PolicyConfig, PolicyMode};

/// Longest one evaluation may run.
pub const EVAL_LIMIT: Duration = Duration::from_secs(2);

/// Most `deny` messages kept (and their length), so a policy cannot flood a job's history.
const MAX_MESSAGES: usize = 64;
const MAX_MESSAGE_CHARS: usize = 1000;

/// A loaded, compiled admission policy.
#[derive(Clone)]
pub struct Admission {
    engine: regorus::Engine,
    bundle: PolicyBundle,
    mode: PolicyMode,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("dir", &self.bundle.dir)
            .field("digest", &self.bundle.digest.hex())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// Reads and compiles `[policy]`; a file that does not parse is an error naming it and
    /// its line.
    pub fn load(config: &PolicyConfig) -> Result<Self, PolicyError> {
        Self::compile(PolicyBundle::read(&config.dir)?, config.mode)
    }

    /// Compiles `bundle`.
    pub fn compile(bundle: PolicyBundle, mode: PolicyMode) -> Result<Self, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(false);
        engine.set_strict_builtin_errors(true);
        if let Some(interval) = NonZeroU32::new(64) {
            engine.set_execution_timer_config(ExecutionTimerConfig {
                limit: EVAL_LIMIT,
                check_interval: interval,
            });
        }
        for (path, text) in &bundle.files {
            engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| PolicyError::Parse {
                    file: bundle.dir.join(path),
                    message: e.to_string().trim().to_owned(),
                })?;
        }
        let has_deny = engine
            .get_packages()
            .map_err(|e| PolicyError::Eval(e.to_string()))?
            .iter()
            .any(|p| p == "data.airlock.admission");
        if !has_deny {
            return Err(PolicyError::NoDenyRule {
                dir: bundle.dir.clone(),
            });
        }
        let admission = Self {
            engine,
            bundle,
            mode,
        };
        // A policy that cannot even evaluate an empty input is broken: refuse it at start.
        admission.messages(&serde_json::json!({}))?;
        Ok(admission)
    }

    /// The bundle's digest.
    pub fn digest(&self) -> airlock_attest::Sha256Digest {
        self.bundle.digest
    }

    /// The mode.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// Evaluates `input`.
    pub fn evaluate(&self, input: &Value) -> Result<AdmissionRecord, PolicyError> {
        let messages = self.messages(input)?;
        Ok(AdmissionRecord {
            digest: self.bundle.digest,
            mode: self.mode,
            decision: if messages.is_empty() {
                Decision::Allow
            } else {
                Decision::Deny
            },
            messages,
        })
    }

    fn messages(&self, input: &Value) -> Result<Vec<String>, PolicyError> {
        let mut engine = self.engine.clone();
        let input = regorus::Value::from_json_str(&input.to_string())
            .map_err(|e| PolicyError::Eval(format!("the input does not convert: {e}")))?;
        engine.set_input(input);
        let result = engine
            .eval_rule(DENY_RULE.to_owned())
            .map_err(|e| PolicyError::Eval(e.to_string()))?;
        let json: Value = serde_json::from_str(
            &result
                .to_json_str()
                .map_err(|e| PolicyError::Eval(e.to_string()))?,
        )
        .map_err(|e| PolicyError::Eval(e.to_string()))?;
        let items = match json {
            Value::Array(items) => items,
            // Undefined (no rule body matched and no default): nothing denied.
            Value::Null => Vec::new(),
            Value::String(s) if s == "<undefined>" => Vec::new(),
            other => {
                return Err(PolicyError::Eval(format!(
                    "`deny` must be a set of messages, not {other}"
                )));
            }
        };
        let mut messages: Vec<String> = items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .map(|m| m.chars().take(MAX_MESSAGE_CHARS).collect())
            .collect();
        messages.sort();
        messages.dedup();
        messages.truncate(MAX_MESSAGES);
        Ok(messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn load(dir: &tempfile::TempDir, mode: PolicyMode) -> Result<Admission, PolicyError> {
        Admission::load(&PolicyConfig {
            dir: dir.path().to_owned(),
            mode,
        })
    }

    const NO_RELEASE_FROM_FORKS: &str = r#"package airlock.admission

deny contains msg if {
    input.job.job.profile == "release"
    input.client.role != "submit-release"
    input.client.role != "admin"
    msg := sprintf("client %s may not run release jobs", [input.client.name])
}

deny contains "steps may not curl" if {
    some step in input.job.steps
    contains(step.run, "curl")
}
"#;

    #[test]
    fn deny_messages_are_collected_sorted() {
        let dir = bundle(&[("admission.rego", NO_RELEASE_FROM_FORKS)]);
        let admission = load(&dir, PolicyMode::Enforce).unwrap();
        let input = serde_json::json!({
            "job": {"job": {"profile": "release"}, "steps": [{"run": "curl x"}, {"run": "make"}]},
            "client": {"name": "bot", "role": "submit-trusted"},
        });
        let record = admission.evaluate(&input).unwrap();
        assert_eq!(record.decision, Decision::Deny);
        assert!(!record.admits());
        assert_eq!(
            record.messages,
            ["client bot may not run release jobs", "steps may not curl"]
        );
        let fine = serde_json::json!({
            "job": {"job": {"profile": "trusted"}, "steps": [{"run": "make"}]},
            "client": {"name": "bot", "role": "submit-trusted"},
        });
        let record = admission.evaluate(&fine).unwrap();
        assert_eq!(
            (record.decision, record.messages.len()),
            (Decision::Allow, 0)
        );
        let evaluate = load(&dir, PolicyMode::Evaluate).unwrap();
        assert!(evaluate.evaluate(&input).unwrap().admits());
    }

    #[test]
    fn a_parse_error_names_the_file_and_line() {
        let dir = bundle(&[
            ("a.rego", NO_RELEASE_FROM_FORKS),
            (
                "sub/broken.rego",
                "package airlock.admission\n\ndeny contains msg if {\n  input.job ==\n}\n",
            ),
        ]);
        let err = load(&dir, PolicyMode::Enforce).unwrap_err().to_string();
        assert!(err.contains("sub/broken.rego"), "{err}");
        assert!(err.contains(":5:"), "{err}");
    }

    #[test]
    fn a_bundle_without_the_package_or_with_a_non_set_deny_is_refused() {
        let dir = bundle(&[("x.rego", "package other\n\ndeny contains 1 if { true }\n")]);
        assert!(matches!(
            load(&dir, PolicyMode::Enforce),
            Err(PolicyError::NoDenyRule { .. })
        ));
        let dir = bundle(&[("x.rego", "package airlock.admission\n\ndeny := 7\n")]);
        assert!(matches!(
            load(&dir, PolicyMode::Enforce),
            Err(PolicyError::Eval(_))
        ));
        let empty = bundle(&[("README.md", "no policy")]);
        assert!(matches!(
            load(&empty, PolicyMode::Enforce),
            Err(PolicyError::Empty { .. })
        ));
    }

    #[test]
    fn the_digest_is_over_sorted_files_and_changes_with_any_byte() {
        let a = bundle(&[
            ("b.rego", NO_RELEASE_FROM_FORKS),
            ("a.rego", "package airlock.admission\n"),
        ]);
        let digest = PolicyBundle::read(a.path()).unwrap().digest;
        let listing = format!(
            "{}  a.rego\n{}  b.rego\n",
            airlock_attest::Sha256Digest::of(b"package airlock.admission\n").hex(),
            airlock_attest::Sha256Digest::of(NO_RELEASE_FROM_FORKS.as_bytes()).hex()
        );
        assert_eq!(digest, airlock_attest::Sha256Digest::of(listing.as_bytes()));
        std::fs::write(a.path().join("a.rego"), "package airlock.admission\n\n").unwrap();
        assert_ne!(PolicyBundle::read(a.path()).unwrap().digest, digest);
    }

    #[test]
    fn huge_inputs_evaluate_within_the_limit_or_fail_closed() {
        let dir = bundle(&[("admission.rego", NO_RELEASE_FROM_FORKS)]);
        let admission = load(&dir, PolicyMode::Enforce).unwrap();
        let steps: Vec<Value> = (0..20_000)
            .map(|i| serde_json::json!({"run": format!("echo {i} {}", "x".repeat(100))}))
            .collect();
        let input = serde_json::json!({
            "job": {"job": {"profile": "trusted"}, "steps": steps.clone()},
            "client": {"name": "bot", "role": "admin"},
        });
        // Either a full answer or a refusal (the time limit): never a silent allow.
        match admission.evaluate(&input) {
            Ok(record) => assert_eq!(record.decision, Decision::Allow),
            Err(PolicyError::Eval(_)) => {}
            Err(e) => panic!("{e}"),
        }
        let mut with_curl = steps;
        with_curl.push(serde_json::json!({"run": "curl https://example.invalid"}));
        let curl = serde_json::json!({
            "job": {"job": {"profile": "trusted"}, "steps": with_curl},
            "client": {"name": "bot", "role": "admin"},
        });
        assert!(!matches!(admission.evaluate(&curl), Ok(r) if r.admits()));
    }
}
