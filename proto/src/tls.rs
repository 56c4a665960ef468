//! TLS files and client settings: which CA an `https://` client trusts, the client
//! certificate a runner presents, and reading PEM files (a private key only if group and
//! others cannot access it, as ssh does). Errors name the file, never its contents.

use std::path::{Path, PathBuf};

use airlock_attest::KeyError;
use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The environment variable that names the CA certificate file clients trust (as `--ca-cert`).
pub const CA_CERT_ENV: &str = "AIRLOCK_CA_CERT";

/// TLS settings of a client of an `https://` controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsOptions {
    /// PEM CA certificates to trust instead of the public web roots (`--ca-cert`).
    pub ca_cert: Option<PathBuf>,
    /// A client certificate to present (runners of a controller with `runner_client_ca`).
    pub identity: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, as file paths (read when connecting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM certificate chain (`--client-cert`).
    pub cert: PathBuf,
    /// PEM private key, mode 0600 or stricter (`--client-key`).
    pub key: PathBuf,
}

/// Why a PEM file cannot be used. Never carries the file's contents.
#[derive(Debug, thiserror::Error)]
pub enum PemFileError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The path is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A private key file is accessible to group or others.
    #[error(
        "private key file {} has mode {mode:04o}, which lets group or others access it; \
         run `chmod 600 {}` (and consider the key compromised if others could read it)",
        path.display(), path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no PEM block of the expected kind.
    #[error("{} holds no PEM {expected} (a `-----BEGIN {expected}-----` block)", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was expected, e.g. `CERTIFICATE` or `PRIVATE KEY`.
        expected: &'static str,
    },
}

/// Reads a PEM file holding at least one `CERTIFICATE` block (a chain or a CA bundle).
pub fn read_certificates_pem(path: &Path) -> Result<Vec<u8>, PemFileError> {
    let pem = std::fs::read(path).map_err(|source| PemFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
        return Err(PemFileError::NotPem {
            path: path.to_owned(),
            expected: "CERTIFICATE",
        });
    }
    Ok(pem)
}

/// Reads a PEM private key file (PKCS#8, PKCS#1 or SEC1), refusing one that group or others
/// can access (the same check as the provenance signing keys: `airlock_attest`).
pub fn read_private_key_pem(path: &Path) -> Result<Vec<u8>, PemFileError> {
    let pem = airlock_attest::read_private_key_file(path).map_err(|e| match e {
        KeyError::InsecurePermissions { path, mode } => {
            PemFileError::InsecurePermissions { path, mode }
        }
        KeyError::NotAFile { path } => PemFileError::NotAFile { path },
        KeyError::Io { path, source } => PemFileError::Io { path, source },
        other => PemFileError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    if !pem.contains("PRIVATE KEY-----") {
        return Err(PemFileError::NotPem {
            path: path.to_owned(),
            expected: "PRIVATE KEY",
        });
    }
    Ok(pem.as_bytes().to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Why the TLS settings of a client cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// A file named by a flag cannot be used.
    #[error("{flag}: {source}")]
    File {
        /// The flag (and variable) that named the file.
        flag: &'static str,
        /// Why.
        #[source]
        source: PemFileError,
    },
    /// TLS files were given for a plain `http://` URL, which would ignore them.
    #[error(
        "TLS files (--ca-cert / {CA_CERT_ENV}, --client-cert) were given but the controller \
         URL `{url}` is plain http://; use its https:// URL (or drop the TLS options)"
    )]
    PlainUrl {
        /// The URL given.
        url: String,
    },
    /// tonic refused the TLS settings (e.g. a certificate that does not parse).
    #[error("cannot set up TLS for `{url}`: {source}")]
    Setup {
        /// The URL given.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

impl ClientTlsOptions {
    /// True if no TLS option is set (an `http://` URL is then fine).
    pub fn is_empty(&self) -> bool {
        self.ca_cert.is_none() && self.identity.is_none()
    }

    /// tonic's client TLS settings: only the CA from `ca_cert` if given, else the public web
    /// roots; plus the client identity.
    pub fn client_config(&self) -> Result<ClientTlsConfig, ClientTlsError> {
        let file = |flag| move |source| ClientTlsError::File { flag, source };
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_cert {
            Some(path) => config.ca_certificate(Certificate::from_pem(
                read_certificates_pem(path).map_err(file("--ca-cert / AIRLOCK_CA_CERT"))?,
            )),
            None => config.with_webpki_roots(),
        };
        if let Some(identity) = &self.identity {
            let cert = read_certificates_pem(&identity.cert).map_err(file("--client-cert"))?;
            let key = read_private_key_pem(&identity.key).map_err(file("--client-key"))?;
            config = config.identity(Identity::from_pem(cert, key));
        }
        Ok(config)
    }
}

/// What to do about a failed connection, if TLS explains it: walks `err`'s causes for a
/// rustls error.
pub fn connect_hint(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return Some(hint_for(tls));
        }
        cause = e.source();
    }
    None
}

fn hint_for(err: &rustls::Error) -> &'static str {
    use rustls::{AlertDescription as A, CertificateError as C};
    match err {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "the controller's certificate does not name this host; connect with a host name \
             (or IP address) that its certificate lists"
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the controller's certificate has expired; renew it"
        }
        rustls::Error::InvalidCertificate(_) => {
            "the controller's certificate is not signed by a CA this client trusts; pass \
             --ca-cert FILE (or set AIRLOCK_CA_CERT=FILE) naming the CA certificate that \
             signed it"
        }
        rustls::Error::AlertReceived(
            A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::DecryptError,
        ) => {
            "the controller refused this client's certificate; pass --client-cert and \
             --client-key with a certificate signed by the controller's [tls] runner_client_ca"
        }
        _ => "the TLS handshake failed; check that the URL is the controller's https:// address",
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_group_or_world_readable_key_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        let secret =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
        std::fs::write(&key, secret).unwrap();
        for bad in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(bad)).unwrap();
            let err = read_private_key_pem(&key).unwrap_err();
            assert!(
                matches!(err, PemFileError::InsecurePermissions { mode, .. } if mode == bad),
                "{bad:o}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("client.key") && msg.contains("chmod 600"),
                "{msg}"
            );
            assert!(!msg.contains("c2VjcmV0"), "{msg}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private_key_pem(&key).unwrap(), secret.as_bytes());
    }

    #[test]
    fn files_without_the_expected_pem_block_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate").unwrap();
        let err = read_certificates_pem(&file).unwrap_err();
        assert!(matches!(err, PemFileError::NotPem { .. }), "{err}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_private_key_pem(&file).unwrap_err();
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
        let err = read_certificates_pem(&dir.path().join("missing.pem")).unwrap_err();
        assert!(matches!(err, PemFileError::Io { .. }), "{err}");
        assert!(matches!(
            read_private_key_pem(dir.path()),
            Err(PemFileError::NotAFile { .. })
        ));
    }

    #[test]
    fn tls_errors_map_to_what_to_do() {
        use rustls::{AlertDescription, CertificateError};
        let unknown = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(connect_hint(&unknown).is_some_and(|h| h.contains("--ca-cert")));
        let refused = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert!(connect_hint(&refused).is_some_and(|h| h.contains("--client-cert")));
        let other = std::io::Error::other("connection refused");
        assert_eq!(connect_hint(&other), None);
    }
}
