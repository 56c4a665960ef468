//! Phase 3 and the job's voice: outputs collected from `/out` and uploaded, step events and
//! logs delivered in order, with secrets redacted before they leave the runner.

pub mod events;
pub mod outputs;
pub mod redact;
pub mod sbom;
