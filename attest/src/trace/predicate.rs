//! The typed trace and its rendering as the runtime-trace v0.2 predicate.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::TraceError;
use super::model::TracedStep;
use super::verdict::hermeticity;

/// `monitor.type`: airlock's seccomp user-notification supervisor.
pub const MONITOR_TYPE: &str = "https://airlock.dev/monitors/seccomp-unotify/v1";

/// Everything a job's trace says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The controller's issuer (`monitoredProcess.hostID`).
    pub host_id: String,
    /// The build type (`monitoredProcess.type`).
    pub build_type: String,
    /// The attempt's invocation id (`monitoredProcess.event`).
    pub event: String,
    /// The job's profile.
    pub profile: String,
    /// The system calls observed.
    pub syscalls: Vec<String>,
    /// Whether the profile refuses network calls to outside the sandbox.
    pub fail_on_network: bool,
    /// The steps, in order.
    pub steps: Vec<TracedStep>,
    /// When the attempt started and finished.
    pub started: SystemTime,
    /// When it finished.
    pub finished: SystemTime,
}

impl Trace {
    /// The runtime-trace v0.2 predicate (with airlock's `hermeticity` and `overflow`
    /// extension fields).
    pub fn predicate(&self) -> Result<Value, TraceError> {
        let mut process = Vec::new();
        let mut network = Vec::new();
        let mut files = Vec::new();
        let mut overflow = Map::new();
        for step in &self.steps {
            for (path, sha256, count) in &step.execs {
                let mut entry = json!({"step": step.name, "stepIndex": step.index, "path": path, "count": count});
                if let Some(sha256) = sha256 {
                    entry["sha256"] = json!(sha256);
                }
                process.push(entry);
            }
            for n in &step.network {
                let mut entry = json!({
                    "step": step.name, "syscall": n.syscall, "family": n.family,
                    "refused": n.refused, "count": n.count,
                });
                if n.family == "unix" {
                    entry["path"] = json!(n.address);
                } else {
                    entry["ip"] = json!(n.address);
                    if n.port > 0 {
                        entry["port"] = json!(n.port);
                    }
                }
                if !n.protocol.is_empty() {
                    entry["protocol"] = json!(n.protocol);
                }
                network.push(entry);
            }
            for f in &step.files {
                let mut entry = json!({
                    "name": f.path,
                    "annotations": {"step": step.name, "access": f.access, "class": f.class, "count": f.count},
                });
                if let Some(sha256) = &f.sha256 {
                    entry["digest"] = json!({"sha256": sha256});
                }
                files.push(entry);
            }
            let (e, f, n) = step.dropped;
            if e + f + n > 0 {
                overflow.insert(
                    step.name.clone(),
                    json!({"execs": e, "files": f, "network": n}),
                );
            }
        }
        let verdict = hermeticity(&self.steps);
        let mut predicate = json!({
            "monitor": {
                "type": MONITOR_TYPE,
                "tracePolicy": {"syscalls": self.syscalls, "failOnNetwork": self.fail_on_network, "profile": self.profile},
            },
            "monitoredProcess": {"hostID": self.host_id, "type": self.build_type, "event": self.event},
            "monitorLog": {"process": process, "network": network, "fileAccess": files},
            "metadata": {
                "buildStartedOn": crate::rfc3339_utc(self.started)?,
                "buildFinishedOn": crate::rfc3339_utc(self.finished)?,
            },
            "hermeticity": {"verdict": verdict.verdict(), "exceptions": verdict.exceptions},
        });
        if !overflow.is_empty() {
            predicate["overflow"] = Value::Object(overflow);
        }
        Ok(predicate)
    }
}
