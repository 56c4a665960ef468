//! Uploading one blob and storing one manifest, per the distribution spec's push API: `HEAD`
//! to skip a blob the registry has, else a monolithic upload (`POST .../blobs/uploads/`
//! opens a session, one `PUT <Location>?digest=` sends the whole blob), and `PUT
//! .../manifests/<reference>` with the document's exact bytes.

use airlock_attest::Sha256Digest;

use super::client::{
    Access, BytesBody, NoBody, Payload, RegistryClient, encode, push_status_error,
};
use super::error::RegistryError;
use super::reference::RegistryRepo;
use crate::fetch::http::{HttpUrl, Method, is_loopback_host};

/// What [`put_manifest`] learnt from the registry's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredManifest {
    /// The `OCI-Subject` header: set by a registry that indexed the manifest's `subject` for
    /// the referrers API.
    pub(crate) oci_subject: Option<String>,
}

/// True if the registry already has blob `digest` in `repo`.
pub(crate) fn blob_exists(
    client: &RegistryClient,
    repo: &RegistryRepo,
    digest: &Sha256Digest,
) -> Result<bool, RegistryError> {
    let what = format!("blob {repo}@{}", digest.prefixed());
    let url = HttpUrl::parse(&format!("{}/blobs/{}", repo.base_url(), digest.prefixed()))?;
    let resp = client.send(repo, Access::Push, Method::Head, &url, &[], &mut NoBody)?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        status => Err(push_status_error(format!("HEAD {what}"), status)),
    }
}

/// Uploads blob `digest` of `size` bytes, whose body `payload` produces, in one monolithic
/// upload. The registry checks the bytes against `?digest=` too; the caller's payload makes
/// sure they are right before the last byte leaves.
pub(crate) fn upload_blob(
    client: &RegistryClient,
    repo: &RegistryRepo,
    digest: &Sha256Digest,
    payload: &mut dyn Payload,
) -> Result<(), RegistryError> {
    let what = format!("blob {repo}@{}", digest.prefixed());
    let start = HttpUrl::parse(&format!("{}/blobs/uploads/", repo.base_url()))?;
    let resp = client.send(repo, Access::Push, Method::Post, &start, &[], &mut NoBody)?;
    let status = resp.status().as_u16();
    if status != 202 {
        return Err(push_status_error(
            format!("starting the upload of {what}"),
            status,
        ));
    }
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Upload {
            what: format!("starting the upload of {what}"),
            reason: "the registry's 202 answer has no Location header".into(),
        })?;
    let url = HttpUrl::parse(&upload_url(repo, location, digest)?)?;
    let headers = [("Content-Type", "application/octet-stream")];
    let resp = client.send(repo, Access::Push, Method::Put, &url, &headers, payload)?;
    let status = resp.status().as_u16();
    if status != 201 {
        return Err(push_status_error(format!("uploading {what}"), status));
    }
    check_reported_digest(&what, &resp, digest)
}

/// Stores `bytes` (of media type `media_type`, hashing to `digest`) as manifest `reference`
/// (a tag or the digest) in `repo`, exactly as given.
pub(crate) fn put_manifest(
    client: &RegistryClient,
    repo: &RegistryRepo,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    digest: &Sha256Digest,
) -> Result<StoredManifest, RegistryError> {
    let what = format!("manifest {repo}:{reference}");
    let url = HttpUrl::parse(&format!("{}/manifests/{reference}", repo.base_url()))?;
    let headers = [("Content-Type", media_type)];
    let resp = client.send(
        repo,
        Access::Push,
        Method::Put,
        &url,
        &headers,
        &mut BytesBody(bytes),
    )?;
    let status = resp.status().as_u16();
    if status != 201 {
        return Err(push_status_error(format!("storing {what}"), status));
    }
    check_reported_digest(&what, &resp, digest)?;
    let oci_subject = resp
        .headers()
        .get("oci-subject")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(StoredManifest { oci_subject })
}

/// A `Docker-Content-Digest` answer, when given, must be the digest pushed.
fn check_reported_digest(
    what: &str,
    resp: &ureq::http::Response<ureq::Body>,
    digest: &Sha256Digest,
) -> Result<(), RegistryError> {
    let Some(reported) = resp.headers().get("docker-content-digest") else {
        return Ok(());
    };
    let reported = reported.to_str().unwrap_or("<not text>").trim();
    if Sha256Digest::parse_prefixed(reported).is_ok_and(|d| d == *digest) {
        Ok(())
    } else {
        Err(RegistryError::PushedDigest {
            what: what.to_owned(),
            expected: *digest,
            reported: reported.chars().take(100).collect(),
        })
    }
}

/// The URL that finishes an upload session: the `Location` of the `POST` answer (absolute,
/// or relative to the registry, or to the `POST` URL), keeping its own query (registries put
/// the session state there) and adding `digest=`. An absolute `Location` on another host is
/// followed only over HTTPS, or to a loopback host, as for the registry itself.
pub(crate) fn upload_url(
    repo: &RegistryRepo,
    location: &str,
    digest: &Sha256Digest,
) -> Result<String, RegistryError> {
    let bad = |reason: &str| RegistryError::Upload {
        what: format!("the upload of blob {repo}@{}", digest.prefixed()),
        reason: format!("the registry's upload Location {location:?} {reason}"),
    };
    // A fragment is never sent to a server.
    let location = location.split('#').next().unwrap_or_default().trim();
    if location.is_empty() {
        return Err(bad("is empty"));
    }
    let base = repo.base_url();
    let origin = base
        .find("/v2/")
        .map_or(base.as_str(), |i| &base[..i])
        .to_owned();
    let absolute = if location.starts_with("https://") || location.starts_with("http://") {
        let url = HttpUrl::parse(location).map_err(|_| bad("is not a valid URL"))?;
        // Plain HTTP only where the registry itself is reached so: on loopback.
        let plain_ok = is_loopback_host(url.host()) && base.starts_with("http://");
        if !url.is_https() && !plain_ok {
            return Err(bad(
                "is plain HTTP to a non-loopback host or from an HTTPS registry; refused",
            ));
        }
        location.to_owned()
    } else if location.starts_with("//") || location.contains("://") {
        return Err(bad("is not an http(s) URL or a path; refused"));
    } else if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        format!("{base}/blobs/uploads/{location}")
    };
    let separator = match absolute.find('?') {
        None => "?",
        Some(i) if i + 1 == absolute.len() || absolute.ends_with('&') => "",
        Some(_) => "&",
    };
    Ok(format!(
        "{absolute}{separator}digest={}",
        encode(&digest.prefixed())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Sha256Digest {
        Sha256Digest::of(b"blob")
    }

    fn url(repo: &str, location: &str) -> Result<String, RegistryError> {
        upload_url(&RegistryRepo::parse(repo).unwrap(), location, &digest())
    }

    #[test]
    fn locations_relative_absolute_and_with_a_query() {
        let d = format!("sha256%3A{}", digest().hex());
        assert_eq!(
            url(
                "127.0.0.1:5000/app",
                "/v2/app/blobs/uploads/1234?_state=abc"
            )
            .unwrap(),
            format!("http://127.0.0.1:5000/v2/app/blobs/uploads/1234?_state=abc&digest={d}")
        );
        assert_eq!(
            url("127.0.0.1:5000/app", "/v2/app/blobs/uploads/1234").unwrap(),
            format!("http://127.0.0.1:5000/v2/app/blobs/uploads/1234?digest={d}")
        );
        assert_eq!(
            url(
                "registry.example.com/team/app",
                "https://registry.example.com/v2/team/app/blobs/uploads/u?x=1&"
            )
            .unwrap(),
            format!("https://registry.example.com/v2/team/app/blobs/uploads/u?x=1&digest={d}")
        );
        assert_eq!(
            url("registry.example.com/app", "u-1?").unwrap(),
            format!("https://registry.example.com/v2/app/blobs/uploads/u-1?digest={d}")
        );
        assert_eq!(
            url(
                "127.0.0.1:5000/app",
                "http://127.0.0.1:5000/v2/app/blobs/uploads/9#frag"
            )
            .unwrap(),
            format!("http://127.0.0.1:5000/v2/app/blobs/uploads/9?digest={d}")
        );
        // Another HTTPS host (a storage front end) is followed; credentials are not sent
        // there (RegistryClient::send).
        assert!(
            url(
                "registry.example.com/app",
                "https://uploads.registry.example.com/s/1"
            )
            .unwrap()
            .starts_with("https://uploads.registry.example.com/s/1?digest=")
        );
    }

    #[test]
    fn unsafe_locations_are_refused() {
        for (repo, location) in [
            (
                "registry.example.com/app",
                "http://registry.example.com/v2/x",
            ),
            ("registry.example.com/app", "http://uploads.example.com/x"),
            ("registry.example.com/app", "//uploads.example.com/x"),
            ("registry.example.com/app", ""),
            ("registry.example.com/app", "ftp://registry.example.com/x"),
            ("registry.example.com/app", "http://127.0.0.1:5000/x"),
            ("127.0.0.1:5000/app", "http://10.0.0.1:5000/x"),
        ] {
            assert!(url(repo, location).is_err(), "{location}");
        }
    }
}
