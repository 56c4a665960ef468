//! `[web]` of `controller.toml`: the job pages the controller serves.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scheduling::HumanDuration;

/// Default lifetime of a web session: 12 hours.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// `[web]`: the queue, job and runner pages at `/`, `/jobs/<id>` and `/runners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// `true`: pages are readable without logging in (public projects). Logging in is still
    /// needed to act (cancel). Default `false`.
    #[serde(default)]
    pub anonymous_read: bool,
    /// The public base URL of the pages (what commit statuses link to); default the
    /// controller's `issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// How long a login lasts, e.g. `"12h"` (default), `"30m"`.
    #[serde(default = "default_lifetime")]
    pub session_lifetime: HumanDuration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            anonymous_read: false,
            public_url: None,
            session_lifetime: default_lifetime(),
        }
    }
}

fn default_lifetime() -> HumanDuration {
    HumanDuration(DEFAULT_SESSION_LIFETIME)
}

impl WebConfig {
    /// Checks what serde cannot: `(field, message)` on error.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(url) = &self.public_url
            && !super::is_http_url(url)
        {
            return Err((
                "web.public_url",
                format!("`{url}` is not an http(s) URL; write e.g. https://ci.example.com"),
            ));
        }
        if self.session_lifetime.0 < Duration::from_secs(60)
            || self.session_lifetime.0 > Duration::from_secs(30 * 86400)
        {
            return Err((
                "web.session_lifetime",
                "must be between 1m and 30d".to_owned(),
            ));
        }
        Ok(())
    }
}
