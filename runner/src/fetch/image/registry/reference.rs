//! Registry image names: `HOST[:PORT]/REPOSITORY`, always with an explicit registry host.

use std::fmt;

use super::error::RegistryError;
use crate::fetch::http::is_loopback_host;

/// A repository in a registry, e.g. `127.0.0.1:5000/airlock/base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRepo {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// The repository path, e.g. `airlock/base`.
    pub repository: String,
}

impl RegistryRepo {
    /// Parses `HOST[:PORT]/REPO`. The first component must name a registry (contain `.` or
    /// `:` or be `localhost`): airlock never guesses a default registry.
    pub fn parse(name: &str) -> Result<Self, RegistryError> {
        let bad = |reason: &str| RegistryError::BadName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let (registry, repository) = name
            .split_once('/')
            .ok_or_else(|| bad("it has no registry host; write HOST[:PORT]/REPOSITORY"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad(
                "the first component is not a registry host; airlock has no default registry, \
                 write HOST[:PORT]/REPOSITORY",
            ));
        }
        let host_ok = registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if registry.is_empty() || !host_ok {
            return Err(bad("the registry host has invalid characters"));
        }
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
                    && part != "."
                    && part != ".."
            });
        if !repo_ok {
            return Err(bad(
                "the repository must be lowercase path components of [a-z0-9._-]",
            ));
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
        })
    }

    /// The host without the port.
    pub fn host(&self) -> &str {
        if let Some(rest) = self.registry.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        self.registry.split(':').next().unwrap_or(&self.registry)
    }

    /// `http://` for loopback registries (test registries), `https://` otherwise.
    pub fn base_url(&self) -> String {
        let scheme = if is_loopback_host(self.host()) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

impl fmt::Display for RegistryRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// Splits `HOST[:PORT]/REPO:TAG` into the repository and the tag (`None` without a tag).
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let r = RegistryRepo::parse("127.0.0.1:5000/airlock/base").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "airlock/base");
        assert_eq!(r.base_url(), "http://127.0.0.1:5000/v2/airlock/base");
        let r = RegistryRepo::parse("registry.example.org/app").unwrap();
        assert_eq!(r.base_url(), "https://registry.example.org/v2/app");
        assert!(RegistryRepo::parse("debian").is_err());
        assert!(RegistryRepo::parse("library/debian").is_err());
        assert!(RegistryRepo::parse("127.0.0.1:5000/../x").is_err());
        assert!(RegistryRepo::parse("127.0.0.1:5000/UPPER").is_err());
        assert_eq!(
            split_tag("127.0.0.1:5000/base:v1"),
            ("127.0.0.1:5000/base", Some("v1"))
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/base"),
            ("127.0.0.1:5000/base", None)
        );
    }
}
