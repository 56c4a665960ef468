//! A local stand-in for a forge's REST API (GitHub, Forgejo and GitLab shapes) on loopback:
//! serves one job file through the contents APIs and records every call, so tests can assert
//! what the controller asked for and which commit statuses it posted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Headers, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (POST) or `Null`.
    pub body: serde_json::Value,
}

/// The fake API: `url()` is its root; routes are recognized by their suffixes.
pub struct FakeForge {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeForge {
    /// Serves, for every contents request naming `path` at a commit of `files`, that
    /// commit's job file; anything else under contents answers 404; statuses answer 201.
    pub fn start(path: &str, files: Vec<(String, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&calls);
        let files: Vec<(String, String)> = files
            .into_iter()
            .map(|(commit, text)| {
                (
                    commit,
                    base64::engine::general_purpose::STANDARD.encode(text),
                )
            })
            .collect();
        let path = path.to_owned();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(call) = read_call(&mut stream) else {
                    continue;
                };
                let (status, body) = answer(&call, &path, &files);
                recorded.lock().unwrap().push(call);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, calls }
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The status POSTs so far whose target contains `needle`.
    pub fn statuses(&self, needle: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| {
                c.method == "POST" && c.target.contains("/statuses/") && c.target.contains(needle)
            })
            .collect()
    }

    /// Waits up to 120 s until `done` holds for the status POSTs matching `needle`.
    pub fn wait_for_statuses(&self, needle: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let statuses = self.statuses(needle);
            if done(&statuses) {
                return statuses;
            }
            assert!(
                Instant::now() < deadline,
                "statuses for {needle} after 120 s: {statuses:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn read_call(stream: &mut std::net::TcpStream) -> Option<Call> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? <= 2 {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Some(Call {
        method,
        target,
        headers,
        body,
    })
}

fn answer(call: &Call, path: &str, files: &[(String, String)]) -> (&'static str, String) {
    let content = files
        .iter()
        .find(|(c, _)| call.target.ends_with(&format!("ref={c}")))
        .map(|(_, content)| content);
    let encoded_path = path.replace('/', "%2F");
    let wants_file = call.target.contains(&format!("/contents/{path}?"))
        || call
            .target
            .contains(&format!("/repository/files/{encoded_path}?"));
    match call.method.as_str() {
        "GET" if wants_file && content.is_some() => (
            "200 OK",
            serde_json::json!({"type": "file", "encoding": "base64", "content": content})
                .to_string(),
        ),
        "GET" => ("404 Not Found", r#"{"message":"Not Found"}"#.to_owned()),
        "POST" if call.target.contains("/statuses/") => ("201 Created", r#"{"id":1}"#.to_owned()),
        _ => ("405 Method Not Allowed", "{}".to_owned()),
    }
}
