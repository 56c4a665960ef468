//! Build caches: which caches a job may restore and where it may save, decided by the
//! controller from the job's trust profile (`scope.rs`), and where their archives live
//! (`storage.rs`). The runner restores and saves them outside the sandbox (docs/caches.md).

pub mod scope;
pub mod storage;

pub use scope::{CachePlan, CachePolicy, Lookup, Scope, TrustDomain, plan, project_of};
pub use storage::CacheStorage;
