//! `input` of an admission evaluation: the job as submitted (`input.job`, field names as in
//! the job file), who submitted it (`input.client`), the forge event (`input.forge`, for
//! webhook jobs) and the job's signature (`input.signature`).

use airlock_job::JobSpec;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::clients::{AllowedProfiles, AuthenticatedClient};

/// The submitter, as a policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInput {
    /// The configured client name (`admin`, a `[[auth.clients]]` name, or `forge:<name>`).
    pub name: String,
    /// Its role (`read`, `submit-untrusted`, ..., `admin`, or `webhook` for a forge).
    pub role: String,
    /// The profiles it may submit to; `["*"]` for any.
    pub profiles: Vec<String>,
}

impl ClientInput {
    /// An API client.
    pub fn of(client: &AuthenticatedClient) -> Self {
        Self {
            name: client.name.clone(),
            role: client.role.as_str().to_owned(),
            profiles: match &client.profiles {
                AllowedProfiles::Any => vec!["*".to_owned()],
                AllowedProfiles::Only(list) => list.clone(),
            },
        }
    }

    /// A forge webhook (`[[forges]] name`).
    pub fn forge(name: &str) -> Self {
        Self {
            name: format!("forge:{name}"),
            role: "webhook".to_owned(),
            profiles: vec!["*".to_owned()],
        }
    }
}

/// The input document for `spec`, submitted by `client`, signed by `signer` (a keyid).
pub fn admission_input(spec: &JobSpec, client: &ClientInput, signer: Option<&str>) -> Value {
    json!({
        "job": spec.to_value(),
        "client": client,
        "forge": spec.trigger.as_ref().map(|t| serde_json::to_value(t).unwrap_or(Value::Null)),
        "signature": {"signed": signer.is_some(), "keyid": signer},
    })
}
