//! What one step did, aggregated as the supervisor observes it: each program, file and
//! address once, with how many times, and bounded (beyond the caps, events are counted as
//! dropped, never silently lost).

use std::collections::BTreeMap;

use airlock_proto::v1 as pb;

use super::net::SocketAddress;
use super::paths::FileClass;

/// Most distinct programs listed per step.
pub const MAX_EXECS: usize = 5_000;
/// Most distinct (path, access) file entries listed per step.
pub const MAX_FILES: usize = 20_000;
/// Most distinct network entries listed per step.
pub const MAX_NETWORK: usize = 5_000;

/// `read` or `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Opened for reading only.
    Read,
    /// Opened for writing, created or truncated.
    Write,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileEntry {
    class: FileClass,
    sha256: Option<String>,
    count: u64,
}

/// One step's observations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepRecord {
    execs: BTreeMap<String, (Option<String>, u64)>,
    files: BTreeMap<(String, Access), FileEntry>,
    network: BTreeMap<(&'static str, SocketAddress, bool), u64>,
    dropped_execs: u64,
    dropped_files: u64,
    dropped_network: u64,
}

impl StepRecord {
    /// Whether `path` is already listed with `access` (so its digest need not be computed).
    pub fn has_file(&self, path: &str, access: Access) -> bool {
        self.files.contains_key(&(path.to_owned(), access))
    }

    /// Whether `path` is already listed as executed.
    pub fn has_exec(&self, path: &str) -> bool {
        self.execs.contains_key(path)
    }

    /// One `execve` of `path`.
    pub fn exec(&mut self, path: String, sha256: Option<String>) {
        if let Some(entry) = self.execs.get_mut(&path) {
            entry.1 += 1;
        } else if self.execs.len() < MAX_EXECS {
            self.execs.insert(path, (sha256, 1));
        } else {
            self.dropped_execs += 1;
        }
    }

    /// One open of `path`.
    pub fn file(&mut self, path: String, access: Access, class: FileClass, sha256: Option<String>) {
        let key = (path, access);
        if let Some(entry) = self.files.get_mut(&key) {
            entry.count += 1;
        } else if self.files.len() < MAX_FILES {
            self.files.insert(
                key,
                FileEntry {
                    class,
                    sha256,
                    count: 1,
                },
            );
        } else {
            self.dropped_files += 1;
        }
    }

    /// One network call with an address.
    pub fn network(&mut self, syscall: &'static str, address: SocketAddress, refused: bool) {
        let key = (syscall, address, refused);
        if let Some(count) = self.network.get_mut(&key) {
            *count += 1;
        } else if self.network.len() < MAX_NETWORK {
            self.network.insert(key, 1);
        } else {
            self.dropped_network += 1;
        }
    }

    /// An event that could not be observed (its memory could not be read): counted.
    pub fn unobserved_file(&mut self) {
        self.dropped_files += 1;
    }

    /// An exec that could not be observed.
    pub fn unobserved_exec(&mut self) {
        self.dropped_execs += 1;
    }

    /// A network call that could not be observed.
    pub fn unobserved_network(&mut self) {
        self.dropped_network += 1;
    }

    /// The network calls to addresses outside the sandbox, as `syscall address`.
    pub fn outside_attempts(&self) -> Vec<String> {
        self.network
            .keys()
            .filter(|(_, a, _)| !a.is_local())
            .map(|(syscall, a, _)| format!("{syscall} {}", describe(a)))
            .collect()
    }

    /// The step's trace as CompleteJob carries it.
    pub fn into_proto(
        self,
        name: &str,
        index: u32,
        started_ms: i64,
        finished_ms: i64,
    ) -> pb::StepTrace {
        pb::StepTrace {
            name: name.to_owned(),
            index,
            execs: self
                .execs
                .into_iter()
                .map(|(path, (sha256, count))| pb::TracedExec {
                    path,
                    sha256: sha256.unwrap_or_default(),
                    count,
                })
                .collect(),
            files: self
                .files
                .into_iter()
                .map(|((path, access), e)| pb::TracedFile {
                    path,
                    access: access.as_str().to_owned(),
                    class: e.class.as_str().to_owned(),
                    sha256: e.sha256.unwrap_or_default(),
                    count: e.count,
                })
                .collect(),
            network: self
                .network
                .into_iter()
                .map(|((syscall, address, refused), count)| {
                    let (addr, port) = match &address {
                        SocketAddress::Ip { ip, port } => (ip.to_string(), u32::from(*port)),
                        SocketAddress::Unix(path) => (path.clone(), 0),
                    };
                    pb::TracedConnection {
                        syscall: syscall.to_owned(),
                        family: address.family().to_owned(),
                        address: addr,
                        port,
                        protocol: String::new(),
                        refused,
                        count,
                    }
                })
                .collect(),
            dropped_execs: self.dropped_execs,
            dropped_files: self.dropped_files,
            dropped_network: self.dropped_network,
            started_ms,
            finished_ms,
        }
    }
}

/// `10.0.0.1:443`, `[::1]:53`, `unix:/path`.
pub fn describe(address: &SocketAddress) -> String {
    match address {
        SocketAddress::Ip {
            ip: std::net::IpAddr::V6(ip),
            port,
        } => format!("[{ip}]:{port}"),
        SocketAddress::Ip { ip, port } => format!("{ip}:{port}"),
        SocketAddress::Unix(path) => format!("unix:{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_and_caps_drop_with_a_count() {
        let mut r = StepRecord::default();
        r.exec("/usr/bin/cc".into(), Some("a".repeat(64)));
        r.exec("/usr/bin/cc".into(), None);
        r.file("/work/a.c".into(), Access::Read, FileClass::Source, None);
        r.file("/work/a.c".into(), Access::Read, FileClass::Source, None);
        r.file("/out/a".into(), Access::Write, FileClass::Written, None);
        let remote = SocketAddress::Ip {
            ip: "10.0.0.1".parse().unwrap(),
            port: 443,
        };
        r.network("connect", remote.clone(), false);
        r.network(
            "connect",
            SocketAddress::Ip {
                ip: "127.0.0.1".parse().unwrap(),
                port: 8080,
            },
            false,
        );
        assert_eq!(r.outside_attempts(), ["connect 10.0.0.1:443"]);
        for i in 0..MAX_FILES {
            r.file(format!("/usr/x{i}"), Access::Read, FileClass::Image, None);
        }
        let p = r.into_proto("build", 0, 1, 2);
        assert_eq!(p.execs.len(), 1);
        assert_eq!((p.execs[0].count, p.execs[0].sha256.len()), (2, 64));
        assert_eq!(p.files.len(), MAX_FILES);
        assert_eq!(p.dropped_files, 2, "two entries over the cap");
        let a = p.files.iter().find(|f| f.path == "/work/a.c").unwrap();
        assert_eq!(
            (a.count, a.access.as_str(), a.class.as_str()),
            (2, "read", "source")
        );
        assert_eq!(p.network.len(), 2);
        let n = p.network.iter().find(|n| n.address == "10.0.0.1").unwrap();
        assert_eq!((n.family.as_str(), n.port, n.refused), ("inet", 443, false));
    }
}
