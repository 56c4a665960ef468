//! `airlock controller` + `airlock runner` + `airlock submit --wait` as three
//! processes on loopback.

use crate::common::*;

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn controller_runner_and_submit_as_separate_processes() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");

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

    let job = job_dir(
        root.path(),
        "remote",
        "[[steps]]\nrun = \"echo built remotely > /out/result.txt\"",
        "\"result.txt\"",
    );
    let mut submit = airlock();
    submit
        .arg("submit")
        .arg(&job)
        .arg("--wait")
        .env("AIRLOCK_CONTROLLER", &url)
        .env("AIRLOCK_TOKEN_FILE", dir.join("admin.token"));
    let o = run(submit);
    assert_eq!(o.status.code(), Some(0), "submit --wait");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let job_id = stdout.lines().next().unwrap().trim().to_string();
    assert_eq!(job_id.len(), 36, "the job id is the first line: {stdout}");

    let out = root.path().join("fetched");
    let mut fetch = airlock();
    fetch
        .arg("fetch")
        .arg(&job_id)
        .arg("--out")
        .arg(&out)
        .args(["--controller", &url, "--token-file"])
        .arg(dir.join("admin.token"));
    assert!(run(fetch).status.success());
    assert_eq!(
        std::fs::read_to_string(out.join("result.txt")).unwrap(),
        "built remotely\n"
    );
    let mut verify = airlock();
    verify
        .arg("verify")
        .arg(out.join("result.txt"))
        .arg("--provenance")
        .arg(out.join("remote.intoto.jsonl"))
        .arg("--key")
        .arg(dir.join("keys/untrusted-pr.pub"))
        .arg("--builder-id")
        .arg(format!("{url}/builders/untrusted-pr"));
    assert_eq!(run(verify).status.code(), Some(0));

    // A wrong API token is refused.
    let bad = root.path().join("bad.token");
    std::fs::write(&bad, "not-the-token").unwrap();
    let mut status = airlock();
    status
        .arg("status")
        .arg(&job_id)
        .args(["--controller", &url, "--token-file"])
        .arg(&bad);
    let o = run(status);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).to_lowercase().contains("unauthenticated"));
}
