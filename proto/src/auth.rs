//! Bearer-token client plumbing shared by the CLI and the runner.

use std::fmt;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` to every call. Debug never shows the token.
#[derive(Clone)]
pub struct BearerAuth(MetadataValue<Ascii>);

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
    /// The controller did not answer.
    #[error("cannot reach the controller at {url}: {source}")]
    Connect {
        /// The URL given.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

impl BearerAuth {
    /// A bearer token; surrounding whitespace (a trailing newline in a file) is dropped.
    pub fn new(token: &str) -> Result<Self, ClientError> {
        let value = format!("Bearer {}", token.trim());
        value
            .parse::<MetadataValue<Ascii>>()
            .map(|mut v| {
                v.set_sensitive(true);
                BearerAuth(v)
            })
            .map_err(|_| ClientError::BadToken)
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A channel whose calls carry a bearer token.
pub type AuthedChannel = InterceptedService<Channel, BearerAuth>;

/// Connects to a controller URL (`http://host:port`).
pub async fn connect(url: &str) -> Result<Channel, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|source| ClientError::BadUrl {
            url: url.to_string(),
            source,
        })?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    endpoint
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            url: url.to_string(),
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
