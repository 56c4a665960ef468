//! The airlock job file: strict TOML parsing into typed, validated values.
//!
//! A job file is untrusted input. It is parsed with unknown fields refused, then
//! validated across fields; every error names the file, the field and a fix. The
//! same types parse the JSON form that clients submit to the controller, so the
//! controller re-validates everything it receives.

mod caches;
mod confine;
mod deps;
mod error;
mod image_output;
mod image_ref;
pub mod limits;
mod names;
mod reserved;
mod resolve;
mod source;
mod spec;
mod step;
mod trigger;
mod units;
mod validate;

pub use caches::{CACHE_MOUNT, CacheRoot, CacheSpec, MAX_CACHE_KEY_FILES, MAX_CACHES};
pub use confine::SourcePolicy;
pub use deps::{DepsSpec, Ecosystem};
pub use error::JobFileError;
pub use image_output::{ImageOutputSpec, LayerCompression, MAX_IMAGES};
pub use image_ref::ImageRef;
pub use names::{is_clean_relative, is_job_name};
pub use reserved::{
    RESERVED_OUTPUT_SUFFIXES, SBOM_STATEMENT_SUFFIX, TRACE_STATEMENT_SUFFIX, is_reserved_component,
    is_sbom_file_name, reserved_component, sbom_file_names,
};
pub use resolve::{Resolver, from_toml_file_resolving};
pub use source::{SourceSpec, is_git_ref};
pub use spec::{
    ImageSpec, InputSpec, JobMeta, JobSpec, OidcSpec, OutputsSpec, PROFILES, ResourcesSpec,
};
pub use step::{Command, RESERVED_ENV, StepSpec};
pub use trigger::{ChangeRequest, ForgeKind, MAX_TRIGGER_FIELD, Trigger, TriggerEvent};
pub use units::{ByteSize, HumanDuration};
