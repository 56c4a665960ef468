//! Registry image names: `HOST[:PORT]/REPOSITORY`, always with an explicit registry host,
//! and the tags and push targets (`HOST[:PORT]/REPOSITORY[:TAG]`) built on them.

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

/// Checks `tag` against the distribution spec's tag grammar: 1-128 characters of
/// `[A-Za-z0-9_.-]`, the first not `.` or `-`.
pub fn validate_tag(repo: &RegistryRepo, tag: &str) -> Result<(), RegistryError> {
    let valid = tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(RegistryError::BadName {
            name: format!("{repo}:{tag}"),
            reason: "the tag must be 1-128 characters of [A-Za-z0-9_.-], not starting with \
                     `.` or `-`"
                .into(),
        })
    }
}

/// Parses a push target `HOST[:PORT]/REPOSITORY[:TAG]` into the repository and its tag. A
/// digest (`@sha256:...`) is refused: what is pushed decides the digest.
pub fn parse_push_target(name: &str) -> Result<(RegistryRepo, Option<String>), RegistryError> {
    if name.contains('@') {
        return Err(RegistryError::BadName {
            name: name.to_owned(),
            reason: "a push target names no digest (the layout's manifest decides it); \
                     write HOST[:PORT]/REPOSITORY[:TAG]"
                .into(),
        });
    }
    let (repo, tag) = split_tag(name);
    let repo = RegistryRepo::parse(repo)?;
    if let Some(tag) = tag {
        validate_tag(&repo, tag)?;
    }
    Ok((repo, tag.map(str::to_owned)))
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

    #[test]
    fn parses_push_targets() {
        let (r, t) = parse_push_target("127.0.0.1:5000/app/web:v1.2").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/app/web");
        assert_eq!(t.as_deref(), Some("v1.2"));
        let (r, t) = parse_push_target("registry.example.com/app").unwrap();
        assert_eq!(r.registry, "registry.example.com");
        assert_eq!(t, None);
        let (r, t) = parse_push_target("localhost:5000/app").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(t, None);
        for bad in [
            "127.0.0.1:5000/app@sha256:00",
            "127.0.0.1:5000/app:-x",
            "127.0.0.1:5000/app:",
            "127.0.0.1:5000/app:a/b",
            "app:v1",
        ] {
            assert!(parse_push_target(bad).is_err(), "{bad}");
        }
        let long = format!("127.0.0.1:5000/app:{}", "a".repeat(129));
        assert!(parse_push_target(&long).is_err());
    }
}
