//! airlock runner: the trusted platform agent between the controller and the sandbox.
//!
//! A runner leases a job, prepares its inputs outside the sandbox (source archive,
//! verified image), runs each step in a fresh libcontainer container through a
//! single-threaded helper process, collects `/out` after every sandbox process is
//! dead, uploads the outputs and completes the job. It never holds a signing key.

pub mod agent;
pub mod config;
pub mod control;
pub mod fetch;
pub mod image_output;
pub mod profile;
pub mod report;
pub mod sandbox;
pub mod services;
pub mod state;
pub mod tree;
pub mod vulns;
