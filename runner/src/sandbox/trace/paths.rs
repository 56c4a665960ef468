//! Paths as the sandbox sees them: made absolute against the caller's working directory or
//! directory fd, normalized lexically (symlinks are not resolved: the trace names what the
//! program asked for), and classified by the mount they fall under.

use std::collections::BTreeSet;

/// Where a path lives in the sandbox (`TracedFile.class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileClass {
    /// The read-only image root.
    Image,
    /// `/work` as checked out (not written by this run).
    Source,
    /// `/inputs`.
    Input,
    /// `/deps`.
    Dependency,
    /// `/cache`.
    Cache,
    /// Written by this run: `/out`, `/tmp`, or a file an earlier open wrote.
    Written,
    /// `/proc`, `/sys`, `/dev`.
    Kernel,
    /// `/run/airlock` (the token broker's socket).
    TokenBroker,
}

impl FileClass {
    /// The proto's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Source => "source",
            Self::Input => "input",
            Self::Dependency => "dependency",
            Self::Cache => "cache",
            Self::Written => "written",
            Self::Kernel => "kernel",
            Self::TokenBroker => "token-broker",
        }
    }

    /// Whether a read of this class is hashed (files the job's own inputs are made of).
    pub fn hashed(self) -> bool {
        matches!(self, Self::Source | Self::Input)
    }
}

fn under(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The class of the absolute, normalized `path`; `written` holds the paths this run opened
/// for writing so far.
pub fn classify(path: &str, written: &BTreeSet<String>) -> FileClass {
    if written.contains(path) || under(path, "/out") || under(path, "/tmp") {
        FileClass::Written
    } else if under(path, "/work") {
        FileClass::Source
    } else if under(path, "/inputs") {
        FileClass::Input
    } else if under(path, "/deps") {
        FileClass::Dependency
    } else if under(path, "/cache") {
        FileClass::Cache
    } else if under(path, "/proc") || under(path, "/sys") || under(path, "/dev") {
        FileClass::Kernel
    } else if under(path, "/run/airlock") {
        FileClass::TokenBroker
    } else {
        FileClass::Image
    }
}

/// `path` made absolute against `base` (an absolute directory) and normalized: `.` and empty
/// components dropped, `..` pops (never above `/`).
pub fn absolute(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{base}/{path}")
    };
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute_and_classified() {
        assert_eq!(absolute("/work", "src/../main.c"), "/work/main.c");
        assert_eq!(absolute("/work/a", "./b//c"), "/work/a/b/c");
        assert_eq!(absolute("/", "../../etc/passwd"), "/etc/passwd");
        assert_eq!(absolute("/x", "/usr/lib/../bin/sh"), "/usr/bin/sh");
        let mut written = BTreeSet::new();
        assert_eq!(classify("/work/main.c", &written), FileClass::Source);
        written.insert("/work/main.o".to_owned());
        assert_eq!(classify("/work/main.o", &written), FileClass::Written);
        assert_eq!(classify("/out/hello", &written), FileClass::Written);
        assert_eq!(classify("/tmp/cc1.s", &written), FileClass::Written);
        assert_eq!(classify("/inputs/zlib.tar.gz", &written), FileClass::Input);
        assert_eq!(classify("/deps/cargo/fnv", &written), FileClass::Dependency);
        assert_eq!(classify("/cache/target/x", &written), FileClass::Cache);
        assert_eq!(classify("/proc/self/maps", &written), FileClass::Kernel);
        assert_eq!(classify("/dev/null", &written), FileClass::Kernel);
        assert_eq!(
            classify("/run/airlock/oidc.sock", &written),
            FileClass::TokenBroker
        );
        assert_eq!(classify("/usr/include/stdio.h", &written), FileClass::Image);
        assert_eq!(classify("/workshop/x", &written), FileClass::Image);
        assert!(FileClass::Source.hashed() && !FileClass::Image.hashed());
    }
}
