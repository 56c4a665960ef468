//! The runtime trace a runner reports, checked into typed values (bounded, only the
//! documented names, steps that are the job's own) before the controller signs it.

use std::time::SystemTime;

use airlock_attest::trace::{Trace, TracedFileAccess, TracedNetwork, TracedStep};
use airlock_job::JobSpec;
use airlock_proto::v1 as pb;

/// Most entries of one list of one step.
pub const MAX_ENTRIES: usize = 20_000;
const MAX_PATH: usize = 4096;
const SYSCALLS: [&str; 11] = [
    "execve", "execveat", "open", "creat", "openat", "openat2", "connect", "bind", "sendto",
    "sendmsg", "sendmmsg",
];
const CLASSES: [&str; 8] = [
    "image",
    "source",
    "input",
    "dependency",
    "cache",
    "written",
    "kernel",
    "token-broker",
];

/// Where the trace came from, for `monitoredProcess`.
#[derive(Debug)]
pub struct TraceContext<'a> {
    /// The controller's issuer.
    pub issuer: &'a str,
    /// The attempt's invocation id.
    pub invocation_id: &'a str,
    /// The job.
    pub spec: &'a JobSpec,
    /// When the attempt started and finished.
    pub started: SystemTime,
    /// When it finished.
    pub finished: SystemTime,
}

fn path(field: &str, value: &str) -> Result<String, String> {
    if !value.starts_with('/') || value.len() > MAX_PATH || value.chars().any(char::is_control) {
        return Err(format!(
            "{field} `{}` is not an absolute sandbox path",
            value.escape_debug()
        ));
    }
    Ok(value.to_owned())
}

fn sha256(field: &str, value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("{field} is not lowercase sha256 hex"));
    }
    Ok(Some(value.to_owned()))
}

fn bounded<T>(what: &str, list: &[T]) -> Result<(), String> {
    if list.len() > MAX_ENTRIES {
        return Err(format!(
            "{} {what} entries; at most {MAX_ENTRIES}",
            list.len()
        ));
    }
    Ok(())
}

/// Checks `reported` against the job; the error names the step, entry and field.
pub fn parse_trace(
    reported: &pb::RuntimeTrace,
    context: &TraceContext<'_>,
) -> Result<Trace, String> {
    let spec = context.spec;
    if reported.steps.len() > spec.steps.len() {
        return Err(format!(
            "{} steps traced; the job has {}",
            reported.steps.len(),
            spec.steps.len()
        ));
    }
    if let Some(bad) = reported
        .syscalls
        .iter()
        .find(|s| !SYSCALLS.contains(&s.as_str()))
    {
        return Err(format!(
            "syscall `{}` is not one the trace observes",
            bad.escape_debug()
        ));
    }
    let mut steps = Vec::with_capacity(reported.steps.len());
    for (i, s) in reported.steps.iter().enumerate() {
        let index = usize::try_from(s.index).unwrap_or(usize::MAX);
        if index >= spec.steps.len() || s.name != spec.step_name(index) {
            return Err(format!(
                "step {i} (`{}`, index {}) is not a step of the job",
                s.name.escape_debug(),
                s.index
            ));
        }
        let step = parse_step(s).map_err(|e| format!("step `{}`: {e}", s.name))?;
        steps.push(step);
    }
    Ok(Trace {
        host_id: context.issuer.to_owned(),
        build_type: super::statement::BUILD_TYPE.to_owned(),
        event: context.invocation_id.to_owned(),
        profile: spec.job.profile.clone(),
        syscalls: reported.syscalls.clone(),
        fail_on_network: reported.fail_on_network,
        steps,
        started: context.started,
        finished: context.finished,
    })
}

fn parse_step(s: &pb::StepTrace) -> Result<TracedStep, String> {
    bounded("exec", &s.execs)?;
    bounded("file", &s.files)?;
    bounded("network", &s.network)?;
    let execs = s
        .execs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok((
                path(&format!("execs[{i}].path"), &e.path)?,
                sha256(&format!("execs[{i}].sha256"), &e.sha256)?,
                e.count,
            ))
        })
        .collect::<Result<_, String>>()?;
    let files = s
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if !matches!(f.access.as_str(), "read" | "write") {
                return Err(format!(
                    "files[{i}].access `{}` is not read or write",
                    f.access.escape_debug()
                ));
            }
            if !CLASSES.contains(&f.class.as_str()) {
                return Err(format!(
                    "files[{i}].class `{}` is unknown",
                    f.class.escape_debug()
                ));
            }
            Ok(TracedFileAccess {
                path: path(&format!("files[{i}].path"), &f.path)?,
                access: f.access.clone(),
                class: f.class.clone(),
                sha256: sha256(&format!("files[{i}].sha256"), &f.sha256)?,
                count: f.count,
            })
        })
        .collect::<Result<_, String>>()?;
    let network = s
        .network
        .iter()
        .enumerate()
        .map(|(i, n)| parse_network(n).map_err(|e| format!("network[{i}]: {e}")))
        .collect::<Result<_, String>>()?;
    Ok(TracedStep {
        name: s.name.clone(),
        index: s.index,
        execs,
        files,
        network,
        dropped: (s.dropped_execs, s.dropped_files, s.dropped_network),
    })
}

fn parse_network(n: &pb::TracedConnection) -> Result<TracedNetwork, String> {
    if !SYSCALLS.contains(&n.syscall.as_str()) {
        return Err(format!("syscall `{}` is unknown", n.syscall.escape_debug()));
    }
    let address = match n.family.as_str() {
        "inet" | "inet6" => {
            let ip: std::net::IpAddr = n
                .address
                .parse()
                .map_err(|_| format!("`{}` is not an IP address", n.address.escape_debug()))?;
            if ip.is_ipv4() != (n.family == "inet") {
                return Err(format!("{} is not an {} address", ip, n.family));
            }
            ip.to_string()
        }
        "unix" => {
            if n.address.len() > 108 || n.address.chars().any(char::is_control) {
                return Err("the unix socket path is not one".to_owned());
            }
            n.address.clone()
        }
        other => {
            return Err(format!(
                "family `{}` is not inet, inet6 or unix",
                other.escape_debug()
            ));
        }
    };
    if !matches!(n.protocol.as_str(), "" | "tcp" | "udp") {
        return Err(format!(
            "protocol `{}` is unknown",
            n.protocol.escape_debug()
        ));
    }
    Ok(TracedNetwork {
        syscall: n.syscall.clone(),
        family: n.family.clone(),
        address,
        port: u16::try_from(n.port).map_err(|_| format!("port {} is not one", n.port))?,
        protocol: n.protocol.clone(),
        refused: n.refused,
        count: n.count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        let json = serde_json::json!({
            "job": {"name": "n", "profile": "release"},
            "source": {"path": "/src", "sha256": "1".repeat(64)},
            "image": {"ref": format!("registry.example/base@sha256:{}", "2".repeat(64))},
            "steps": [{"name": "build", "run": "make"}],
            "outputs": {"paths": ["x"]},
        });
        JobSpec::from_json(json.to_string().as_bytes()).unwrap()
    }

    fn good() -> pb::RuntimeTrace {
        pb::RuntimeTrace {
            steps: vec![pb::StepTrace {
                name: "build".into(),
                index: 0,
                execs: vec![pb::TracedExec {
                    path: "/usr/bin/make".into(),
                    sha256: "a".repeat(64),
                    count: 1,
                }],
                files: vec![pb::TracedFile {
                    path: "/work/Makefile".into(),
                    access: "read".into(),
                    class: "source".into(),
                    sha256: "b".repeat(64),
                    count: 2,
                }],
                network: vec![pb::TracedConnection {
                    syscall: "connect".into(),
                    family: "inet".into(),
                    address: "10.0.0.1".into(),
                    port: 443,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syscalls: vec!["execve".into(), "openat".into(), "connect".into()],
            fail_on_network: true,
        }
    }

    #[test]
    fn a_runners_trace_is_checked_field_by_field() {
        let spec = spec();
        let context = TraceContext {
            issuer: "https://ci.example",
            invocation_id: "https://ci.example/jobs/j/attempts/1",
            spec: &spec,
            started: SystemTime::UNIX_EPOCH,
            finished: SystemTime::UNIX_EPOCH,
        };
        let trace = parse_trace(&good(), &context).unwrap();
        assert_eq!(trace.steps[0].network[0].describe(), "10.0.0.1:443");
        let predicate = trace.predicate().unwrap();
        assert_eq!(predicate["hermeticity"]["verdict"], "not hermetic");
        assert_eq!(
            predicate["monitoredProcess"]["event"],
            "https://ci.example/jobs/j/attempts/1"
        );
        assert_eq!(
            predicate["monitorLog"]["fileAccess"][0]["digest"]["sha256"],
            "b".repeat(64)
        );

        type Spoil = fn(&mut pb::RuntimeTrace);
        let cases: [(Spoil, &str); 8] = [
            (
                |t| t.steps[0].name = "other".into(),
                "not a step of the job",
            ),
            (|t| t.steps[0].index = 3, "not a step of the job"),
            (
                |t| t.steps[0].files[0].path = "relative".into(),
                "absolute sandbox path",
            ),
            (|t| t.steps[0].files[0].class = "host".into(), "class"),
            (|t| t.steps[0].execs[0].sha256 = "XYZ".into(), "sha256"),
            (
                |t| t.steps[0].network[0].address = "10.0.0.1.5".into(),
                "not an IP",
            ),
            (|t| t.steps[0].network[0].port = 70_000, "port"),
            (|t| t.syscalls.push("ptrace".into()), "syscall"),
        ];
        for (spoil, expected) in cases {
            let mut t = good();
            spoil(&mut t);
            let err = parse_trace(&t, &context).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
