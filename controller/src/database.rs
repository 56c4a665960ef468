//! Which database a controller uses: the SQLite file (default) or a PostgreSQL URL, whose
//! password never reaches logs, `Debug` output or error messages.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ControllerConfig};
use crate::store::{Store, StoreError};

/// A PostgreSQL connection URL. `Debug` and [`DatabaseUrl::redacted`] hide the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return "<not a URL>".to_owned();
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                let masked = if userinfo.contains(':') {
                    format!("{user}:***")
                } else {
                    user.to_owned()
                };
                format!("{}{masked}{}", &url[..scheme_end], &rest[at..])
            }
            None => url.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// The URL the configuration names, read from `database_url_file` when set.
pub fn postgres_url(config: &ControllerConfig) -> Result<Option<DatabaseUrl>, ConfigError> {
    if let Some(url) = &config.database_url {
        return Ok(Some(url.clone()));
    }
    let Some(file) = &config.database_url_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    Ok(Some(DatabaseUrl::new(text.trim())))
}

/// Opens the store the configuration names: PostgreSQL when a URL is configured, else the
/// SQLite file. Returns the store and a description for logs (no password).
pub async fn open_store(
    config: &ControllerConfig,
    url: Option<&DatabaseUrl>,
) -> Result<(Store, String), StoreError> {
    match url {
        Some(url) => {
            let store =
                Store::connect_postgres(url.expose(), config.database_max_connections).await?;
            Ok((store, url.redacted()))
        }
        None => {
            let path = config.database_path();
            let store = Store::open(&path).await?;
            Ok((store, path.display().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::new("postgres://airlock:s3cret@db.example:5432/airlock");
        assert_eq!(
            url.redacted(),
            "postgres://airlock:***@db.example:5432/airlock"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        let plain = DatabaseUrl::new("postgres://airlock@127.0.0.1/x");
        assert_eq!(plain.redacted(), "postgres://airlock@127.0.0.1/x");
        assert_eq!(DatabaseUrl::new("nope").redacted(), "<not a URL>");
    }
}
