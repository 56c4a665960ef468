//! The steps of a trace as typed values: programs, file accesses and network calls.

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
