//! The web pages in a real browser: `airlock controller` and `airlock runner` run a job whose
//! step name and log line are hostile HTML, and tests/web/browser.py drives Debian's headless
//! Chromium (selenium) through the login form, the job page and its live tail. Cross-origin
//! POSTs are tried from here with a plain HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;

const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(1)>";

/// Printed by the job's last step after a pause: it can only reach a page opened while the
/// job ran through the live tail.
const LATE_LINE: &str = "finished-after-the-page-opened";

/// Runs tests/web/browser.py and returns the JSON it printed; panics with what to run when
/// the browser or selenium is missing.
pub(crate) fn browser(
    url: &str,
    job: &str,
    token_file: Option<&Path>,
    expect: &[(&str, &str)],
) -> serde_json::Value {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).exists(),
            "no {tool}: run scripts/install-deps.sh (it installs chromium and chromium-driver)"
        );
    }
    let mut cmd = Command::new(venv_python());
    cmd.arg(repo().join("tests/web/browser.py")).args([
        "--base",
        url,
        "--job",
        job,
        "--timeout",
        "120",
    ]);
    if let Some(file) = token_file {
        cmd.arg("--token-file").arg(file);
    }
    for (flag, value) in expect {
        cmd.arg(flag).arg(value);
    }
    // AIRLOCK_WEB_SCREENSHOT=DIR keeps a PNG of each page the browser ended on, to look at.
    if let Some(dir) = std::env::var_os("AIRLOCK_WEB_SCREENSHOT") {
        let stem = token_file
            .and_then(Path::file_stem)
            .map_or("anonymous".into(), |s| s.to_string_lossy());
        let name = format!("{stem}.png");
        cmd.arg("--screenshot").arg(Path::new(&dir).join(name));
    }
    let o = run(cmd);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "browser.py could not drive Chromium (exit {:?}); run scripts/setup-test-env.sh \
         (selenium) and scripts/install-deps.sh (chromium, chromium-driver): {}",
        o.status.code(),
        text(&o)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("browser.py JSON: {e}: {}", text(&o)))
}

/// One HTTP/1.1 request to 127.0.0.1:`port`: (status, head, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Follows the job's log (`airlock logs -f`) until a line contains `needle`.
fn wait_for_log_line(url: &str, token: &Path, job: &str, needle: &str) {
    let mut cmd = airlock();
    cmd.args(["logs", "-f", job, "--controller", url, "--token-file"])
        .arg(token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut logs = Kill(cmd.spawn().unwrap());
    let stdout = logs.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let needle = needle.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(&needle) {
                let _ = tx.send(());
                return;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(180))
        .expect("the job's first step printed nothing within 180 s");
}

fn steps_of(seen: &serde_json::Value) -> Vec<String> {
    seen["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs root, the base image, chromium and the venv: run scripts/test.sh"]
fn the_job_page_in_a_real_browser_shows_hostile_text_as_text() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let config = dir.join("controller.toml");
    let admin = dir.join("admin.token");
    let controller = start_controller(&config, port);
    let _runner = Kill(
        runner_command(
            &url,
            &dir.join("runner.secret"),
            &root.path().join("runner"),
        )
        .spawn()
        .unwrap(),
    );

    let steps = format!(
        "[[steps]]\nname = \"{HOSTILE}\"\nrun = \"echo 'started {HOSTILE}'\"\n\n\
         [[steps]]\nname = \"finish\"\n\
         run = \"sleep 12; echo {LATE_LINE}; echo ok > /out/result.txt\"\n"
    );
    let job_file = job_dir(root.path(), "web-ui", &steps, "\"result.txt\"");
    let mut submit = airlock();
    submit
        .arg("submit")
        .arg(&job_file)
        .args(["--controller", &url, "--token-file"])
        .arg(&admin);
    let o = run(submit);
    assert!(o.status.success(), "submit: {}", text(&o));
    let job = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    wait_for_log_line(&url, &admin, &job, "started <script>");

    // Without a login (anonymous_read is off) the page sends the browser to the form.
    let page = format!("/jobs/{job}");
    let (status, head, _) = http(port, "GET", &page, &[], "");
    assert_eq!(status, 303, "{head}");
    assert!(
        head.to_lowercase()
            .contains(&format!("location: /login?next=%2fjobs%2f{job}")),
        "{head}"
    );
    // Cross-origin POSTs are refused, with the right token and without a session alike.
    let token = std::fs::read_to_string(&admin).unwrap();
    let form = format!("token={}", token.trim());
    let (status, head, _) = http(
        port,
        "POST",
        "/login",
        &[("Origin", "https://evil.example")],
        &form,
    );
    assert_eq!(status, 403, "{head}");
    assert!(!head.to_lowercase().contains("set-cookie"), "{head}");
    let (status, _, _) = http(port, "POST", "/login", &[], &form);
    assert_eq!(status, 403, "a POST without Origin or Sec-Fetch-Site");
    let (status, _, _) = http(
        port,
        "POST",
        &format!("{page}/cancel"),
        &[("Origin", "https://evil.example")],
        "csrf=x",
    );
    assert_eq!(status, 403);

    // Logged in, the page opens while the job runs and its live tail follows it to the end.
    let seen = browser(
        &url,
        &job,
        Some(&admin),
        &[
            ("--expect-state", "SUCCEEDED"),
            ("--expect-step", HOSTILE),
            ("--expect-log", LATE_LINE),
        ],
    );
    eprintln!("browser saw: {seen:#}");
    assert_eq!(seen["login"]["ok"], true, "{seen:#}");
    assert_eq!(seen["timed_out"], false, "{seen:#}");
    assert_eq!(seen["state"], "SUCCEEDED");
    let initial = seen["initial_state"].as_str().unwrap();
    assert!(
        ["LEASED", "RUNNING"].contains(&initial),
        "the page opened while the job ran: {initial}"
    );
    assert_eq!(steps_of(&seen), [HOSTILE, "finish"], "{seen:#}");
    assert_eq!(seen["steps"][0]["data_step"], HOSTILE);
    let log = seen["log"].as_str().unwrap();
    assert!(
        log.contains(&format!("started {HOSTILE}")),
        "the log shows the text: {log}"
    );
    assert!(
        log.contains(LATE_LINE),
        "the live tail appended the late line: {log}"
    );
    assert_eq!(
        seen["alerts"],
        serde_json::json!([]),
        "no script ran: {seen:#}"
    );
    assert_eq!(seen["elements"]["img"], 0, "no element was injected");
    assert_eq!(seen["elements"]["script"], 1, "only /assets/app.js");
    assert_eq!(seen["elements"]["with_handlers"], 0);
    assert_eq!(seen["csp_violations"], serde_json::json!([]), "{seen:#}");
    let cookies = seen["cookies"].as_array().unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "airlock_session")
        .unwrap_or_else(|| panic!("no session cookie: {seen:#}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert_eq!(session["path"], "/");

    // A wrong token does not log in, and the job page then sends the browser to the form.
    let bad = root.path().join("bad.token");
    std::fs::write(&bad, "airlock-api_not-a-configured-token\n").unwrap();
    let seen = browser(&url, &job, Some(&bad), &[]);
    assert_eq!(seen["login"]["ok"], false, "{seen:#}");
    assert!(seen["login"]["error"].as_str().is_some(), "{seen:#}");
    assert_eq!(seen["redirected_to_login"], true, "{seen:#}");
    assert!(seen["state"].is_null());
    assert!(
        !seen["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "airlock_session"),
        "{seen:#}"
    );

    // With `[web] anonymous_read = true` the page renders without a login.
    drop(controller);
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[web]\nanonymous_read = true\n");
    std::fs::write(&config, toml).unwrap();
    let _controller = start_controller(&config, port);
    let (status, head, body) = http(port, "GET", &page, &[], "");
    assert_eq!(status, 200, "{head}");
    assert!(
        body.contains(">SUCCEEDED<") && !body.contains("<script>alert"),
        "{body}"
    );
    let seen = browser(&url, &job, None, &[("--expect-state", "SUCCEEDED")]);
    assert_eq!(seen["redirected_to_login"], false, "{seen:#}");
    assert_eq!(seen["state"], "SUCCEEDED", "{seen:#}");
    assert_eq!(steps_of(&seen), [HOSTILE, "finish"]);
    assert_eq!(seen["alerts"], serde_json::json!([]));
    assert_eq!(seen["csp_violations"], serde_json::json!([]), "{seen:#}");
}
