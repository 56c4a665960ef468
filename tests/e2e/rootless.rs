//! The rootless runner: `airlock run` started by an unprivileged user (user namespaces
//! only, ids from its `/etc/subuid` range, rlimits instead of cgroup limits).
//!
//! The test, as root, creates the user `airlock-rootless` idempotently with the subordinate
//! range 3000000..3131072 (two slots of 65536; disjoint from the root runner's default slots
//! 1000000 + n*65536, n < 16, which end at 2048576), delegates its cgroup
//! (`scripts/rootless-cgroups.sh`), and runs `airlock run` as that user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{job_dir, run, scratch, text};

const USER: &str = "airlock-rootless";
const SUB_START: u64 = 3_000_000;
const SUB_COUNT: u64 = 131_072;

/// Creates the user, its subordinate ranges and its delegated cgroup (idempotent).
fn setup_user() -> u32 {
    let exists = Command::new("id").args(["-u", USER]).output().unwrap();
    if !exists.status.success() {
        let o = run({
            let mut c = Command::new("useradd");
            c.args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ]);
            c
        });
        assert!(o.status.success(), "useradd: {}", text(&o));
    }
    let has_range = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{USER}:")))
    };
    if !has_range("/etc/subuid") || !has_range("/etc/subgid") {
        let range = format!("{SUB_START}-{}", SUB_START + SUB_COUNT - 1);
        let o = run({
            let mut c = Command::new("usermod");
            c.args(["--add-subuids", &range, "--add-subgids", &range, USER]);
            c
        });
        assert!(o.status.success(), "usermod: {}", text(&o));
    }
    let o = run({
        let mut c = Command::new(crate::common::repo().join("scripts/rootless-cgroups.sh"));
        c.arg(USER);
        c
    });
    assert!(o.status.success(), "rootless-cgroups.sh: {}", text(&o));
    let uid = Command::new("id").args(["-u", USER]).output().unwrap();
    String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap()
}

/// `chown -R USER` of `path`.
fn give(path: &Path) {
    let o = Command::new("chown")
        .arg("-R")
        .arg(format!("{USER}:"))
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "chown: {}", text(&o));
}

/// `airlock run JOB --out OUT` as USER, with a copy of the binary and AIRLOCK_HOME in `root`
/// (all of `root` given to USER first).
fn run_as_user(root: &Path, job: &Path, out: &Path) -> Output {
    run_as_user_with(root, job, out, &[])
}

/// [`run_as_user`] with more flags.
fn run_as_user_with(root: &Path, job: &Path, out: &Path, extra: &[String]) -> Output {
    // The binary under target/ may not be readable by the user: give it its own copy.
    let exe = root.join("airlock");
    std::fs::copy(env!("CARGO_BIN_EXE_airlock"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    give(root);
    let mut c = Command::new("runuser");
    c.args(["-u", USER, "--", "env"])
        .arg(format!("AIRLOCK_HOME={}", home.display()))
        .arg(&exe)
        .arg("run")
        .arg(job)
        .arg("--out")
        .arg(out)
        .args(extra);
    run(c)
}

#[test]
#[ignore = "needs root (to create the user) and the base image: run scripts/test.sh"]
fn rootless_run_keeps_the_sandbox_guarantees() {
    let uid = setup_user();
    let tmp = scratch();
    let root = tmp.path();
    let job = job_dir(
        root,
        "rootless",
        r#"[[steps]]
name = "probe"
run = """
cat /proc/self/uid_map > /out/uid_map
id -u > /out/uid
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status > /out/status
if touch /rootfs-probe 2>/dev/null; then echo writable; else echo read-only; fi > /out/root
tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /out/ifaces
grep -E '^Max (processes|address space|file size) ' /proc/self/limits | awk '{print $(NF-1)}' > /out/rlimits
"""
"#,
        r#""uid_map", "uid", "status", "root", "ifaces", "rlimits""#,
    );
    let out = root.join("out");
    let o = run_as_user(root, &job, &out);
    let log = text(&o);
    assert!(o.status.success(), "rootless airlock run failed:\n{log}");
    assert!(
        log.contains("rootless: cgroup limits unavailable; using rlimits"),
        "the job log must state the fallback:\n{log}"
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();

    // uid 1000 inside, mapped into the user's subordinate range.
    assert_eq!(read("uid").trim(), "1000");
    let maps: Vec<Vec<u64>> = read("uid_map")
        .lines()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect();
    let step = maps
        .iter()
        .find(|m| m[0] <= 1000 && 1000 < m[0] + m[2])
        .expect("uid 1000 is mapped");
    let host = step[1] + (1000 - step[0]);
    let base = host - 1000;
    assert!(
        (SUB_START..SUB_START + SUB_COUNT).contains(&host)
            && (base - SUB_START).is_multiple_of(65_536),
        "uid 1000 maps to {host}, not to a slot of {USER}'s range: {maps:?}"
    );
    let mapped: u64 = maps.iter().map(|m| m[2]).sum();
    assert_eq!(mapped, 65_536, "one slot of 65536 ids: {maps:?}");
    assert!(
        maps.iter()
            .all(|m| m[1] >= SUB_START && m[1] + m[2] <= SUB_START + SUB_COUNT),
        "nothing outside the subordinate range (in particular not uid {uid}): {maps:?}"
    );

    // The fallback for the cgroup limits: processes, memory, file size are all bounded.
    let rlimits = read("rlimits");
    assert!(
        rlimits
            .split_whitespace()
            .all(|v| v.parse::<u64>().is_ok_and(|n| n > 0)),
        "RLIMIT_NPROC, RLIMIT_AS and RLIMIT_FSIZE must be set: {rlimits}"
    );
    assert_eq!(rlimits.split_whitespace().count(), 3, "{rlimits}");
    assert_eq!(read("root").trim(), "read-only");
    assert_eq!(read("ifaces").trim(), "lo", "no interface but lo");
    let status = read("status");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            status.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} not empty:\n{status}"
        );
    }
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
}

#[test]
#[ignore = "needs root (to create the user) and the base image: run scripts/test.sh"]
fn rootless_steps_get_build_tokens_from_the_broker() {
    use crate::build_token_sandbox::{CLIENT_C, parse_response};
    setup_user();
    let tmp = scratch();
    let root = tmp.path();
    let job = job_dir(
        root,
        "rootless-tokens",
        "[[steps]]\nrun = '''\nset -e\n\
         gcc -O0 -o /tmp/client /work/client.c\n\
         stat -c '%a %u' /run/airlock/oidc.sock > /out/sock.txt\n\
         /tmp/client '/token?audience=sts.example' > /out/ok.txt\n\
         /tmp/client '/token?audience=evil.example' > /out/forbidden.txt\n'''\n",
        r#""sock.txt", "ok.txt", "forbidden.txt""#,
    );
    let toml = std::fs::read_to_string(&job)
        .unwrap()
        .replace("profile = \"untrusted-pr\"", "profile = \"trusted\"")
        + "\n[oidc]\naudiences = [\"sts.example\"]\n";
    std::fs::write(&job, toml).unwrap();
    std::fs::write(job.parent().unwrap().join("client.c"), CLIENT_C).unwrap();
    let out = root.join("out");
    let o = run_as_user(root, &job, &out);
    let log = text(&o);
    assert!(o.status.success(), "rootless airlock run failed:\n{log}");
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    // The socket belongs to the step (uid 1000 inside) and nobody else may write to it.
    assert_eq!(read("sock.txt").trim(), "755 1000", "{}", read("sock.txt"));
    let (status, body) = parse_response(&read("ok.txt"));
    assert_eq!(status, 200, "{}", read("ok.txt"));
    let token = body["value"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a compact JWS");
    assert!(
        !log.contains(token),
        "the token leaked into the run's output"
    );
    assert_eq!(parse_response(&read("forbidden.txt")).0, 403);
}

#[test]
#[ignore = "needs root (to create the user), the base image and the deps fixtures: run scripts/test.sh"]
fn rootless_steps_get_the_lockfile_packages_read_only() {
    setup_user();
    let mirror = crate::deps_mirror::Mirror::with_fixtures();
    let tmp = scratch();
    let root = tmp.path();
    let job = crate::deps::listing_job(root, "rootless-deps", "untrusted-pr");
    let out = root.join("out");
    let o = run_as_user_with(root, &job, &out, &mirror.flags());
    let log = text(&o);
    assert!(
        o.status.success(),
        "rootless airlock run with [[deps]] failed:\n{log}"
    );
    let vendor = std::fs::read_to_string(out.join("vendor.txt")).unwrap();
    assert!(
        vendor.lines().any(|l| l.starts_with("serde_json-")),
        "{vendor}"
    );
}

#[test]
#[ignore = "needs root (to create the user) and the base image: run scripts/test.sh"]
fn rootless_runs_restore_and_save_caches() {
    setup_user();
    let tmp = scratch();
    let root = tmp.path();
    let job = crate::caches::cache_job(root, "trusted");
    let mut stamps = Vec::new();
    for n in 1..=2 {
        let out = root.join(format!("out-{n}"));
        let o = run_as_user(root, &job, &out);
        assert!(o.status.success(), "rootless run {n}:\n{}", text(&o));
        let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
        stamps.push((read("previous"), read("previous-work"), read("stamp")));
    }
    assert_eq!(stamps[0].0.trim(), "none");
    assert_eq!(
        stamps[1].0, stamps[0].2,
        "the second rootless run did not restore /cache"
    );
    assert_eq!(
        stamps[1].1.trim(),
        format!("{} (work)", stamps[0].2.trim()),
        "the second rootless run did not restore /work/build"
    );
}
