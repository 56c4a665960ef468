//! The hermeticity verdict of a trace: every file read came from the image, the source, a
//! declared input or dependency, or was written by the run, and no call tried to reach an
//! address outside the sandbox. Reads from a cache (not a pinned input) and network attempts
//! are the exceptions, each named.

use super::model::TracedStep;

/// Most exceptions listed (the rest are counted).
const MAX_EXCEPTIONS: usize = 50;

/// File classes a hermetic build reads from.
const HERMETIC_CLASSES: [&str; 7] = [
    "image",
    "source",
    "input",
    "dependency",
    "written",
    "kernel",
    "token-broker",
];

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hermeticity {
    /// Each exception, e.g. `network: connect 10.0.0.1:443 (step build)`.
    pub exceptions: Vec<String>,
    /// Whether any exception was a network attempt.
    pub network: bool,
}

impl Hermeticity {
    /// `hermetic` or `not hermetic`.
    pub fn verdict(&self) -> &'static str {
        if self.exceptions.is_empty() {
            "hermetic"
        } else {
            "not hermetic"
        }
    }

    /// One line: `hermetic`, or `not hermetic: e1; e2`.
    pub fn summary(&self) -> String {
        if self.exceptions.is_empty() {
            "hermetic".to_owned()
        } else {
            format!("not hermetic: {}", self.exceptions.join("; "))
        }
    }
}

/// The verdict of `steps`.
pub fn hermeticity(steps: &[TracedStep]) -> Hermeticity {
    let mut all = Vec::new();
    let mut network = false;
    for step in steps {
        for n in step.network.iter().filter(|n| !n.is_local()) {
            network = true;
            let refused = if n.refused { ", refused" } else { "" };
            all.push(format!(
                "network: {} {}{refused} (step {})",
                n.syscall,
                n.describe(),
                step.name
            ));
        }
        for f in step.files.iter().filter(|f| f.access == "read") {
            if f.class == "cache" {
                all.push(format!(
                    "read from a cache: {} (step {})",
                    f.path, step.name
                ));
            } else if !HERMETIC_CLASSES.contains(&f.class.as_str()) {
                all.push(format!(
                    "read from `{}`: {} (step {})",
                    f.class, f.path, step.name
                ));
            }
        }
    }
    let more = all.len().saturating_sub(MAX_EXCEPTIONS);
    all.truncate(MAX_EXCEPTIONS);
    if more > 0 {
        all.push(format!("and {more} more"));
    }
    Hermeticity {
        exceptions: all,
        network,
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{TracedFileAccess, TracedNetwork};
    use super::*;

    fn net(syscall: &str, family: &str, address: &str, port: u16) -> TracedNetwork {
        TracedNetwork {
            syscall: syscall.into(),
            family: family.into(),
            address: address.into(),
            port,
            protocol: String::new(),
            refused: false,
            count: 1,
        }
    }

    fn read(path: &str, class: &str) -> TracedFileAccess {
        TracedFileAccess {
            path: path.into(),
            access: "read".into(),
            class: class.into(),
            sha256: None,
            count: 1,
        }
    }

    fn step(files: Vec<TracedFileAccess>, network: Vec<TracedNetwork>) -> TracedStep {
        TracedStep {
            name: "build".into(),
            index: 0,
            execs: vec![],
            files,
            network,
            dropped: (0, 0, 0),
        }
    }

    #[test]
    fn only_cache_reads_and_outside_addresses_are_exceptions() {
        let hermetic = step(
            vec![
                read("/usr/include/stdio.h", "image"),
                read("/work/a.c", "source"),
                read("/tmp/x", "written"),
            ],
            vec![
                net("connect", "inet", "127.0.0.1", 8080),
                net("connect", "inet6", "::1", 53),
                net("connect", "unix", "/run/airlock/oidc.sock", 0),
                net("bind", "inet", "0.0.0.0", 9000),
            ],
        );
        let h = hermeticity(&[hermetic]);
        assert_eq!((h.verdict(), h.network), ("hermetic", false), "{h:?}");
        let leaky = step(
            vec![read("/cache/target/x", "cache"), read("/x", "elsewhere")],
            vec![
                net("connect", "inet", "10.0.0.1", 443),
                net("sendto", "inet6", "2001:db8::1", 53),
            ],
        );
        let h = hermeticity(&[leaky]);
        assert_eq!(h.verdict(), "not hermetic");
        assert!(h.network);
        assert_eq!(
            h.exceptions,
            [
                "network: connect 10.0.0.1:443 (step build)",
                "network: sendto [2001:db8::1]:53 (step build)",
                "read from a cache: /cache/target/x (step build)",
                "read from `elsewhere`: /x (step build)",
            ]
        );
        assert!(h.summary().starts_with("not hermetic: network: connect"));
    }
}
