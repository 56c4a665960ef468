//! What the controller serves: the gRPC services clients ([`jobs`]) and runners ([`runners`])
//! call, thin adapters over the [`Scheduler`](crate::scheduler::Scheduler); the errors they
//! answer with ([`status`]); and the plain HTTP routes next to them ([`http`]: metrics,
//! health, OIDC discovery and JWKS).

pub mod http;
pub mod jobs;
pub mod runners;
pub mod status;
