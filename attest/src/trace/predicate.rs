//! The typed trace and its rendering as the runtime-trace v0.2 predicate.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::TraceError;
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

/// One traced step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedStep {
    /// Its name.
    pub name: String,
    /// Its index in the job's steps.
    pub index: u32,
    /// Programs executed: (path, sha256, count).
    pub execs: Vec<(String, Option<String>, u64)>,
    /// Files opened.
    pub files: Vec<TracedFileAccess>,
    /// Network calls with an address.
    pub network: Vec<TracedNetwork>,
    /// Events over the caps: (execs, files, network).
    pub dropped: (u64, u64, u64),
}

/// One file a step opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedFileAccess {
    /// The sandbox path.
    pub path: String,
    /// `read` or `write`.
    pub access: String,
    /// `image`, `source`, `input`, `dependency`, `cache`, `written`, `kernel`, `token-broker`.
    pub class: String,
    /// sha256 when known.
    pub sha256: Option<String>,
    /// How many opens.
    pub count: u64,
}

/// One network call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedNetwork {
    /// `connect`, `bind`, `sendto`.
    pub syscall: String,
    /// `inet`, `inet6`, `unix`.
    pub family: String,
    /// The IP (canonical text) or unix path.
    pub address: String,
    /// The port (0 for unix).
    pub port: u16,
    /// `tcp`, `udp`, or empty.
    pub protocol: String,
    /// Whether the supervisor refused it.
    pub refused: bool,
    /// How many calls.
    pub count: u64,
}

impl TracedNetwork {
    /// Whether it stays inside the sandbox (loopback, a unix socket, a wildcard bind).
    pub fn is_local(&self) -> bool {
        if self.family == "unix" {
            return true;
        }
        match self.address.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                ip.is_loopback()
                    || ip.to_canonical().is_loopback()
                    || (self.syscall == "bind" && ip.is_unspecified())
            }
            Err(_) => false,
        }
    }

    /// `10.0.0.1:443`, `[::1]:53`, `unix:/path`.
    pub fn describe(&self) -> String {
        match self.family.as_str() {
            "unix" => format!("unix:{}", self.address),
            "inet6" => format!("[{}]:{}", self.address, self.port),
            _ => format!("{}:{}", self.address, self.port),
        }
    }
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
