//! Fixtures shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;

use airlock_attest::{
    BuildDefinition, BuildMetadata, Builder, DigestSet, Provenance, ResourceDescriptor, RunDetails,
    Sha256Digest, Statement,
};
use serde_json::json;

pub const BUILDER_ID: &str = "https://airlock.example/builders/release";
pub const BUILD_TYPE: &str = "https://airlock.example/buildtypes/job/v1";
pub const SOURCE_URI: &str = "git+https://git.example/org/repo";
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A complete, valid provenance statement whose only subject is `artifact` named `out/app`.
pub fn statement_for(artifact: &[u8]) -> Statement {
    // Keys are written in sorted order so the JSON is the same whether or not some crate in
    // the workspace turns on serde_json's `preserve_order`.
    let external = json!({
        "inputs": [],
        "source": {"ref": "refs/heads/main", "uri": SOURCE_URI},
        "steps": [{"run": "make"}],
    });
    Statement::new(
        vec![ResourceDescriptor::sha256(
            "out/app",
            &Sha256Digest::of(artifact),
        )],
        Provenance {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE.to_owned(),
                external_parameters: external,
                internal_parameters: Some(json!({"profile": "default"})),
                resolved_dependencies: vec![ResourceDescriptor {
                    uri: Some(SOURCE_URI.to_owned()),
                    digest: DigestSet::from([("gitCommit".to_owned(), COMMIT.to_owned())]),
                    ..Default::default()
                }],
            },
            run_details: RunDetails {
                builder: Builder {
                    id: BUILDER_ID.to_owned(),
                    version: BTreeMap::from([("airlock".to_owned(), "0.1.0".to_owned())]),
                    builder_dependencies: vec![],
                },
                metadata: BuildMetadata {
                    invocation_id: "job-42".to_owned(),
                    started_on: "2024-05-01T12:00:00Z".to_owned(),
                    finished_on: "2024-05-01T12:01:30Z".to_owned(),
                },
                byproducts: vec![ResourceDescriptor::sha256(
                    "build.log",
                    &Sha256Digest::of(b"log"),
                )],
            },
        },
    )
}

/// The sample statement's JSON as a mutable value, for crafting bad variants.
pub fn statement_value(artifact: &[u8]) -> serde_json::Value {
    serde_json::to_value(statement_for(artifact)).expect("statement serializes")
}
