//! Secrets end to end, as separate processes (`airlock controller` and `airlock runner`, both
//! at debug log level): a `trusted` job fetches a build token in its sandbox, prints it and
//! writes it to `/out/token`, while the runner renews its 4-second runner token several
//! times. Then everything a user or operator sees — both processes' stdout and stderr, `airlock
//! logs`, `airlock status` (the outputs list), the provenance files and the CLI's own output —
//! is scanned for the build token, the registration secret, the API token and anything shaped
//! like a runner token, job token or registration secret (`airlock-rt_…`, `airlock-jt_…`,
//! `airlock-reg_…`). None may appear; the scan does find the token in the output file
//! (positive control). A second test revokes the registration of a runner running a job: the
//! runner fails closed (aborts the job, exits 3 naming the revocation) and a runner with that
//! secret gets no jobs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::build_token_sandbox::{CLIENT_C, parse_response};
use crate::common::*;

const AUD: &str = "sts.example";
/// Runner tokens, job tokens, registration secrets.
const TOKEN_PREFIXES: [&str; 3] = ["airlock-rt_", "airlock-jt_", "airlock-reg_"];

/// `controller init` in `root/controller` with `extra_auth` lines added to `[auth]`;
/// returns (dir, port).
fn init(root: &Path, extra_auth: &str) -> (PathBuf, u16) {
    let dir = root.join("controller");
    let port = init_controller(&dir);
    assert!(
        dir.join("runner.secret").is_file(),
        "init writes runner.secret"
    );
    let config = dir.join("controller.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("\n[auth]\n"), "{toml}");
    let toml = toml.replacen("\n[auth]\n", &format!("\n[auth]\n{extra_auth}"), 1);
    std::fs::write(&config, toml).unwrap();
    (dir, port)
}

/// Sends `cmd`'s stdout and stderr to `<logs>/<name>.stdout` and `.stderr`, at `level`.
fn logged(cmd: &mut Command, logs: &Path, name: &str, level: &str) {
    cmd.env("AIRLOCK_LOG", level)
        .env("RUST_LOG", level)
        .stdout(std::fs::File::create(logs.join(format!("{name}.stdout"))).unwrap())
        .stderr(std::fs::File::create(logs.join(format!("{name}.stderr"))).unwrap());
}

/// Starts the controller of `dir`, logging to `logs` at `level`, and waits for `port`.
fn controller(dir: &Path, port: u16, logs: &Path, level: &str) -> Kill {
    start_controller_with(&dir.join("controller.toml"), port, |c| {
        logged(c, logs, "controller", level)
    })
}

fn runner(url: &str, secret: &Path, state: &Path, logs: &Path, name: &str, level: &str) -> Kill {
    let mut c = runner_command(url, secret, state);
    c.stdin(Stdio::null());
    logged(&mut c, logs, name, level);
    Kill(c.spawn().unwrap())
}

/// Runs an `airlock` client command against `url` with the API token; returns its output,
/// asserting success.
fn client(args: &[&str], url: &str, admin: &Path) -> String {
    let mut c = airlock();
    c.args(args)
        .env("AIRLOCK_CONTROLLER", url)
        .env("AIRLOCK_TOKEN_FILE", admin);
    let o = run(c);
    assert!(o.status.success(), "airlock {args:?}: {}", text(&o));
    text(&o)
}

/// What must never be seen: (name, value).
type Needles = Vec<(&'static str, Vec<u8>)>;

/// Every place in `hay` where a needle, or a runner or job token (a prefix followed by a
/// token character), occurs: "<source>: <what> at byte N".
fn scan(source: &str, hay: &[u8], needles: &Needles) -> Vec<String> {
    let mut found = Vec::new();
    for (what, needle) in needles {
        if let Some(at) = hay.windows(needle.len()).position(|w| w == &needle[..]) {
            found.push(format!("{source}: the {what} at byte {at}"));
        }
    }
    for prefix in TOKEN_PREFIXES {
        let p = prefix.as_bytes();
        for (at, w) in hay.windows(p.len() + 1).enumerate() {
            if &w[..p.len()] == p && (w[p.len()].is_ascii_alphanumeric() || w[p.len()] == b'-') {
                found.push(format!("{source}: a `{prefix}` token at byte {at}"));
                break;
            }
        }
    }
    found
}

fn read_secret(path: &Path) -> Vec<u8> {
    let s = std::fs::read_to_string(path).unwrap();
    let s = s.trim().as_bytes().to_vec();
    assert!(s.len() >= 16, "{} holds a real secret", path.display());
    s
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn no_secret_reaches_a_log_an_output_list_or_provenance() {
    let root = scratch();
    let logs = root.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // 4-second runner tokens: the runner renews several times while the job runs.
    let (dir, port) = init(root.path(), "runner_token_ttl_seconds = 4\n");
    let url = format!("http://127.0.0.1:{port}");
    let admin = dir.join("admin.token");
    let secret_file = dir.join("runner.secret");

    let controller = controller(&dir, port, &logs, "debug");
    let runner = runner(
        &url,
        &secret_file,
        &root.path().join("runner"),
        &logs,
        "runner",
        "debug",
    );

    // The step fetches a build token, prints it (the log must show it redacted), prints its
    // environment (no runner credential is there), and outlives a few token renewals.
    let steps = format!(
        "[[steps]]\nrun = '''\nset -e\n\
         gcc -O0 -o /work/client /work/client.c\n\
         /work/client '/token?audience={AUD}' > /out/token\n\
         cat /out/token\n\
         env | sort\n\
         sleep 6\n'''\n"
    );
    let job = job_dir(root.path(), "leaks", &steps, "\"token\"");
    let toml = std::fs::read_to_string(&job)
        .unwrap()
        .replace("profile = \"untrusted-pr\"", "profile = \"trusted\"")
        + &format!("\n[oidc]\naudiences = [\"{AUD}\"]\n");
    std::fs::write(&job, toml).unwrap();
    std::fs::write(job.parent().unwrap().join("client.c"), CLIENT_C).unwrap();

    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    let submitted = client(&["submit", job.to_str().unwrap(), "--wait"], &url, &admin);
    let job_id = submitted.lines().next().unwrap().trim().to_owned();
    assert_eq!(
        job_id.len(),
        36,
        "the job id is the first line: {submitted}"
    );
    seen.push(("airlock submit".into(), submitted.into_bytes()));
    let status = client(&["status", &job_id], &url, &admin);
    assert!(status.contains("state:   succeeded"), "{status}");
    assert!(
        status.contains("output:  token"),
        "the outputs list: {status}"
    );
    seen.push(("airlock status (outputs list)".into(), status.into_bytes()));
    let log = client(&["logs", &job_id], &url, &admin);
    assert!(
        log.contains("[REDACTED]"),
        "the step printed the token: {log}"
    );
    assert!(
        log.contains("AIRLOCK_ID_TOKEN_URL="),
        "the step printed its env: {log}"
    );
    seen.push(("airlock logs".into(), log.into_bytes()));
    let out = root.path().join("fetched");
    let fetched = client(
        &["fetch", &job_id, "--out", out.to_str().unwrap()],
        &url,
        &admin,
    );
    seen.push(("airlock fetch".into(), fetched.into_bytes()));

    let response = std::fs::read_to_string(out.join("token")).unwrap();
    let (code, body) = parse_response(&response);
    assert_eq!(code, 200, "{response}");
    let token = body["value"].as_str().unwrap().to_owned();
    assert!(token.len() > 100, "a compact JWS: {token}");

    // Stop both processes so their logs are complete.
    drop(runner);
    drop(controller);
    for name in [
        "controller.stdout",
        "controller.stderr",
        "runner.stdout",
        "runner.stderr",
    ] {
        seen.push((name.into(), std::fs::read(logs.join(name)).unwrap()));
    }
    let mut provenance = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if [".intoto.jsonl", ".sigstore.json", ".spdx.json", ".cdx.json"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
        {
            provenance += 1;
            seen.push((name, std::fs::read(&path).unwrap()));
        }
    }
    assert_eq!(
        provenance, 5,
        "the envelope, the bundle and the three SBOM files were fetched"
    );

    // The logs are real: debug level, a registration, renewals during the job.
    let runner_log = std::fs::read_to_string(logs.join("runner.stderr")).unwrap();
    let controller_log = std::fs::read_to_string(logs.join("controller.stderr")).unwrap();
    assert!(
        runner_log.contains("DEBUG") && controller_log.contains("DEBUG"),
        "debug logging is on"
    );
    assert!(
        runner_log.matches("renewed the runner token").count() >= 2,
        "the runner renewed its token while working: {runner_log}"
    );

    let needles: Needles = vec![
        ("build token", token.clone().into_bytes()),
        ("registration secret", read_secret(&secret_file)),
        ("API token", read_secret(&admin)),
    ];
    // Positive control: the scan finds the token where it legitimately is.
    let control = scan("out/token", response.as_bytes(), &needles);
    assert!(
        control.iter().any(|f| f.contains("the build token")),
        "the scan must find the token in the output file: {control:?}"
    );
    let synthetic = b"a airlock-rt_x1, an airlock-jt_y2, an airlock-reg_z3";
    assert_eq!(
        scan("synthetic", synthetic, &Vec::new()).len(),
        3,
        "the prefix scan works"
    );
    for (source, bytes) in &seen {
        eprintln!("scanned {source}: {} bytes", bytes.len());
    }
    let found: Vec<String> = seen
        .iter()
        .flat_map(|(source, bytes)| scan(source, bytes, &needles))
        .collect();
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_revoked_runner_stops_getting_jobs_and_exits_non_zero() {
    let root = scratch();
    let logs = root.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let (dir, port) = init(root.path(), "");
    let url = format!("http://127.0.0.1:{port}");
    let admin = dir.join("admin.token");
    let secret = dir.join("runner.secret");
    let _controller = controller(&dir, port, &logs, "info");
    let mut first = runner(
        &url,
        &secret,
        &root.path().join("runner"),
        &logs,
        "runner",
        "info",
    );

    // It works before the revocation.
    let job = job_dir(
        root.path(),
        "before",
        "[[steps]]\nrun = \"echo ok > /out/ok.txt\"",
        "\"ok.txt\"",
    );
    client(&["submit", job.to_str().unwrap(), "--wait"], &url, &admin);

    // A long job is running when the registration is revoked.
    let job = job_dir(
        root.path(),
        "long",
        "[[steps]]\nrun = \"sleep 300\"",
        "\"ok.txt\"",
    );
    let submitted = client(&["submit", job.to_str().unwrap()], &url, &admin);
    let long_id = submitted.lines().next().unwrap().trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client(&["status", &long_id], &url, &admin).contains("state:   running") {
        assert!(Instant::now() < deadline, "the long job did not start");
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut revoke = airlock();
    revoke
        .args([
            "controller",
            "registration",
            "revoke",
            "default",
            "--config",
        ])
        .arg(dir.join("controller.toml"));
    let o = run(revoke);
    assert!(o.status.success(), "registration revoke: {}", text(&o));

    // The running job's next heartbeat fails, registering again is refused: the runner aborts
    // the job and exits 3, saying why, well within the job's 300 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = first.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked runner did not exit:\n{}",
            std::fs::read_to_string(logs.join("runner.stderr")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(logs.join("runner.stderr")).unwrap();
    eprintln!("--- the revoked runner's stderr:\n{stderr}");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("registration revoked or secret wrong"),
        "{stderr}"
    );
    assert!(
        stderr.contains("registration was revoked: aborting the job"),
        "{stderr}"
    );

    // A runner started with the revoked secret never registers, so a new job stays queued.
    let job = job_dir(
        root.path(),
        "after",
        "[[steps]]\nrun = \"echo ok > /out/ok.txt\"",
        "\"ok.txt\"",
    );
    let submitted = client(&["submit", job.to_str().unwrap()], &url, &admin);
    let job_id = submitted.lines().next().unwrap().trim().to_owned();
    let mut second = runner(
        &url,
        &secret,
        &root.path().join("runner2"),
        &logs,
        "runner2",
        "info",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = second.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the second runner did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(logs.join("runner2.stderr")).unwrap();
    eprintln!("--- the second runner's stderr:\n{stderr}");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("registration revoked or secret wrong"),
        "{stderr}"
    );
    let state = client(&["status", &job_id], &url, &admin);
    assert!(
        state.contains("state:   queued"),
        "no runner took the job: {state}"
    );
}
