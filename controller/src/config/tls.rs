//! `[tls]` of `controller.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[tls]`: serve gRPC and HTTP over TLS (rustls). Paths relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the controller.
    pub cert: PathBuf,
    /// PEM private key of the controller (mode 0600 or stricter).
    pub key: PathBuf,
    /// PEM CA certificates that sign runner client certificates; when set, runner calls
    /// must present a client certificate it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_client_ca: Option<PathBuf>,
}
