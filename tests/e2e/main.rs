//! End-to-end tests: the real `airlock` binary, the real sandbox (libcontainer,
//! namespaces, seccomp), real gRPC on loopback, a real SQLite file, and
//! third-party verifiers.
//!
//! They need root, the example base image (`examples/base-image/build.sh`) and the
//! Python venv (`scripts/setup-test-env.sh`), so they are `#[ignore]`d for a bare
//! `cargo test`; `scripts/test.sh` prepares everything and runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod bad_job_files;
mod build_token_job;
mod build_token_sandbox;
mod caches;
mod chaos;
mod client_token;
mod common;
mod concurrent_runs;
mod deps;
mod deps_mirror;
mod escape_probe;
mod fake_forge;
mod fleet;
mod fleet_processes;
mod forge;
mod hermetic_inputs;
mod host;
mod image_check;
mod images;
mod job_file_attacks;
mod local_run;
mod pod;
mod policy;
mod provenance_fixtures;
mod provenance_interop;
mod provenance_key_isolation;
mod provenance_keys_cli;
mod provenance_reproducible;
mod push;
mod rootless;
mod sandbox_escape;
mod sbom;
mod secret_leak_scan;
mod step_isolation;
mod three_processes;
mod tls_processes;
mod trace;
mod vsa;
mod web;
