//! airlock control plane: job API, queue, store, blob store, provenance signer.
//!
//! The controller alone decides job state and writes provenance. Runners are trusted platform
//! agents, but every digest they report is recomputed here, and a lease token fences every call
//! a runner makes about a job, so a stale runner cannot change a job it no longer holds.
//!
//! Entry points: [`init()`] writes a controller directory (`airlock controller init`),
//! [`ControllerConfig::load`] / [`ControllerConfig::local`] describe a controller, and
//! [`serve`] (or [`Controller`]) runs it on a listener the caller bound.
//!
//! Layout: [`config`] and [`mod@init`] set up; [`store`] (SQLite or PostgreSQL) and [`blobs`]
//! hold state; [`scheduler`] holds the job logic; [`api`] adapts it to gRPC and HTTP, behind
//! [`auth`] (client roles, runner and job tokens); [`server`] assembles them on one listener
//! and [`tls`] terminates TLS; [`oidc`] issues build tokens; [`provenance`] formats statements
//! and signs them; [`web`] serves the job pages.

pub mod api;
pub mod auth;
pub mod blobs;
pub mod caches;
pub mod clock;
pub mod config;
pub mod database;
pub mod error;
pub mod forge;
pub mod hub;
pub mod ids;
pub mod init;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod provenance;
pub mod scheduler;
pub mod scheduling;
pub mod server;
pub mod state;
pub mod store;
pub mod sweeper;
pub mod tls;
pub mod web;

pub use clock::{Clock, IdGen, ManualClock, RandomIds, SequentialIds, SystemClock};
pub use config::{ControllerConfig, LOCAL_ISSUER, Mode, SigningConfig};
pub use error::ControllerError;
pub use init::{InitError, InitSummary, ProfileKey, init, read_token_file};
pub use provenance::statement::{BUILD_TYPE, EXTERNAL_PARAMETERS};
pub use server::{Controller, serve};
pub use state::JobState;
