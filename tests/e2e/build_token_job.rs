//! Build tokens end to end, as separate processes: `airlock controller` (with the `[oidc]`
//! that `airlock controller init` writes) and `airlock runner`. A `trusted` job declaring
//! `[oidc] audiences = ["sts.example"]` compiles the C client in its sandbox, fetches a token
//! over `/run/airlock/oidc.sock` (the runner asks the controller with `MintBuildToken`), and
//! prints it; PyJWT verifies the token against the running controller's JWKS, the job's stored
//! log holds only the redacted form, an undeclared audience gets 403, and an `untrusted-pr` job
//! has no socket at all.

use crate::build_token_sandbox::{CLIENT_C, parse_response};
use crate::common::*;

const AUD: &str = "sts.example";

/// Submits `job` and waits; returns its id.
fn submit(job: &std::path::Path, url: &str, admin: &std::path::Path) -> String {
    let mut submit = airlock();
    submit
        .arg("submit")
        .arg(job)
        .arg("--wait")
        .env("AIRLOCK_CONTROLLER", url)
        .env("AIRLOCK_TOKEN_FILE", admin);
    let o = run(submit);
    assert_eq!(o.status.code(), Some(0), "submit --wait: {}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let job_id = stdout.lines().next().unwrap().trim().to_string();
    assert_eq!(job_id.len(), 36, "the job id is the first line: {stdout}");
    job_id
}

/// Fetches the outputs of `job_id` into `out`.
fn fetch(job_id: &str, url: &str, admin: &std::path::Path, out: &std::path::Path) {
    let mut fetch = airlock();
    fetch
        .arg("fetch")
        .arg(job_id)
        .arg("--out")
        .arg(out)
        .args(["--controller", url, "--token-file"])
        .arg(admin);
    assert!(run(fetch).status.success());
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_trusted_job_gets_a_build_token_through_the_controller() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let config = std::fs::read_to_string(dir.join("controller.toml")).unwrap();
    assert!(config.contains("\n[oidc]\n"), "{config}");
    assert!(dir.join("token-keys").is_dir());
    let url = format!("http://127.0.0.1:{port}");
    let admin = dir.join("admin.token");

    let _controller = start_controller(&dir.join("controller.toml"), port);
    let _runner = Kill(
        runner_command(
            &url,
            &dir.join("runner.secret"),
            &root.path().join("runner"),
        )
        .spawn()
        .unwrap(),
    );

    // The trusted job: compile the client, fetch a token (and print it: the log must only
    // show it redacted), ask for an undeclared audience.
    let steps = format!(
        "[[steps]]\nrun = '''\nset -e\n\
         gcc -O0 -o /work/client /work/client.c\n\
         /work/client '/token?audience={AUD}' > /out/ok.txt\n\
         cat /out/ok.txt\n\
         /work/client '/token?audience=evil.example' > /out/forbidden.txt\n\
         echo \"$AIRLOCK_ID_TOKEN_URL\" > /out/env.txt\n'''\n"
    );
    let job = job_dir(
        root.path(),
        "tokens",
        &steps,
        "\"ok.txt\", \"forbidden.txt\", \"env.txt\"",
    );
    let toml = std::fs::read_to_string(&job)
        .unwrap()
        .replace("profile = \"untrusted-pr\"", "profile = \"trusted\"")
        + &format!("\n[oidc]\naudiences = [\"{AUD}\"]\n");
    std::fs::write(&job, toml).unwrap();
    std::fs::write(job.parent().unwrap().join("client.c"), CLIENT_C).unwrap();
    let job_id = submit(&job, &url, &admin);

    let out = root.path().join("fetched");
    fetch(&job_id, &url, &admin, &out);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let (status, body) = parse_response(&read("ok.txt"));
    assert_eq!(status, 200, "{}", read("ok.txt"));
    let token = body["value"].as_str().unwrap().to_owned();
    assert!(token.len() > 100, "a compact JWS");
    assert_eq!(parse_response(&read("forbidden.txt")).0, 403);
    assert_eq!(read("env.txt").trim(), "http://localhost/token");
    // The job ended: its broker is closed and its directory removed.
    assert!(!root.path().join("runner/oidc").join(&job_id).exists());

    // PyJWT's PyJWKClient, reading the running controller's discovery document and JWKS.
    let cases = root.path().join("cases.json");
    let json = serde_json::json!([{"name": "job", "token": token, "audience": AUD}]);
    std::fs::write(&cases, serde_json::to_vec(&json).unwrap()).unwrap();
    let mut verify = std::process::Command::new(venv_python());
    verify
        .arg(repo().join("tests/interop/verify_jwt.py"))
        .arg(&url)
        .arg(&cases);
    let o = run(verify);
    assert!(o.status.success(), "{}", text(&o));
    let results: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let claims = &results["job"]["claims"];
    assert_eq!(results["job"]["ok"], true, "{results:#}");
    assert_eq!(claims["iss"], url.as_str());
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["job_id"], job_id.as_str());
    assert_eq!(claims["profile"], "trusted");
    assert!(
        claims["sub"].as_str().unwrap().starts_with("repo:"),
        "{claims:#}"
    );
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime > 0 && lifetime <= 300, "{claims:#}");

    // The stored log shows the step printed the token, redacted.
    let mut logs = airlock();
    logs.arg("logs")
        .arg(&job_id)
        .args(["--controller", &url, "--token-file"])
        .arg(&admin);
    let o = run(logs);
    assert!(o.status.success());
    let log = text(&o);
    assert!(!log.contains(&token), "the token is in the job's log");
    assert!(
        log.contains("\"value\""),
        "the step printed the response: {log}"
    );

    // An untrusted-pr job gets no socket.
    let untrusted = job_dir(
        root.path(),
        "untrusted",
        "[[steps]]\nrun = '''\n\
         if test -e /run/airlock/oidc.sock; then echo present; else echo absent; fi > /out/sock.txt\n\
         echo \"${AIRLOCK_ID_TOKEN_URL:-unset}\" >> /out/sock.txt\n'''\n",
        "\"sock.txt\"",
    );
    let untrusted_id = submit(&untrusted, &url, &admin);
    let out = root.path().join("fetched-untrusted");
    fetch(&untrusted_id, &url, &admin, &out);
    assert_eq!(
        std::fs::read_to_string(out.join("sock.txt")).unwrap(),
        "absent\nunset\n"
    );
}
