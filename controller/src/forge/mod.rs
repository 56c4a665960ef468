//! Forges: webhooks that queue jobs (`POST /webhooks/<name>`) and the commit statuses that
//! answer them. The receiver authenticates each delivery before reading it, turns it into a
//! typed [`event::ForgeEvent`], reads the job file at the event's commit through the forge's
//! API, decides the profile itself ([`trust`]: a fork's pull request is always
//! `untrusted-pr`), and queues the job with the event as its `trigger`. The
//! [`reporter`] posts `pending` and then the final state, retrying, off the job's path.

pub mod api;
pub mod event;
pub mod job_file;
pub mod payload_github;
pub mod payload_gitlab;
pub mod reporter;
pub mod signature;
pub mod trust;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::ForgeConfig;
use api::ForgeApi;
use signature::WebhookSecret;

/// One configured forge with its secrets loaded.
#[derive(Debug)]
pub struct Forge {
    /// Its `[[forges]]` entry.
    pub config: ForgeConfig,
    /// The webhook secret.
    pub secret: WebhookSecret,
    /// Its API, with the token.
    pub api: ForgeApi,
}

/// Why a forge's secrets cannot be loaded (the controller does not start).
#[derive(Debug, thiserror::Error)]
#[error("forges `{forge}`: {field}: {message}")]
pub struct ForgeLoadError {
    /// The forge's name.
    pub forge: String,
    /// `webhook_secret_file` or `token_file`.
    pub field: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every configured forge, by name, and where job pages live (statuses link there).
#[derive(Debug, Default)]
pub struct Forges {
    by_name: BTreeMap<String, Arc<Forge>>,
    public_url: String,
}

impl Forges {
    /// Loads the secrets of `configs` (each file mode 0600 or stricter, not empty).
    /// `public_url` is the base of the job pages.
    pub fn load(configs: &[ForgeConfig], public_url: &str) -> Result<Self, ForgeLoadError> {
        let mut by_name = BTreeMap::new();
        for config in configs {
            let secret = read_secret(config, "webhook_secret_file", &config.webhook_secret_file)?;
            let token = read_secret(config, "token_file", &config.token_file)?;
            let forge = Forge {
                secret: WebhookSecret::new(&secret),
                api: ForgeApi::new(config, &token),
                config: config.clone(),
            };
            by_name.insert(config.name.clone(), Arc::new(forge));
        }
        Ok(Self {
            by_name,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The forge named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Forge>> {
        self.by_name.get(name).cloned()
    }

    /// True when no forge is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The page of job `id`.
    pub fn job_url(&self, id: &str) -> String {
        format!("{}/jobs/{id}", self.public_url)
    }
}

fn read_secret(
    config: &ForgeConfig,
    field: &'static str,
    path: &std::path::Path,
) -> Result<String, ForgeLoadError> {
    let error = |message: String| ForgeLoadError {
        forge: config.name.clone(),
        field,
        path: path.to_owned(),
        message,
    };
    let text = airlock_attest::read_private_key_file(path).map_err(|e| error(e.to_string()))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(error("is empty; write the secret into it".into()));
    }
    Ok(value.to_owned())
}
