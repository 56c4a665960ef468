//! Which database a controller uses: the SQLite file (default) or PostgreSQL, when the
//! configuration names a URL ([`DatabaseUrl`], whose password never shows).

pub use crate::config::DatabaseUrl;
use crate::config::{ConfigError, ControllerConfig};
use crate::store::{Store, StoreError};

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
