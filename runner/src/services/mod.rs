//! Build-time services a step may reach from inside the sandbox: the per-job token broker
//! and the controller-backed token source behind it.

pub mod build_tokens;
pub mod token_broker;
