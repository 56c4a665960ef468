//! A git source over the network transport a hosted runner uses: a bare repository served
//! by `git daemon` on loopback, fetched at a pinned commit with `file://` disallowed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_runner::fetch::git_source::{GitTransports, checkout, resolve_ref};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "-C"])
        .arg(dir)
        .args(args)
        .env("GIT_COMMITTER_DATE", "1600000000 +0000")
        .env("GIT_AUTHOR_DATE", "1600000000 +0000")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_pinned_commit_is_fetched_over_git_daemon_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("README"), "pinned\n").unwrap();
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "one"]);
    let commit = git(&src, &["rev-parse", "HEAD"]);
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let ok = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(served.join("app.git"))
        .status()
        .unwrap()
        .success();
    assert!(ok);

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _daemon = Kill(
        Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", served.display()))
            .arg(&served)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("git://127.0.0.1:{port}/app.git");
    // Ready when it serves the repository (polled, bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let pinned = loop {
        match resolve_ref(&url, "main", GitTransports::Network) {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "git daemon did not serve: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(pinned.hex(), commit);
    let work = dir.path().join("work");
    let epoch = checkout(&url, &pinned, &work, GitTransports::Network).unwrap();
    assert_eq!(epoch, 1_600_000_000);
    assert_eq!(
        std::fs::read_to_string(work.join("README")).unwrap(),
        "pinned\n"
    );
    assert!(!work.join(".git").exists());
}
