//! The runner's HTTP client for registries and declared downloads, with progress; also the
//! client side of `airlock push` (HEAD, POST and PUT with a body).
//!
//! Built on `ureq` (blocking, rustls with webpki roots, no transparent decompression: the
//! bytes hashed are the bytes served). Callers run it on blocking threads. Response bodies
//! are streamed into a writer, never buffered whole, and capped; request bodies are streamed
//! from a reader with a declared length, never chunked.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use ureq::http::Uri;

/// How often a transfer reports progress at most.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(1);

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
    /// The request failed before a response arrived (for a request with a body, also: the
    /// body's reader failed, or ended before its declared length).
    #[error("{method} {url}: {source}")]
    Request {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The client's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered with an unexpected status.
    #[error("{method} {url}: HTTP {status}")]
    Status {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body was larger than allowed.
    #[error("{method} {url}: the response is larger than {limit} bytes")]
    TooLarge {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Reading the body or writing it out failed.
    #[error("{method} {url}: {source}")]
    Body {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// The HTTP methods airlock sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: downloads, manifests, tokens.
    Get,
    /// `HEAD`: does the registry have this blob?
    Head,
    /// `POST`: start a blob upload.
    Post,
    /// `PUT`: finish a blob upload, store a manifest.
    Put,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request sends. Every body has a known length, sent as `Content-Length`: registries
/// need it for monolithic uploads, and a declared length makes a reader that ends early an
/// error instead of a truncated upload.
pub enum RequestBody<'a> {
    /// No body (`Content-Length: 0` on POST and PUT, no header on GET and HEAD).
    Empty,
    /// These bytes.
    Bytes(&'a [u8]),
    /// The first `length` bytes of `reader`; the request fails if it ends sooner.
    Reader {
        /// The source of the body.
        reader: &'a mut dyn Read,
        /// How many bytes it must yield.
        length: u64,
    },
}

impl fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Self::Reader { length, .. } => write!(f, "Reader({length} bytes)"),
        }
    }
}

impl RequestBody<'_> {
    fn length(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Bytes(b) => b.len() as u64,
            Self::Reader { length, .. } => *length,
        }
    }
}

/// Passes at most `remaining` bytes of `inner` through and fails if it ends sooner: ureq
/// sends what the reader yields up to the declared `Content-Length`, so a short source would
/// otherwise leave a truncated upload, and bytes past the length are never read.
struct ExactLength<'a> {
    inner: &'a mut dyn Read,
    remaining: u64,
}

impl Read for ExactLength<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let cap = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..cap])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the request body ended {} bytes before its declared length",
                    self.remaining
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A progress report of one transfer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// Bytes received (or, for an upload, sent) so far.
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

    /// `HOST[:PORT]` as written in the URL.
    pub fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
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

    fn agent(&self, url: &HttpUrl) -> &ureq::Agent {
        if is_loopback_host(url.host()) {
            &self.loopback
        } else {
            &self.remote
        }
    }

    /// Sends a GET with `headers`; returns the response whatever its status.
    pub fn get(
        &self,
        url: &HttpUrl,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        self.send(Method::Get, url, headers, RequestBody::Empty)
    }

    /// Sends a HEAD with `headers`; returns the response (without a body) whatever its status.
    pub fn head(
        &self,
        url: &HttpUrl,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        self.send(Method::Head, url, headers, RequestBody::Empty)
    }

    /// Sends a POST of `body` (give its `Content-Type` in `headers`); returns the response
    /// whatever its status.
    pub fn post(
        &self,
        url: &HttpUrl,
        headers: &[(&str, &str)],
        body: RequestBody<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        self.send(Method::Post, url, headers, body)
    }

    /// Sends a PUT of `body` (give its `Content-Type` in `headers`); returns the response
    /// whatever its status.
    pub fn put(
        &self,
        url: &HttpUrl,
        headers: &[(&str, &str)],
        body: RequestBody<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        self.send(Method::Put, url, headers, body)
    }

    /// Sends `method` to `url` with `headers` and `body` (its length as `Content-Length`;
    /// a body on GET or HEAD is ignored); returns the response whatever its status. Loopback
    /// hosts are reached without a proxy, as for GET.
    pub fn send(
        &self,
        method: Method,
        url: &HttpUrl,
        headers: &[(&str, &str)],
        body: RequestBody<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        let agent = self.agent(url);
        let uri = url.uri.clone();
        let request_err = |source| HttpError::Request {
            method,
            url: url.as_str().to_owned(),
            source: Box::new(source),
        };
        let without_body = match method {
            Method::Get => Some(agent.get(uri.clone())),
            Method::Head => Some(agent.head(uri.clone())),
            Method::Post | Method::Put => None,
        };
        if let Some(mut req) = without_body {
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            return req.call().map_err(request_err);
        }
        let mut req = match method {
            Method::Post => agent.post(uri),
            _ => agent.put(uri),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = req.header("Content-Length", body.length().to_string());
        match body {
            RequestBody::Empty => req.send(&[][..]),
            RequestBody::Bytes(bytes) => req.send(bytes),
            RequestBody::Reader { reader, length } => {
                let mut exact = ExactLength {
                    inner: reader,
                    remaining: length,
                };
                req.send(ureq::SendBody::from_reader(&mut exact))
            }
        }
        .map_err(request_err)
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
                method: Method::Get,
                url: url.as_str().to_owned(),
                status,
            });
        }
        stream_body(url, resp.into_body(), sink, limit, progress)
    }
}

/// Streams a GET response's `body` into `sink` with a size cap and progress.
pub fn stream_body(
    url: &HttpUrl,
    body: ureq::Body,
    sink: &mut dyn Write,
    limit: u64,
    progress: &mut dyn FnMut(Transfer),
) -> Result<u64, HttpError> {
    let total = body.content_length();
    let too_large = || HttpError::TooLarge {
        method: Method::Get,
        url: url.as_str().to_owned(),
        limit,
    };
    if total.is_some_and(|t| t > limit) {
        return Err(too_large());
    }
    let body_err = |source| HttpError::Body {
        method: Method::Get,
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

    /// A one-request loopback server: answers `status` with `headers`, hands back the raw
    /// request (head and body as far as its Content-Length).
    fn serve_once(status: &str, headers: &str) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n");
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut request = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    return request;
                }
                request.extend_from_slice(line.as_bytes());
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            // A client that gives up mid-body leaves a short read: keep what came. (No read at
            // all for an empty body: BufReader would block filling its buffer.)
            let mut got = 0;
            while got < length {
                match reader.read(&mut body[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            request.extend_from_slice(&body[..got]);
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes());
            request
        });
        (format!("http://{addr}"), handle)
    }

    #[test]
    fn put_sends_the_reader_with_its_length_and_type() {
        let (base, server) = serve_once("201 Created", "Location: /done\r\n");
        let url = HttpUrl::parse(&format!("{base}/v2/app/blobs/uploads/1?digest=x")).unwrap();
        let mut body: &[u8] = b"hello blob";
        let resp = HttpClient::new()
            .put(
                &url,
                &[("Content-Type", "application/octet-stream")],
                RequestBody::Reader {
                    reader: &mut body,
                    length: 10,
                },
            )
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        assert_eq!(resp.headers()["location"], "/done");
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        let lower = request.to_ascii_lowercase();
        assert!(request.starts_with("PUT /v2/app/blobs/uploads/1?digest=x HTTP/1.1\r\n"));
        assert!(lower.contains("content-length: 10\r\n"), "{request}");
        assert!(lower.contains("content-type: application/octet-stream\r\n"));
        assert!(!lower.contains("transfer-encoding"), "{request}");
        assert!(request.ends_with("\r\n\r\nhello blob"), "{request}");
    }

    #[test]
    fn post_and_head_send_no_body_and_errors_name_method_and_url() {
        let (base, server) = serve_once("202 Accepted", "");
        let url = HttpUrl::parse(&format!("{base}/v2/app/blobs/uploads/")).unwrap();
        let resp = HttpClient::new()
            .post(&url, &[], RequestBody::Empty)
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(request.starts_with("POST /v2/app/blobs/uploads/ HTTP/1.1\r\n"));
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-length: 0\r\n")
        );

        let (base, server) = serve_once("404 Not Found", "");
        let url = HttpUrl::parse(&format!("{base}/v2/app/blobs/sha256:00")).unwrap();
        let resp = HttpClient::new().head(&url, &[]).unwrap();
        assert_eq!(resp.status().as_u16(), 404);
        assert!(
            String::from_utf8(server.join().unwrap())
                .unwrap()
                .starts_with("HEAD ")
        );

        // A reader shorter than its declared length fails the request, naming the method and
        // URL but no header value.
        let (base, _server) = serve_once("201 Created", "");
        let url = HttpUrl::parse(&format!("{base}/up")).unwrap();
        let mut short: &[u8] = b"abc";
        let e = HttpClient::new()
            .put(
                &url,
                &[("Authorization", "Bearer s3cret-token")],
                RequestBody::Reader {
                    reader: &mut short,
                    length: 10,
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("PUT {base}/up: ")), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
