//! `airlock controller client-token`: the token lands only in a new 0600 file, the printed
//! `[[auth.clients]]` entry holds its sha256, and a controller configured with it admits the
//! client in its role and no further.

use std::os::unix::fs::PermissionsExt as _;

use sha2::{Digest, Sha256};

use crate::common::*;

#[test]
fn a_client_token_works_in_its_role_and_no_further() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let token_file = dir.join("ci.token");
    let mut cmd = airlock();
    cmd.args([
        "controller",
        "client-token",
        "--name",
        "ci",
        "--role",
        "submit-untrusted",
    ])
    .arg("--out")
    .arg(&token_file);
    let o = run(cmd);
    assert!(o.status.success(), "{}", text(&o));
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert!(token.starts_with("airlock-api_"), "a greppable prefix");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !text(&o).contains(token),
        "the token is printed: {}",
        text(&o)
    );
    let entry = String::from_utf8(o.stdout.clone()).unwrap();
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    assert!(
        entry.contains(&format!("token_sha256 = \"{digest}\"")),
        "{entry}"
    );
    assert!(entry.contains("role = \"submit-untrusted\""), "{entry}");

    // Never overwrites; refuses a role that does not exist.
    let again = |role: &str| {
        let mut cmd = airlock();
        cmd.args(["controller", "client-token", "--name", "ci", "--role", role])
            .arg("--out")
            .arg(&token_file);
        run(cmd)
    };
    let o = again("submit-untrusted");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let o = again("root");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("submit-release"), "{}", text(&o));

    // The entry pasted into controller.toml admits the client.
    let config = dir.join("controller.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push('\n');
    toml.push_str(&entry);
    std::fs::write(&config, toml).unwrap();
    let _controller = start_controller(&config, port);
    let url = format!("http://127.0.0.1:{port}");
    let missing = "00000000-0000-4000-8000-000000000000";
    let status = |token_file: &std::path::Path| {
        let mut cmd = airlock();
        cmd.args(["status", missing, "--controller", &url, "--token-file"])
            .arg(token_file);
        run(cmd)
    };
    // Authenticated: the job is simply not there.
    let o = status(&token_file);
    assert!(text(&o).contains("NotFound"), "{}", text(&o));
    // A token the controller does not know is refused as such.
    let forged = dir.join("forged.token");
    std::fs::write(&forged, format!("airlock-api_{}\n", "A".repeat(43))).unwrap();
    let o = status(&forged);
    assert!(text(&o).contains("Unauthenticated"), "{}", text(&o));

    // In its role: a `trusted` job is beyond submit-untrusted.
    let job = job_dir(
        root.path(),
        "too-trusted",
        "[[steps]]\nrun = \"true\"\n",
        "\"x\"",
    );
    let spec = std::fs::read_to_string(&job)
        .unwrap()
        .replace("profile = \"untrusted-pr\"", "profile = \"trusted\"");
    std::fs::write(&job, spec).unwrap();
    let mut cmd = airlock();
    cmd.arg("submit")
        .arg(&job)
        .args(["--controller", &url, "--token-file"])
        .arg(&token_file);
    let o = run(cmd);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("PermissionDenied") && text(&o).contains("submit-untrusted"),
        "{}",
        text(&o)
    );
}
