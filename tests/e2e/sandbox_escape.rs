//! Steps that try to leave the sandbox fail inside it.

use std::net::TcpListener;
use std::time::Duration;

use crate::common::*;

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn writing_the_root_filesystem_fails() {
    let home = scratch();
    let steps = r#"[[steps]]
run = "if touch /pwned 2>/dev/null || touch /etc/pwned 2>/dev/null || touch /usr/bin/pwned 2>/dev/null; then exit 0; else echo read-only; exit 42; fi"
"#;
    let job = job_dir(home.path(), "rofs", steps, "\"x\"");
    let o = airlock_run(&job, home.path(), &home.path().join("out"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("exit code 42"),
        "writes to / must fail with EROFS"
    );
    // And nothing reached the shared image cache.
    let cache = home.path().join("runner/images/rootfs");
    for entry in std::fs::read_dir(&cache).unwrap() {
        let root = entry.unwrap().path();
        assert!(!root.join("pwned").exists());
        assert!(!root.join("etc/pwned").exists());
    }
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn tcp_connections_fail_and_only_loopback_exists() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let home = scratch();
    let steps = format!(
        r#"[[steps]]
run = """
ls /sys/class/net > /out/interfaces
if timeout 5 bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>/dev/null; then exit 0; fi
if timeout 5 bash -c 'echo hi > /dev/tcp/10.0.2.2/80' 2>/dev/null; then exit 0; fi
echo no network; exit 42
"""
"#
    );
    let job = job_dir(home.path(), "nonet", &steps, "\"interfaces\"");
    let o = airlock_run(&job, home.path(), &home.path().join("out"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("exit code 42"),
        "connections must fail inside"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        listener.accept().is_err(),
        "the host listener must never see a connection"
    );
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn seccomp_blocks_new_user_namespaces_and_mounts() {
    let home = scratch();
    let steps = r#"[[steps]]
run = """
if unshare -U true 2>/dev/null; then echo unshare worked; exit 0; fi
if unshare -m true 2>/dev/null; then echo unshare -m worked; exit 0; fi
exit 42
"""
"#;
    let job = job_dir(home.path(), "seccomp", steps, "\"x\"");
    let o = airlock_run(&job, home.path(), &home.path().join("out"));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("exit code 42"));
}
