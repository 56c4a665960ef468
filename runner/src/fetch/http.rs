//! The runner's HTTP client for registries and declared downloads, with progress.
//!
//! Built on `ureq` (blocking, rustls with webpki roots, no transparent decompression: the
//! bytes hashed are the bytes served). Callers run it on blocking threads. Response bodies
//! are streamed into a writer, never buffered whole, and capped.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use ureq::http::Uri;

/// How often a transfer reports progress at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Read buffer for response bodies.
const BUFFER: usize = 256 * 1024;

/// Why an HTTP transfer failed. Messages name the URL (which never holds credentials:
/// URLs with a user-info part are refused) but never a header value.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an absolute http(s) URL airlock accepts.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// The request failed before a response arrived.
    #[error("GET {url}: {source}")]
    Request {
        /// The URL.
        url: String,
        /// The client's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered with an unexpected status.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body was larger than allowed.
    #[error("GET {url}: the response is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Reading the body or writing it out failed.
    #[error("GET {url}: {source}")]
    Body {
        /// The URL.
        url: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A progress report of one transfer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// Bytes received so far.
    pub done: u64,
    /// Expected total, if known.
    pub total: Option<u64>,
    /// Time since the transfer started.
    pub elapsed: Duration,
    /// True for the last report of a completed transfer.
    pub finished: bool,
}

impl Transfer {
    /// Bytes per second so far.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }

    /// "12.0 MiB / 380.1 MiB, 45.3 MiB/s" for logs.
    pub fn describe(&self) -> String {
        let mib = |b: f64| b / 1_048_576.0;
        match self.total {
            Some(total) => format!(
                "{:.1} MiB / {:.1} MiB, {:.1} MiB/s",
                mib(self.done as f64),
                mib(total as f64),
                mib(self.rate())
            ),
            None => format!(
                "{:.1} MiB, {:.1} MiB/s",
                mib(self.done as f64),
                mib(self.rate())
            ),
        }
    }
}

/// A parsed absolute http(s) URL.
#[derive(Debug, Clone)]
pub struct HttpUrl {
    uri: Uri,
    text: String,
}

impl HttpUrl {
    /// Parses `url`; refuses anything but `http`/`https` with a host and without user info.
    pub fn parse(url: &str) -> Result<Self, HttpError> {
        let bad = |reason: &str| HttpError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(bad("only http:// and https:// URLs are fetched")),
        }
        let authority = uri.authority().ok_or_else(|| bad("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in URLs are refused; they would be recorded in provenance",
            ));
        }
        Ok(Self {
            uri,
            text: url.to_owned(),
        })
    }

    /// The host (without port).
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or_default()
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for `https`.
    pub fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }
}

/// True for hosts that name this machine: `localhost`, `127.0.0.0/8`, `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// A blocking HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    remote: ureq::Agent,
    loopback: ureq::Agent,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with airlock's settings: statuses are answers, not errors; at most 5
    /// redirects, which never carry an `Authorization` header; proxies from the
    /// environment for remote hosts, none for loopback.
    pub fn new() -> Self {
        let build = |proxy: bool| {
            let mut cfg = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(5)
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_recv_response(Some(Duration::from_secs(120)))
                .timeout_recv_body(None)
                // A stalled transfer fails instead of holding the job until its timeout.
                .timeout_per_read(Some(Duration::from_secs(60)))
                .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")));
            if !proxy {
                cfg = cfg.proxy(None);
            }
            cfg.build().new_agent()
        };
        Self {
            remote: build(true),
            loopback: build(false),
        }
    }

    /// Sends a GET with `headers`; returns the response whatever its status.
    pub fn get(
        &self,
        url: &HttpUrl,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        let agent = if is_loopback_host(url.host()) {
            &self.loopback
        } else {
            &self.remote
        };
        let mut req = agent.get(url.uri.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.call().map_err(|source| HttpError::Request {
            url: url.as_str().to_owned(),
            source: Box::new(source),
        })
    }

    /// GETs `url` and streams a 200 body into `sink`, at most `limit` bytes, reporting
    /// progress at most once a second and once at the end. Returns the byte count.
    pub fn download(
        &self,
        url: &HttpUrl,
        headers: &[(&str, &str)],
        sink: &mut dyn Write,
        limit: u64,
        progress: &mut dyn FnMut(Transfer),
    ) -> Result<u64, HttpError> {
        let resp = self.get(url, headers)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(HttpError::Status {
                url: url.as_str().to_owned(),
                status,
            });
        }
        stream_body(url, resp.into_body(), sink, limit, progress)
    }
}

/// Streams `body` into `sink` with a size cap and progress.
pub fn stream_body(
    url: &HttpUrl,
    body: ureq::Body,
    sink: &mut dyn Write,
    limit: u64,
    progress: &mut dyn FnMut(Transfer),
) -> Result<u64, HttpError> {
    let total = body.content_length();
    let too_large = || HttpError::TooLarge {
        url: url.as_str().to_owned(),
        limit,
    };
    if total.is_some_and(|t| t > limit) {
        return Err(too_large());
    }
    let body_err = |source| HttpError::Body {
        url: url.as_str().to_owned(),
        source,
    };
    let mut reader = body.into_with_config().limit(u64::MAX).reader();
    let started = Instant::now();
    let mut last = started;
    let mut done = 0u64;
    let mut buf = vec![0u8; BUFFER];
    progress(Transfer {
        done,
        total,
        elapsed: Duration::ZERO,
        finished: false,
    });
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(body_err(e)),
        };
        done += n as u64;
        if done > limit {
            return Err(too_large());
        }
        sink.write_all(&buf[..n]).map_err(body_err)?;
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            progress(Transfer {
                done,
                total,
                elapsed: started.elapsed(),
                finished: false,
            });
        }
    }
    sink.flush().map_err(body_err)?;
    progress(Transfer {
        done,
        total,
        elapsed: started.elapsed(),
        finished: true,
    });
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_loopback() {
        assert!(HttpUrl::parse("https://example.org/a.tar.gz").is_ok());
        assert!(HttpUrl::parse("http://127.0.0.1:8080/x").is_ok());
        assert!(HttpUrl::parse("ftp://example.org/x").is_err());
        assert!(HttpUrl::parse("https://user:pw@example.org/x").is_err());
        assert!(HttpUrl::parse("/relative").is_err());
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("10.0.0.1"));
        assert!(!is_loopback_host("example.org"));
    }
}
