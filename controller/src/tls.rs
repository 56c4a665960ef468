//! Transport security of the controller's one listener (`[tls]`): rustls on ring terminates
//! TLS for gRPC and the HTTP routes alike, and runner calls may be required to present a
//! client certificate.
//!
//! TLS is terminated here rather than by tonic's `Server::tls_config`: tonic's acceptor offers
//! only `h2` by ALPN, and rustls then ends the handshake of any client that offers only
//! `http/1.1` (curl --http1.1, Python's urllib, cloud providers fetching the JWKS) with a
//! `no_application_protocol` alert. This acceptor offers `h2` and `http/1.1`; hyper tells
//! them apart by the connection preface. tonic serves the TLS streams themselves, so
//! [`tonic::Request::peer_certs`] still reports the client's certificates.
//!
//! Client certificates are optional in the handshake (job clients have none), but one that is
//! presented must chain to `runner_client_ca`; [`RunnerCertCheck`] then requires one on every
//! runner call.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use airlock_proto::tls::{PemFileError, read_certificates_pem, read_private_key_pem};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::config::{ControllerConfig, TlsConfig};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at most; beyond this, new connections wait in the listen backlog.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Why `[tls]` cannot be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file named in `[tls]` cannot be read, is not PEM, or (the key) is group/world
    /// accessible.
    #[error("field `{field}`: {source}")]
    File {
        /// `tls.cert`, `tls.key` or `tls.runner_client_ca`.
        field: &'static str,
        /// Why.
        #[source]
        source: PemFileError,
    },
    /// A certificate file holds a block that does not parse, or no usable certificate.
    #[error("field `{field}`: {}: {message}", path.display())]
    BadCertificate {
        /// `tls.cert` or `tls.runner_client_ca`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key file does not hold a private key rustls can use.
    #[error(
        "field `tls.key`: {} is not a PEM private key that can be used (PKCS#8, PKCS#1 or \
         SEC1; RSA, ECDSA or Ed25519)",
        path.display()
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
    /// rustls refused the certificate and key together (e.g. they do not match).
    #[error(
        "field `tls.cert`/`tls.key`: cannot serve {} with {}: {message}",
        cert.display(), key.display()
    )]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        message: String,
    },
}

/// The loaded `[tls]` section: the TLS acceptor and who must sign runner certificates.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    runner_client_ca: Option<Arc<str>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("runner_client_ca", &self.runner_client_ca)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the certificate chain, the private key (refused if group or others can access
    /// it) and the runner client CA, and builds the rustls server configuration.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let certs = load_certificates("tls.cert", &config.cert)?;
        let key_pem = read_private_key_pem(&config.key).map_err(|source| TlsError::File {
            field: "tls.key",
            source,
        })?;
        // The parser's error is not shown: it could quote part of the key.
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::BadKey {
            path: config.key.clone(),
        })?;
        let rustls_err = |e: tokio_rustls::rustls::Error| TlsError::Config {
            cert: config.cert.clone(),
            key: config.key.clone(),
            message: e.to_string(),
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?;
        let builder = match &config.runner_client_ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                let (added, _) = roots
                    .add_parsable_certificates(load_certificates("tls.runner_client_ca", path)?);
                if added == 0 {
                    return Err(TlsError::BadCertificate {
                        field: "tls.runner_client_ca",
                        path: path.clone(),
                        message: "holds no CA certificate that can be used".into(),
                    });
                }
                // Optional in the handshake (job clients have no certificate); a certificate
                // that is presented must chain to this CA, else the handshake fails.
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError::BadCertificate {
                        field: "tls.runner_client_ca",
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_single_cert(certs, key).map_err(rustls_err)?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let runner_client_ca = config.runner_client_ca.as_deref().map(file_name);
        tracing::info!(
            cert = %config.cert.display(),
            runner_client_ca = runner_client_ca.as_deref().unwrap_or("none"),
            "TLS enabled"
        );
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            runner_client_ca,
        })
    }

    /// The TLS connections of `listener`: handshakes run concurrently (a slow client does not
    /// hold up others) and time out; failed ones are logged and skipped.
    pub fn incoming(&self, listener: TcpListener) -> TlsIncoming {
        TlsIncoming {
            listener,
            acceptor: self.acceptor.clone(),
            handshakes: JoinSet::new(),
        }
    }

    /// The check for runner calls: a client certificate if `runner_client_ca` is set.
    pub fn runner_check(&self) -> RunnerCertCheck {
        RunnerCertCheck {
            ca: self.runner_client_ca.clone(),
        }
    }
}

/// The file name of `path` (enough for an operator; the server's layout stays private).
fn file_name(path: &Path) -> Arc<str> {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into()
}

/// The certificates in PEM file `path`; `field` names it in errors.
fn load_certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_certificates_pem(path).map_err(|source| TlsError::File { field, source })?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            field,
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Logs [`transport_warnings`] at start-up (they do not stop the controller).
pub fn warn_about_transport(config: &ControllerConfig) {
    for warning in transport_warnings(config) {
        tracing::warn!("{warning}");
    }
}

/// Transport settings that work but expose secrets or mislead verifiers: `[tls]` with an
/// http:// issuer, and a non-loopback listen address without `[tls]`.
pub fn transport_warnings(config: &ControllerConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.tls.is_some() && config.issuer().starts_with("http://") {
        warnings.push(format!(
            "[tls] is set but `issuer` is {}; make it the https:// URL clients use (it starts \
             builder ids, and cloud providers accept only https OIDC issuers)",
            config.issuer()
        ));
    }
    if config.tls.is_none() && !config.listen.ip().is_loopback() {
        warnings.push(format!(
            "listening on {} without [tls]: tokens, sources and logs cross the network in \
             plain text; add [tls] (see docs/operations.md) or keep a TLS-terminating proxy \
             in front",
            config.listen
        ));
    }
    warnings
}

/// Requires a verified client certificate on runner calls when `runner_client_ca` is set
/// (the handshake already checked that any presented certificate chains to it); lets every
/// call through otherwise.
#[derive(Debug, Clone, Default)]
pub struct RunnerCertCheck {
    ca: Option<Arc<str>>,
}

impl RunnerCertCheck {
    /// The check for `tls` (`None`: plain HTTP/2, nothing to check).
    pub fn new(tls: Option<&ServerTls>) -> Self {
        tls.map(ServerTls::runner_check).unwrap_or_default()
    }
}

impl Interceptor for RunnerCertCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(ca) = &self.ca else {
            return Ok(req);
        };
        if req.peer_certs().is_some_and(|certs| !certs.is_empty()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(format!(
                "this controller requires a runner client certificate signed by {ca}; start \
                 the runner with --client-cert and --client-key"
            )))
        }
    }
}

/// Accepted TLS connections (see [`ServerTls::incoming`]). Dropping it closes the listener
/// and abandons handshakes in progress.
pub struct TlsIncoming {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<TlsStream<TcpStream>>>,
}

impl std::fmt::Debug for TlsIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIncoming")
            .field("listener", &self.listener)
            .field("handshakes", &self.handshakes.len())
            .finish_non_exhaustive()
    }
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while this.handshakes.len() < MAX_PENDING_HANDSHAKES {
            match this.listener.poll_accept(cx) {
                Poll::Ready(Ok((stream, peer))) => {
                    let acceptor = this.acceptor.clone();
                    this.handshakes
                        .spawn(async move { handshake(acceptor, stream, peer).await });
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => break,
            }
        }
        loop {
            match this.handshakes.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Some(stream)))) => return Poll::Ready(Some(Ok(stream))),
                // A failed handshake (logged) or a panicked task: not the listener's problem.
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Sets TCP_NODELAY (see `server::no_delay`) and completes the handshake of one connection.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        return None;
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_transport_settings_are_warned_about() {
        let mut config = ControllerConfig::local("/tmp/s", "/tmp/k.key", "a", "r");
        assert!(transport_warnings(&config).is_empty(), "loopback, no TLS");
        config.listen = "0.0.0.0:7070".parse().unwrap();
        let warnings = transport_warnings(&config);
        assert!(
            warnings.len() == 1 && warnings[0].contains("0.0.0.0:7070 without [tls]"),
            "{warnings:?}"
        );
        config.tls = Some(TlsConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            runner_client_ca: None,
        });
        assert!(transport_warnings(&config).is_empty(), "TLS, https issuer");
        config.issuer = "http://ci.example".into();
        let warnings = transport_warnings(&config);
        assert!(
            warnings.len() == 1 && warnings[0].contains("`issuer` is http://ci.example"),
            "{warnings:?}"
        );
    }
}
