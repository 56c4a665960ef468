//! A small client for the OCI distribution API: manifests and blobs by digest, tag lookups,
//! anonymous, Basic and Bearer-token authentication. Pushing builds on [`RegistryClient::send`]
//! (`upload.rs`, `push.rs`, `referrer.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use airlock_attest::Sha256Digest;

use super::auth::{Challenge, RegistryAuth, TokenResponse, parse_challenge};
use super::error::RegistryError;
use super::reference::{RegistryRepo, validate_tag};
use crate::fetch::http::{
    HttpClient, HttpUrl, Method, RequestBody, Transfer, is_loopback_host, stream_body,
};

/// Largest manifest, index or token answer accepted.
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 4 << 20;

/// Manifest media types asked for (and accepted).
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// What a request needs the login to allow. It sets the token scope asked for when a
/// challenge names none; a challenge's own scope is always used as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reading manifests and blobs.
    Pull,
    /// Uploading blobs and storing manifests.
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "pull,push",
        }
    }
}

/// A request body the client can produce again: a request answered by an authentication
/// challenge is sent a second time, with credentials.
pub(crate) trait Payload {
    /// The body for one attempt.
    fn body(&mut self) -> Result<RequestBody<'_>, RegistryError>;
}

/// No body.
#[derive(Debug)]
pub(crate) struct NoBody;

impl Payload for NoBody {
    fn body(&mut self) -> Result<RequestBody<'_>, RegistryError> {
        Ok(RequestBody::Empty)
    }
}

/// A body held in memory (manifests, small blobs).
#[derive(Debug)]
pub(crate) struct BytesBody<'a>(pub(crate) &'a [u8]);

impl Payload for BytesBody<'_> {
    fn body(&mut self) -> Result<RequestBody<'_>, RegistryError> {
        Ok(RequestBody::Bytes(self.0))
    }
}

/// A registry client. The `Authorization` header that last worked (a Bearer token, or the
/// configured Basic login) is cached per repository for the client's lifetime, so a request
/// with a large body goes out with credentials the first time instead of being refused
/// after it was streamed.
pub struct RegistryClient {
    http: HttpClient,
    auth: RegistryAuth,
    tokens: Mutex<BTreeMap<String, String>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client using `auth` for logins.
    pub fn new(http: HttpClient, auth: RegistryAuth) -> Self {
        Self {
            http,
            auth,
            tokens: Mutex::new(BTreeMap::new()),
        }
    }

    fn cached_auth(&self, repo: &RegistryRepo) -> Option<String> {
        self.tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&repo.to_string()).cloned())
    }

    /// GET with authentication; answers 401 challenges once.
    fn get(
        &self,
        repo: &RegistryRepo,
        url: &str,
        accept: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, RegistryError> {
        let url = HttpUrl::parse(url)?;
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        self.send(repo, Access::Pull, Method::Get, &url, &headers, &mut NoBody)
    }

    /// Sends `method` to `url` (within `repo`'s registry) with `headers` and the body of
    /// `payload`, authenticating as the registry asks: a 401 challenge (Basic, or Bearer with
    /// a token fetched for the challenge's scope, else for `access` on `repo`) is answered
    /// once, with a fresh body. Credentials only go to `repo`'s own registry: a URL on another
    /// host (an upload `Location` may name one) is sent without them. Returns the response
    /// whatever its other status.
    pub(crate) fn send(
        &self,
        repo: &RegistryRepo,
        access: Access,
        method: Method,
        url: &HttpUrl,
        headers: &[(&str, &str)],
        payload: &mut dyn Payload,
    ) -> Result<ureq::http::Response<ureq::Body>, RegistryError> {
        let own_registry = url.authority().eq_ignore_ascii_case(&repo.registry);
        let mut auth_header = own_registry.then(|| self.cached_auth(repo)).flatten();
        for attempt in 0..2 {
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if let Some(h) = &auth_header {
                all.push(("Authorization", h));
            }
            let resp = self.http.send(method, url, &all, payload.body()?)?;
            if resp.status().as_u16() != 401 {
                return Ok(resp);
            }
            if attempt == 1 || !own_registry {
                break;
            }
            let challenge = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(parse_challenge);
            let header = match challenge {
                Some(Challenge::Basic) => self.basic(repo)?,
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let token =
                        self.token(repo, access, &realm, service.as_deref(), scope.as_deref())?;
                    format!("Bearer {token}")
                }
                None => break,
            };
            if let Ok(mut t) = self.tokens.lock() {
                t.insert(repo.to_string(), header.clone());
            }
            auth_header = Some(header);
        }
        Err(RegistryError::Unauthorized {
            registry: repo.registry.clone(),
        })
    }

    fn basic(&self, repo: &RegistryRepo) -> Result<String, RegistryError> {
        if !is_loopback_host(repo.host()) && !repo.base_url().starts_with("https://") {
            return Err(RegistryError::Auth {
                registry: repo.registry.clone(),
                reason: "refusing to send credentials over plain HTTP".into(),
            });
        }
        self.auth
            .for_registry(&repo.registry)
            .map(|c| c.header().to_owned())
            .ok_or_else(|| RegistryError::Unauthorized {
                registry: repo.registry.clone(),
            })
    }

    /// Fetches a Bearer token from `realm` (with the configured login, if any).
    fn token(
        &self,
        repo: &RegistryRepo,
        access: Access,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, RegistryError> {
        let auth_err = |reason: String| RegistryError::Auth {
            registry: repo.registry.clone(),
            reason,
        };
        let realm_url = HttpUrl::parse(realm)
            .map_err(|_| auth_err("the token realm is not an http(s) URL".into()))?;
        if !realm_url.is_https() && !is_loopback_host(realm_url.host()) {
            return Err(auth_err(
                "the token realm is plain HTTP on a remote host; refused".into(),
            ));
        }
        let scope = scope
            .map(str::to_owned)
            .unwrap_or_else(|| format!("repository:{}:{}", repo.repository, access.actions()));
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", encode(s)));
        }
        query.push(format!("scope={}", encode(&scope)));
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = HttpUrl::parse(&format!("{realm}{sep}{}", query.join("&")))?;
        let creds = self.auth.for_registry(&repo.registry);
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(c) = creds {
            headers.push(("Authorization", c.header()));
        }
        let resp = self.http.get(&url, &headers)?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(RegistryError::Unauthorized {
                registry: repo.registry.clone(),
            });
        }
        if status != 200 {
            return Err(auth_err(format!(
                "the token endpoint answered HTTP {status}"
            )));
        }
        let mut body = Vec::new();
        stream_body(
            &url,
            resp.into_body(),
            &mut body,
            MAX_DOCUMENT_BYTES,
            &mut |_| {},
        )?;
        let answer: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| auth_err("the token endpoint's answer is not JSON".into()))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| auth_err("the token endpoint's answer has no token".into()))
    }

    /// Fetches the manifest (or index) named by `reference` (a tag or `sha256:<hex>`).
    /// Returns its bytes and media type. Digests are NOT checked here: callers hash.
    pub fn manifest(
        &self,
        repo: &RegistryRepo,
        reference: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let what = format!("manifest {repo}@{reference}");
        let url = format!("{}/manifests/{reference}", repo.base_url());
        let resp = self.get(repo, &url, Some(MANIFEST_ACCEPT))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(status_error(what, status));
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .unwrap_or_default();
        let mut body = Vec::new();
        stream_body(
            &HttpUrl::parse(&url)?,
            resp.into_body(),
            &mut body,
            MAX_DOCUMENT_BYTES,
            &mut |_| {},
        )?;
        Ok((body, media_type))
    }

    /// The referrers API's answer for `subject` (`GET /v2/<name>/referrers/<digest>`, asking
    /// the registry to filter by `artifact_type`): the image index's bytes, or `None` when the
    /// registry has no referrers API (it answers 404, or 400/405 as some older ones do), in
    /// which case the referrers tag schema applies. The bytes are untrusted: callers parse.
    pub(crate) fn referrers(
        &self,
        repo: &RegistryRepo,
        subject: &Sha256Digest,
        artifact_type: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = format!(
            "{}/referrers/{}?artifactType={}",
            repo.base_url(),
            subject.prefixed(),
            encode(artifact_type)
        );
        let resp = self.get(repo, &url, Some("application/vnd.oci.image.index.v1+json"))?;
        let status = resp.status().as_u16();
        if matches!(status, 400 | 404 | 405) {
            return Ok(None);
        }
        if status != 200 {
            return Err(status_error(
                format!("referrers of {repo}@{}", subject.prefixed()),
                status,
            ));
        }
        let mut body = Vec::new();
        stream_body(
            &HttpUrl::parse(&url)?,
            resp.into_body(),
            &mut body,
            MAX_DOCUMENT_BYTES,
            &mut |_| {},
        )?;
        Ok(Some(body))
    }

    /// Streams blob `digest` into `sink` (at most `size` bytes), reporting progress.
    pub fn blob(
        &self,
        repo: &RegistryRepo,
        digest: &Sha256Digest,
        size: u64,
        sink: &mut dyn Write,
        progress: &mut dyn FnMut(Transfer),
    ) -> Result<u64, RegistryError> {
        let url = format!("{}/blobs/{}", repo.base_url(), digest.prefixed());
        let resp = self.get(repo, &url, None)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(status_error(
                format!("blob {repo}@{}", digest.prefixed()),
                status,
            ));
        }
        Ok(stream_body(
            &HttpUrl::parse(&url)?,
            resp.into_body(),
            sink,
            size,
            progress,
        )?)
    }

    /// Resolves `tag` to the digest of the manifest (or index) it names now, by hashing the
    /// bytes served (the `Docker-Content-Digest` header is not trusted).
    pub fn resolve_tag(
        &self,
        repo: &RegistryRepo,
        tag: &str,
    ) -> Result<Sha256Digest, RegistryError> {
        validate_tag(repo, tag)?;
        let (bytes, _) = self.manifest(repo, tag)?;
        Ok(Sha256Digest::of(&bytes))
    }
}

/// An unexpected status of a pull request, with a hint for the common ones.
pub(crate) fn status_error(what: String, status: u16) -> RegistryError {
    let hint = match status {
        404 => "; check the image name and digest",
        403 => "; the configured login may not pull this repository",
        429 => "; the registry is rate-limiting this runner",
        _ => "",
    };
    RegistryError::Status { what, status, hint }
}

/// An unexpected status of a push request, with a hint for the common ones.
pub(crate) fn push_status_error(what: String, status: u16) -> RegistryError {
    let hint = match status {
        403 => "; the configured login may not push to this repository",
        404 | 405 => "; the registry does not accept pushes to this repository",
        413 => "; the registry refuses a body this large",
        429 => "; the registry is rate-limiting this client",
        _ => "",
    };
    RegistryError::Status { what, status, hint }
}

/// Percent-encodes a query parameter value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
