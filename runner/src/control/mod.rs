//! The runner's link to the controller: its credentials (registration secret, runner
//! token) and lease heartbeats.

pub mod credentials;
pub mod heartbeat;
