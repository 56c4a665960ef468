//! Shared fixtures of the web tests: raw HTTP/1.1 requests to a test controller, logging in
//! through the form, a controller with a `reader` client, and a job whose step name and log
//! line are hostile HTML.

#![allow(dead_code, clippy::unwrap_used)]

use airlock_attest::{load_verifying_key, write_keypair};
use airlock_controller::ControllerConfig;
use airlock_controller::auth::digest::TokenDigest;
use airlock_controller::config::{ClientEntry, Role};
use airlock_proto::v1 as pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::*;

pub const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(1)>";
pub const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;";
pub const ORIGIN: &str = "https://localhost";
pub const READER_TOKEN: &str = "reader-token-for-tests";

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The session cookie `Set-Cookie` hands out, as `name=value`.
    pub fn cookie(&self) -> String {
        let set = self.header("set-cookie").expect("a Set-Cookie header");
        set.split(';').next().unwrap().to_owned()
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let (_, rest) = self
            .body
            .split_once(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token");
        rest.split('"').next().unwrap().to_owned()
    }
}

/// One HTTP/1.1 request; `headers` are added as given.
pub async fn http(
    tc: &TestController,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(tc.addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        tc.addr,
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

pub async fn get(tc: &TestController, path: &str, cookie: Option<&str>) -> Reply {
    match cookie {
        Some(c) => http(tc, "GET", path, &[("Cookie", c)], "").await,
        None => http(tc, "GET", path, &[], "").await,
    }
}

/// A form POST as a browser on this origin sends it.
pub async fn post(tc: &TestController, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    let mut headers = vec![
        ("Origin", ORIGIN),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    http(tc, "POST", path, &headers, form).await
}

pub async fn login(tc: &TestController, token: &str, next: &str) -> Reply {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .append_pair("next", next)
        .finish();
    post(tc, "/login", None, &form).await
}

/// A controller whose state lives in `state` (kept by the caller across restarts), with a
/// `reader` client unless `without_reader`, and `[web] anonymous_read`.
pub async fn controller(
    state: &std::path::Path,
    without_reader: bool,
    anonymous: bool,
) -> TestController {
    let (key, public) = if state.join("provenance.key").exists() {
        (state.join("provenance.key"), state.join("provenance.pub"))
    } else {
        write_keypair(state, "provenance").unwrap()
    };
    let mut config = ControllerConfig::local(state.join("state"), key, API_TOKEN, RUNNER_TOKEN);
    if !without_reader {
        config.auth.clients.push(ClientEntry {
            name: "reader".into(),
            token_sha256: TokenDigest::of(READER_TOKEN),
            role: Role::Read,
            profiles: None,
        });
    }
    config.web.anonymous_read = anonymous;
    let public_key = load_verifying_key(&public).unwrap();
    TestController::start_with(tempfile::tempdir().unwrap(), config, public_key).await
}

/// Runs a job whose step name and log line are [`HOSTILE`] to success; returns its id.
pub async fn hostile_job(tc: &TestController) -> String {
    use pb::step_event::Phase;
    let mut jobs = tc.jobs().await;
    let mut runners = tc.runners().await;
    let source = upload_source(&mut jobs, b"source").await;
    let mut spec: serde_json::Value = serde_json::from_slice(&spec_json(&source, &[])).unwrap();
    spec["steps"][0]["name"] = HOSTILE.into();
    let job_id = jobs
        .submit_job(pb::SubmitJobRequest {
            spec_json: serde_json::to_vec(&spec).unwrap(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let runner = register(&mut runners, &[]).await;
    let lease = acquire(&mut runners, &runner, 0).await.unwrap();
    runners
        .report_events(pb::ReportEventsRequest {
            job_id: lease.job_id.clone(),
            lease_token: lease.lease_token.clone(),
            events: vec![
                step_event(0, HOSTILE, Phase::Started),
                log_event(0, format!("building\n{HOSTILE}\n").as_bytes()),
                step_event(0, HOSTILE, Phase::Finished),
            ],
        })
        .await
        .unwrap();
    upload_output(&mut runners, &lease, "hello", b"binary").await;
    let done = runners
        .complete_job(complete_request(
            &lease,
            pb::Outcome::Succeeded,
            vec![output_file("hello", b"binary")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), pb::JobState::Succeeded);
    job_id
}
