//! Bearer-token client plumbing shared by the CLI and the runner.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::tls::{ClientTlsError, ClientTlsOptions};

/// The metadata key that carries a job token on runner calls about a job.
pub const JOB_TOKEN_HEADER: &str = "x-airlock-job-token";

/// Adds `authorization: Bearer <token>` to every call, and `x-airlock-job-token` when it is
/// scoped to a job. The bearer token can be replaced while clients are in use (a runner
/// renews its short-lived token): clones share it. Debug never shows a token.
#[derive(Clone)]
pub struct BearerAuth {
    token: Arc<RwLock<MetadataValue<Ascii>>>,
    job_token: Option<MetadataValue<Ascii>>,
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerAuth(<redacted>)")
    }
}

/// Errors while setting up a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The token has characters that cannot go into a header.
    #[error("the token is not valid header text (is the token file binary?)")]
    BadToken,
    /// The URL is malformed.
    #[error("bad controller URL `{url}`: {source}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The controller did not answer (or the TLS handshake failed: `hint` says what to do).
    #[error(
        "cannot reach the controller at {url}: {source}{}",
        hint.map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Connect {
        /// The URL given.
        url: String,
        /// What to do, when TLS explains the failure.
        hint: Option<&'static str>,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The TLS options cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::ClientTlsError),
}

impl ClientError {
    /// True if trying again later may help (the controller may not be up yet); false for
    /// bad URLs, files and certificates.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Connect { hint: None, .. })
    }
}

/// `value` as a sensitive header value (never printed by `http`'s Debug).
fn sensitive(value: &str) -> Result<MetadataValue<Ascii>, ClientError> {
    value
        .parse::<MetadataValue<Ascii>>()
        .map(|mut v| {
            v.set_sensitive(true);
            v
        })
        .map_err(|_| ClientError::BadToken)
}

impl BearerAuth {
    /// A bearer token; surrounding whitespace (a trailing newline in a file) is dropped.
    pub fn new(token: &str) -> Result<Self, ClientError> {
        Ok(Self {
            token: Arc::new(RwLock::new(sensitive(&format!("Bearer {}", token.trim()))?)),
            job_token: None,
        })
    }

    /// Replaces the bearer token for this value and every clone of it (token renewal).
    pub fn set_token(&self, token: &str) -> Result<(), ClientError> {
        let value = sensitive(&format!("Bearer {}", token.trim()))?;
        // A poisoned lock only means a writer panicked mid-assignment of a whole value.
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = value;
        Ok(())
    }

    /// The same bearer token (shared, renewed together) plus `x-airlock-job-token`.
    pub fn with_job_token(&self, job_token: &str) -> Result<Self, ClientError> {
        Ok(Self {
            token: Arc::clone(&self.token),
            job_token: Some(sensitive(job_token.trim())?),
        })
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let token = self
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        req.metadata_mut().insert("authorization", token);
        if let Some(job_token) = &self.job_token {
            req.metadata_mut()
                .insert(JOB_TOKEN_HEADER, job_token.clone());
        }
        Ok(req)
    }
}

/// A channel whose calls carry a bearer token.
pub type AuthedChannel = InterceptedService<Channel, BearerAuth>;

/// Connects to a controller URL (`http://host:port`, or `https://` trusting the public web
/// roots).
pub async fn connect(url: &str) -> Result<Channel, ClientError> {
    connect_with(url, &ClientTlsOptions::default()).await
}

/// Connects to a controller URL; an `https://` URL uses `tls` (the CA to trust, a client
/// certificate). TLS options with an `http://` URL are refused rather than ignored.
pub async fn connect_with(url: &str, tls: &ClientTlsOptions) -> Result<Channel, ClientError> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|source| ClientError::BadUrl {
            url: url.to_string(),
            source,
        })?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    if endpoint.uri().scheme_str() == Some("https") {
        endpoint = endpoint
            .tls_config(tls.client_config()?)
            .map_err(|source| ClientTlsError::Setup {
                url: url.to_string(),
                source,
            })?;
    } else if !tls.is_empty() {
        return Err(ClientTlsError::PlainUrl {
            url: url.to_string(),
        }
        .into());
    }
    endpoint
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            url: url.to_string(),
            hint: crate::tls::connect_hint(&source),
            source,
        })
}

/// A job-service client with a token.
pub fn job_client(
    channel: Channel,
    auth: BearerAuth,
) -> crate::v1::job_service_client::JobServiceClient<AuthedChannel> {
    crate::v1::job_service_client::JobServiceClient::with_interceptor(channel, auth)
        .max_decoding_message_size(64 << 20)
}

/// A runner-service client with a token.
pub fn runner_client(
    channel: Channel,
    auth: BearerAuth,
) -> crate::v1::runner_service_client::RunnerServiceClient<AuthedChannel> {
    crate::v1::runner_service_client::RunnerServiceClient::with_interceptor(channel, auth)
        .max_decoding_message_size(64 << 20)
}
