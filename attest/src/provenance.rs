//! SLSA Provenance v1 predicate (`https://slsa.dev/provenance/v1`).
//!
//! Field names and nesting follow the spec exactly (camelCase JSON). Empty optional lists and
//! maps are omitted so the serialized form carries only what airlock actually recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource_descriptor::{ResourceDescriptor, ResourceDescriptorError};
use crate::strict_json::{drop_extension_fields, drop_extension_fields_each};
use crate::timestamp::{TimestampError, validate_rfc3339_utc};

/// Why a provenance predicate is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvenanceError {
    /// `buildDefinition.buildType` is empty.
    #[error("buildDefinition.buildType is empty; it must be the URI of a documented build type")]
    EmptyBuildType,
    /// `buildDefinition.externalParameters` is not a JSON object.
    #[error("buildDefinition.externalParameters must be a JSON object")]
    ExternalParametersNotObject,
    /// `buildDefinition.externalParameters` is `{}`; SLSA requires it to be complete.
    #[error("buildDefinition.externalParameters is empty; it must record every external input")]
    ExternalParametersEmpty,
    /// `runDetails.builder.id` is empty.
    #[error("runDetails.builder.id is empty")]
    EmptyBuilderId,
    /// A resource descriptor inside the predicate is invalid.
    #[error("{field}[{index}]: {source}")]
    Descriptor {
        /// JSON path of the list, e.g. `buildDefinition.resolvedDependencies`.
        field: &'static str,
        /// Index in that list.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ResourceDescriptorError,
    },
    /// A `runDetails.metadata` timestamp is not RFC 3339 UTC.
    #[error("runDetails.metadata.{field}: {source}")]
    Timestamp {
        /// `startedOn` or `finishedOn`.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        source: TimestampError,
    },
}

/// The SLSA provenance v1 predicate: how an artifact was built, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provenance {
    /// The inputs that determine the build.
    pub build_definition: BuildDefinition,
    /// Details of this particular run.
    pub run_details: RunDetails,
}

/// `buildDefinition`: everything that, together with the build type, defines the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildDefinition {
    /// URI of the documented template that gives the parameters meaning.
    pub build_type: String,
    /// Parameters under the tenant's control: a complete, non-empty object.
    pub external_parameters: Value,
    /// Parameters set by the build platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<Value>,
    /// Artifacts fetched during the build (source, image, inputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// `runDetails`: who ran the build, and this run's metadata and byproducts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunDetails {
    /// The trusted build platform; its id alone determines the SLSA level claimed.
    pub builder: Builder,
    /// Invocation id and timing.
    pub metadata: BuildMetadata,
    /// Extra outputs useful for debugging or audit (e.g. the build log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// `runDetails.builder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Builder {
    /// URI naming the builder, one per trust level and mode.
    pub id: String,
    /// Component name to version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
    /// Dependencies of the builder itself (runner image, sandbox).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builder_dependencies: Vec<ResourceDescriptor>,
}

/// `runDetails.metadata`. airlock always records all three fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildMetadata {
    /// Identifier of this run (airlock's job id).
    pub invocation_id: String,
    /// Start time, RFC 3339 UTC (`…Z`).
    pub started_on: String,
    /// End time, RFC 3339 UTC (`…Z`).
    pub finished_on: String,
}

impl Provenance {
    /// Checks what serde cannot: non-empty ids, a non-empty `externalParameters` object,
    /// valid descriptors and RFC 3339 UTC timestamps.
    pub fn validate(&self) -> Result<(), ProvenanceError> {
        let def = &self.build_definition;
        if def.build_type.is_empty() {
            return Err(ProvenanceError::EmptyBuildType);
        }
        match &def.external_parameters {
            Value::Object(map) if map.is_empty() => {
                return Err(ProvenanceError::ExternalParametersEmpty);
            }
            Value::Object(_) => {}
            _ => return Err(ProvenanceError::ExternalParametersNotObject),
        }
        let run = &self.run_details;
        if run.builder.id.is_empty() {
            return Err(ProvenanceError::EmptyBuilderId);
        }
        let lists: [(&'static str, &[ResourceDescriptor]); 3] = [
            (
                "buildDefinition.resolvedDependencies",
                &def.resolved_dependencies,
            ),
            (
                "runDetails.builder.builderDependencies",
                &run.builder.builder_dependencies,
            ),
            ("runDetails.byproducts", &run.byproducts),
        ];
        for (field, list) in lists {
            for (index, rd) in list.iter().enumerate() {
                rd.validate()
                    .map_err(|source| ProvenanceError::Descriptor {
                        field,
                        index,
                        source,
                    })?;
            }
        }
        for (field, value) in [
            ("startedOn", &run.metadata.started_on),
            ("finishedOn", &run.metadata.finished_on),
        ] {
            validate_rfc3339_utc(value)
                .map_err(|source| ProvenanceError::Timestamp { field, source })?;
        }
        Ok(())
    }
}

/// Drops `<vendor>_<field>` extension keys from every object of the predicate whose schema the
/// spec defines (not from free-form ones such as `externalParameters` or `annotations`).
pub(crate) fn drop_predicate_extension_fields(predicate: &mut Value) {
    drop_extension_fields(Some(predicate));
    if let Some(def) = predicate.get_mut("buildDefinition") {
        drop_extension_fields(Some(def));
        drop_extension_fields_each(def.get_mut("resolvedDependencies"));
    }
    if let Some(run) = predicate.get_mut("runDetails") {
        drop_extension_fields(Some(run));
        if let Some(builder) = run.get_mut("builder") {
            drop_extension_fields(Some(builder));
            drop_extension_fields_each(builder.get_mut("builderDependencies"));
        }
        drop_extension_fields(run.get_mut("metadata"));
        drop_extension_fields_each(run.get_mut("byproducts"));
    }
}
