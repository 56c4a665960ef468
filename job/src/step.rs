//! A `[[steps]]` entry: one command run in the sandbox.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a step executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A shell script, run as `/bin/sh -c SCRIPT`.
    Shell(String),
    /// An argv executed directly (argv[0] resolved with PATH in the image).
    Argv(Vec<String>),
}

impl Command {
    /// The argv the sandbox executes.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
            Command::Argv(argv) => argv.clone(),
        }
    }
}

/// One build step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub struct StepSpec {
    /// A name for logs; defaults to `step-N` (1-based) when omitted.
    pub name: Option<String>,
    /// The command.
    pub command: Command,
    /// Extra environment variables for this step.
    pub env: BTreeMap<String, String>,
}

/// The TOML/JSON shape of a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    argv: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
}

/// Variables the platform sets; a step may not override them.
pub const RESERVED_ENV: &[&str] = &["SOURCE_DATE_EPOCH", "TZ", "LANG", "HOME"];

impl TryFrom<RawStep> for StepSpec {
    type Error = String;

    fn try_from(raw: RawStep) -> Result<Self, Self::Error> {
        let command = match (raw.run, raw.argv) {
            (Some(run), None) if !run.trim().is_empty() => Command::Shell(run),
            (None, Some(argv)) if !argv.is_empty() && !argv[0].is_empty() => Command::Argv(argv),
            (Some(_), Some(_)) => {
                return Err("a step has both `run` and `argv`\nhint: keep one of them".into());
            }
            _ => {
                return Err(
                    "a step has no command\nhint: add `run = \"make\"` (a shell script) or `argv = [\"make\"]`"
                        .into(),
                );
            }
        };
        let has_nul = match &command {
            Command::Argv(argv) => argv.iter().any(|a| a.contains('\0')),
            Command::Shell(run) => run.contains('\0'),
        };
        if has_nul {
            return Err("the command contains a NUL byte".into());
        }
        for (k, v) in &raw.env {
            let valid = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "env name `{k}` is invalid; use letters, digits and `_`, not starting with a digit"
                ));
            }
            if RESERVED_ENV.contains(&k.as_str()) {
                return Err(format!(
                    "env `{k}` is set by airlock and cannot be overridden"
                ));
            }
            if v.contains('\0') {
                return Err(format!("env `{k}` contains a NUL byte"));
            }
        }
        if let Some(name) = &raw.name
            && (name.is_empty() || name.len() > 128 || name.chars().any(char::is_control))
        {
            return Err("a step name must be 1-128 printable characters".into());
        }
        Ok(StepSpec {
            name: raw.name,
            command,
            env: raw.env,
        })
    }
}

impl From<StepSpec> for RawStep {
    fn from(s: StepSpec) -> Self {
        let (run, argv) = match s.command {
            Command::Shell(run) => (Some(run), None),
            Command::Argv(argv) => (None, Some(argv)),
        };
        RawStep {
            name: s.name,
            run,
            argv,
            env: s.env,
        }
    }
}
