//! What the controller serves: the gRPC services clients ([`jobs`]) and runners ([`runners`])
//! call (the runners' cache calls in [`caches`]), thin adapters over the [`Scheduler`](crate::scheduler::Scheduler); the errors they
//! answer with ([`status`]); and the plain HTTP routes next to them ([`http`]: metrics,
//! health, OIDC discovery and JWKS).

mod caches;
pub mod http;
pub mod jobs;
pub mod runners;
pub mod status;
