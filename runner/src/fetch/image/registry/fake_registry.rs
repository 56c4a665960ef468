//! A small in-process registry for the push tests: Bearer-token auth whose challenge names
//! the push scope, upload sessions with a relative `Location` that carries a query, digest
//! checks of every upload, blobs served by digest, and no referrers API (no `OCI-Subject`),
//! like Debian's `docker-registry` 2.8, unless the test turns [`Stored::referrers_api`] on.
//! One request per connection (`Connection: close`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use airlock_attest::Sha256Digest;

/// What the fake registry holds, for the test to inspect.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// Blobs by `sha256:<hex>`.
    pub(crate) blobs: BTreeMap<String, Vec<u8>>,
    /// Manifests by reference (tag or digest), with their content type.
    pub(crate) manifests: BTreeMap<String, (String, Vec<u8>)>,
    /// Every request line, in order (`PUT /v2/...`).
    pub(crate) requests: Vec<String>,
    /// The scopes tokens were asked for.
    pub(crate) scopes: Vec<String>,
    /// Serve the OCI referrers API (`GET /v2/app/referrers/<digest>`) and answer a manifest
    /// `PUT` with a subject with `OCI-Subject`, like a registry that indexes subjects.
    pub(crate) referrers_api: bool,
}

/// The referrers list of `subject`: every stored manifest (by digest) naming it.
fn referrers_index(st: &Stored, subject: &str) -> Vec<u8> {
    let list: Vec<serde_json::Value> = st
        .manifests
        .iter()
        .filter(|(reference, _)| reference.starts_with("sha256:"))
        .filter_map(|(reference, (media_type, bytes))| {
            let m: serde_json::Value = serde_json::from_slice(bytes).ok()?;
            (m["subject"]["digest"] == subject).then(|| {
                serde_json::json!({
                    "mediaType": media_type,
                    "digest": reference,
                    "size": bytes.len(),
                    "artifactType": m["artifactType"],
                })
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": list,
    }))
    .unwrap_or_default()
}

const TOKEN: &str = "push-token";

/// Starts the registry for repository `app`; returns `127.0.0.1:PORT` and its state.
pub(crate) fn start() -> (String, Arc<Mutex<Stored>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let stored = Arc::new(Mutex::new(Stored::default()));
    let state = Arc::clone(&stored);
    let realm = format!("http://{addr}/token");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = handle(stream, &state, &realm);
        }
    });
    (addr, stored)
}

fn respond(
    stream: &mut std::net::TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    target.split_once('?')?.1.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })
}

fn handle(
    mut stream: std::net::TcpStream,
    state: &Arc<Mutex<Stored>>,
    realm: &str,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if length > 0 {
        reader.read_exact(&mut body)?;
    }
    let mut st = state.lock().expect("lock");
    st.requests.push(format!("{method} {target}"));

    let path = target.split('?').next().unwrap_or_default().to_owned();
    if path == "/token" {
        let scope = query_param(&target, "scope").unwrap_or_default().to_owned();
        st.scopes.push(scope);
        return respond(
            &mut stream,
            "200 OK",
            &[],
            format!("{{\"token\":\"{TOKEN}\"}}").as_bytes(),
        );
    }
    if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
        let challenge =
            format!("Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:app:pull,push\"");
        return respond(
            &mut stream,
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            b"",
        );
    }
    let not_found = |s: &mut std::net::TcpStream| respond(s, "404 Not Found", &[], b"");
    if let Some(digest) = path.strip_prefix("/v2/app/referrers/")
        && method == "GET"
        && st.referrers_api
    {
        let index = referrers_index(&st, digest);
        let content_type = "application/vnd.oci.image.index.v1+json".to_owned();
        return respond(
            &mut stream,
            "200 OK",
            &[("Content-Type", content_type)],
            &index,
        );
    }
    if let Some(digest) = path.strip_prefix("/v2/app/blobs/")
        && method == "GET"
    {
        return match st.blobs.get(digest) {
            Some(b) => {
                let b = b.clone();
                respond(&mut stream, "200 OK", &[], &b)
            }
            None => not_found(&mut stream),
        };
    }
    if let Some(digest) = path.strip_prefix("/v2/app/blobs/")
        && method == "HEAD"
    {
        return match st.blobs.get(digest) {
            Some(_) => respond(
                &mut stream,
                "200 OK",
                &[("Docker-Content-Digest", digest.to_owned())],
                b"",
            ),
            None => not_found(&mut stream),
        };
    }
    if method == "POST" && path == "/v2/app/blobs/uploads/" {
        return respond(
            &mut stream,
            "202 Accepted",
            &[(
                "Location",
                "/v2/app/blobs/uploads/u1?_state=s%3D".to_owned(),
            )],
            b"",
        );
    }
    if method == "PUT" && path == "/v2/app/blobs/uploads/u1" {
        let state_ok = query_param(&target, "_state") == Some("s%3D");
        let digest = query_param(&target, "digest")
            .unwrap_or_default()
            .replace("%3A", ":");
        if !state_ok || Sha256Digest::of(&body).prefixed() != digest {
            return respond(&mut stream, "400 Bad Request", &[], b"digest invalid");
        }
        st.blobs.insert(digest.clone(), body);
        return respond(
            &mut stream,
            "201 Created",
            &[("Docker-Content-Digest", digest)],
            b"",
        );
    }
    if let Some(reference) = path.strip_prefix("/v2/app/manifests/") {
        if method == "PUT" {
            let digest = Sha256Digest::of(&body).prefixed();
            let content_type = headers.get("content-type").cloned().unwrap_or_default();
            st.manifests
                .insert(reference.to_owned(), (content_type.clone(), body.clone()));
            let subject = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|m| m["subject"]["digest"].as_str().map(str::to_owned));
            st.manifests.insert(digest.clone(), (content_type, body));
            let mut headers = vec![("Docker-Content-Digest", digest)];
            if let Some(subject) = subject.filter(|_| st.referrers_api) {
                headers.push(("OCI-Subject", subject));
            }
            return respond(&mut stream, "201 Created", &headers, b"");
        }
        if method == "GET" {
            return match st.manifests.get(reference) {
                Some((t, b)) => {
                    let (t, b) = (t.clone(), b.clone());
                    respond(&mut stream, "200 OK", &[("Content-Type", t)], &b)
                }
                None => not_found(&mut stream),
            };
        }
    }
    not_found(&mut stream)
}
