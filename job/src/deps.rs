//! `[[deps]]`: a lockfile inside the source whose pinned packages the runner fetches from
//! the operator's mirror, verifies against the lockfile's own hashes and hands to the steps
//! read-only, so the project's usual offline build command works in the sandbox.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A package ecosystem whose lockfile airlock reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Rust crates: `Cargo.lock` (`checksum` = sha256 of the `.crate`).
    Cargo,
    /// Node packages: `package-lock.json` v2/v3 (`integrity` = sha512 of the tarball).
    Npm,
    /// Python distributions: a `requirements.txt` with `--hash=sha256:` on every pin.
    Pypi,
}

impl Ecosystem {
    /// Every ecosystem, in the order they are documented.
    pub const ALL: [Ecosystem; 3] = [Ecosystem::Cargo, Ecosystem::Npm, Ecosystem::Pypi];

    /// The name used in job files, `--mirror` and purls.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Cargo => "cargo",
            Ecosystem::Npm => "npm",
            Ecosystem::Pypi => "pypi",
        }
    }

    /// Parses a name written by a user (`--mirror cargo=URL`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[deps]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepsSpec {
    /// Which package manager's lockfile this is.
    pub ecosystem: Ecosystem,
    /// The lockfile's path inside the source (relative, no `..`): `Cargo.lock`,
    /// `package-lock.json`, `requirements.txt`.
    pub lockfile: String,
}
