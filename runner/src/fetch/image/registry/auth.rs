//! Registry credentials from a docker-style `config.json` and the token dance of the
//! distribution spec (`WWW-Authenticate: Bearer realm=...,service=...,scope=...`).
//!
//! Credentials live only in [`Credentials`], whose `Debug` is redacted, and are only sent in
//! `Authorization` headers: never logged, never in an error, never across a redirect.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::error::RegistryError;

/// A registry login: the `Basic` header value, precomputed.
#[derive(Clone)]
pub struct Credentials {
    basic: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// From a user name and password (or token).
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            basic: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
        }
    }

    /// The `Authorization` header value.
    pub(crate) fn header(&self) -> &str {
        &self.basic
    }
}

/// Logins per registry host, as read from a docker-style auth file.
#[derive(Clone, Default)]
pub struct RegistryAuth {
    by_host: BTreeMap<String, Credentials>,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registries", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `https://host/v1/` and `host` both name `host`.
fn normalise_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key).to_owned()
}

impl RegistryAuth {
    /// No credentials: anonymous pulls only.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Reads `auths` from a docker-style `config.json`. Credential helpers are not run.
    pub fn from_file(path: &Path) -> Result<Self, RegistryError> {
        let err = |reason: String| RegistryError::AuthFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        // serde_json errors may quote input: report only the position.
        let config: DockerConfig = serde_json::from_slice(&text).map_err(|e| {
            err(format!(
                "not a docker config.json (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let mut by_host = BTreeMap::new();
        for (key, entry) in config.auths {
            let creds = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = STANDARD
                        .decode(auth.trim())
                        .map_err(|_| err(format!("auths.\"{key}\".auth is not base64")))?;
                    let decoded = String::from_utf8(decoded)
                        .map_err(|_| err(format!("auths.\"{key}\".auth is not UTF-8")))?;
                    let (user, pass) = decoded.split_once(':').ok_or_else(|| {
                        err(format!("auths.\"{key}\".auth is not base64(user:password)"))
                    })?;
                    Credentials::new(user, pass)
                }
                (_, Some(user), Some(pass)) => Credentials::new(&user, &pass),
                _ => continue,
            };
            by_host.insert(normalise_key(&key), creds);
        }
        Ok(Self { by_host })
    }

    /// The default file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`, if
    /// it exists; anonymous otherwise.
    pub fn from_default_location() -> Result<Self, RegistryError> {
        let path = std::env::var_os("DOCKER_CONFIG")
            .map(|d| PathBuf::from(d).join("config.json"))
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
            });
        match path {
            Some(p) if p.is_file() => Self::from_file(&p),
            _ => Ok(Self::anonymous()),
        }
    }

    /// The login for `registry` (`HOST[:PORT]`), if any.
    pub fn for_registry(&self, registry: &str) -> Option<&Credentials> {
        self.by_host.get(registry)
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter, if given.
        service: Option<String>,
        /// `scope` parameter, if given.
        scope: Option<String>,
    },
}

/// Parses one challenge; `None` if it is neither Basic nor a Bearer with a realm.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key, value.to_owned());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// The token endpoint's answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:app:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn reads_docker_config_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = STANDARD.encode("bob:s3cret-pw");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://127.0.0.1:5000/v1/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let a = RegistryAuth::from_file(&path).unwrap();
        let creds = a.for_registry("127.0.0.1:5000").unwrap();
        assert!(creds.header().starts_with("Basic "));
        assert!(!format!("{a:?} {creds:?}").contains("s3cret"));
        std::fs::write(&path, r#"{"auths":{"h":{"auth":"s3cret-not-base64!"}}}"#).unwrap();
        let e = RegistryAuth::from_file(&path).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
