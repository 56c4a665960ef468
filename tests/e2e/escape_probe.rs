//! The in-sandbox probe (`tests/probe/probe.c`) under every sandbox profile, through a real
//! deployment: `airlock controller`, `airlock runner` and `airlock submit` as separate
//! processes. The probe checks by exit code that `/` is read-only, there is no route and the
//! host port the test listens on is unreachable, no capability is left, the uid/gid map is the
//! planned one, the pids, `/tmp` and open-files limits are in force, and that neither the
//! runner's token, the controller's tokens nor any signing key is reachable anywhere in the
//! sandbox's file system or environment (it gets them only as length + SHA-256).

use std::net::TcpListener;
use std::path::Path;

use airlock_attest::Sha256Digest;

use crate::common::*;
use crate::sandbox_escape::{home, job};

/// Every secret the sandbox must not see, as `--secret-sha256 LEN:HEX` arguments: the tokens
/// and each line of the private keys' PEM bodies.
fn secret_args(controller_dir: &Path) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    for token in ["runner.secret", "admin.token"] {
        let t = std::fs::read_to_string(controller_dir.join(token)).unwrap();
        secrets.push(t.trim().to_owned());
    }
    for entry in std::fs::read_dir(controller_dir.join("keys")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let pem = std::fs::read_to_string(&path).unwrap();
            secrets.extend(
                pem.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_owned),
            );
        }
    }
    assert!(secrets.len() >= 5, "{secrets:?}");
    secrets
        .iter()
        .flat_map(|s| {
            [
                "--secret-sha256".to_owned(),
                format!("{}:{}", s.len(), Sha256Digest::of(s.as_bytes()).hex()),
            ]
        })
        .collect()
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn the_probe_passes_in_every_profile() {
    let root = home();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let _controller = start_controller(&dir.join("controller.toml"), port);
    // Its own id base (far from every other runner's, different per run) and lock
    // directory: the probe knows the exact map to expect.
    let id_base = 100_000_000u32 + (std::process::id() % 5000) * 65536;
    let _runner = Kill(
        runner_command(
            &url,
            &dir.join("runner.secret"),
            &root.path().join("runner"),
        )
        .args(["--id-base", &id_base.to_string(), "--id-slots", "1"])
        .arg("--id-lock-dir")
        .arg(root.path().join("id-locks"))
        .arg("--profiles-dir")
        .arg(repo().join("sandbox-profiles"))
        .spawn()
        .unwrap(),
    );
    // A port the host listens on; the probe must not reach it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host_port = listener.local_addr().unwrap().port();

    let tmp_bytes = 64u64 << 20;
    let mut argv = vec![
        "/work/probe".to_owned(),
        "--uid-map".to_owned(),
        format!("0 {id_base} 65536"),
        "--port".to_owned(),
        host_port.to_string(),
        "--pids".to_owned(),
        "128".to_owned(),
        "--tmp-bytes".to_owned(),
        tmp_bytes.to_string(),
        "--open-files".to_owned(),
        "4096".to_owned(),
    ];
    argv.extend(secret_args(&dir));
    let argv_toml = serde_json::to_string(&argv).unwrap();

    for profile in ["untrusted-pr", "trusted", "release"] {
        let body = format!(
            r#"[[steps]]
name = "compile"
run = "gcc -O2 -Wall -Werror -o /work/probe probe.c"

[[steps]]
name = "probe"
argv = {argv_toml}

[[steps]]
name = "finish"
run = "echo probed > /out/x"

[resources]
memory = "512MiB"
pids = 128
tmp = "64MiB"
"#
        );
        let file = job(root.path(), &format!("probe-{profile}"), &body, "\"x\"");
        let toml = std::fs::read_to_string(&file).unwrap().replace(
            "profile = \"untrusted-pr\"",
            &format!("profile = \"{profile}\""),
        );
        std::fs::write(&file, toml).unwrap();
        let mut submit = airlock();
        submit
            .arg("submit")
            .arg(&file)
            .arg("--follow")
            .env("AIRLOCK_CONTROLLER", &url)
            .env("AIRLOCK_TOKEN_FILE", dir.join("admin.token"));
        let o = run(submit);
        let t = text(&o);
        for check in [
            "ok root-readonly",
            "ok only-loopback",
            "ok no-route",
            "ok no-route-lookup",
            "ok host-port-unreachable",
            "ok no-capabilities",
            "ok no-new-privs",
            "ok seccomp-filter",
            "ok uid-map",
            "ok gid-map",
            "ok step-identity",
            "ok tmp-size",
            "ok open-files-limit",
            "ok no-secrets",
            "ok pids-limit",
            "PASS: 0 failed",
        ] {
            assert!(
                t.contains(check),
                "profile {profile}: `{check}` missing:\n{t}"
            );
        }
        assert!(!t.contains("FAIL "), "profile {profile}:\n{t}");
        assert!(
            t.contains(&format!("sandbox profile {profile}; host ids {id_base}..")),
            "{t}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "the host listener must never see a connection"
    );
}
