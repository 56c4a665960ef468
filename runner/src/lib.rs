//! airlock runner: the trusted platform agent between the controller and the sandbox.
//!
//! A runner leases a job, prepares its inputs outside the sandbox (source archive,
//! verified image), runs each step in a fresh libcontainer container through a
//! single-threaded helper process, collects `/out` after every sandbox process is
//! dead, uploads the outputs and completes the job. It never holds a signing key.

pub mod agent;
pub mod archive_source;
pub mod build_tokens;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod events;
pub mod git_source;
pub mod heartbeat;
pub mod http;
pub mod identity;
pub mod image;
pub mod inputs;
pub mod outputs;
pub mod prepare;
pub mod profile;
pub mod redact;
pub mod sandbox;
pub mod source_archive;
pub mod state;
pub mod token_broker;
pub mod tree;
