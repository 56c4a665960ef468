//! Managing runner registrations from the command line (`airlock controller registration`):
//! create (a fresh secret, shown once; only its sha256 is stored), revoke, list. It works on
//! the controller's database directly, so it works while the controller runs (SQLite in WAL
//! mode, or the shared PostgreSQL); a revocation takes effect on the runners' next call.

use std::sync::Arc;

use crate::auth::runners::check_registration_name;
use crate::auth::secret::{REGISTRATION_SECRET_PREFIX, RandomError, Secret};
use crate::clock::{Clock, unix_ms};
use crate::config::{ConfigError, ControllerConfig};
use crate::store::{RegistrationRecord, Store, StoreError};

/// Why a registration command failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed, or the name is taken or unknown.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The name is not a plausible registration name.
    #[error("NAME: {0}")]
    Name(String),
    /// A secret could not be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Registrations of one controller's database.
#[derive(Debug, Clone)]
pub struct Registrations {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl Registrations {
    /// Opens the database `config` names (SQLite file or PostgreSQL) with the system clock.
    pub async fn open(config: &ControllerConfig) -> Result<Self, RegistrationError> {
        let url = crate::database::postgres_url(config)?;
        let (store, _) = crate::database::open_store(config, url.as_ref()).await?;
        Ok(Self::new(store, Arc::new(crate::clock::SystemClock)))
    }

    /// Registrations in `store`, timed by `clock`.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Creates registration `name` with a fresh secret; returns the secret (the only time it
    /// exists outside the runner that is given it).
    pub async fn create(&self, name: &str) -> Result<Secret, RegistrationError> {
        check_registration_name(name).map_err(RegistrationError::Name)?;
        let secret = Secret::generate(REGISTRATION_SECRET_PREFIX)?;
        self.store
            .create_registration(name, &secret.digest(), unix_ms(self.clock.now()))
            .await?;
        tracing::info!(registration = name, "runner registration created");
        Ok(secret)
    }

    /// Revokes `name`: no runner registers with its secret any more, and every runner token
    /// issued under it stops working. Returns false if it was revoked already.
    pub async fn revoke(&self, name: &str) -> Result<bool, RegistrationError> {
        let revoked = self
            .store
            .revoke_registration(name, unix_ms(self.clock.now()))
            .await?;
        if revoked {
            tracing::info!(registration = name, "runner registration revoked");
        }
        Ok(revoked)
    }

    /// Every registration, by name.
    pub async fn list(&self) -> Result<Vec<RegistrationRecord>, RegistrationError> {
        Ok(self.store.registrations().await?)
    }

    /// Closes the database.
    pub async fn close(&self) {
        self.store.close().await;
    }
}
