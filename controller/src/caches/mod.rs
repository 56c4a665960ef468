//! Build caches (issue 16, in progress): which caches a job may restore and where it may
//! save, decided by the controller from the job's trust profile. Only the policy exists so
//! far; storage, the runner's restore and save, and provenance records come next (see
//! docs/caches.md).

pub mod scope;

pub use scope::{CachePlan, CachePolicy, Lookup, Scope, TrustDomain, plan};
