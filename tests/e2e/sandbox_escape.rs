//! The escape suite: build steps that try to leave the sandbox, each asserting it was
//! blocked, against the real sandbox through `airlock run`.
//!
//! Syscall-level attempts are C programs (`tests/probe/attempts.c`) compiled inside the
//! sandbox with the image's gcc; each exits 42 when it was blocked with the expected errno,
//! so a step "failed with exit code 42" is the proof. No test sends traffic anywhere but this
//! machine's loopback: the only network targets are a listener on the host's 127.0.0.1 and
//! route lookups (a UDP `connect` sends no packet).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;

/// Image cache shared by the escape tests: the rootfs is unpacked once, not once per test.
const SHARED_IMAGES: &str = "/var/tmp/airlock-e2e/image-cache";

/// A scratch `AIRLOCK_HOME` whose runner uses the shared image cache.
pub fn home() -> tempfile::TempDir {
    let home = scratch();
    let cache = Path::new(SHARED_IMAGES);
    std::fs::create_dir_all(cache).unwrap();
    std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runner = home.path().join("runner");
    std::fs::create_dir_all(&runner).unwrap();
    std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(cache, runner.join("images")).unwrap();
    home
}

/// A job directory with `airlock.toml` (`body`: steps and optional `[resources]`) and the
/// probe sources next to it.
pub fn job(home: &Path, name: &str, body: &str, outputs: &str) -> PathBuf {
    let file = job_dir(home, name, body, outputs);
    let dir = file.parent().unwrap();
    for src in ["probe.c", "attempts.c"] {
        std::fs::copy(repo().join("tests/probe").join(src), dir.join(src)).unwrap();
    }
    file
}

/// Runs `body` as a job in a fresh home and returns the output.
fn run_job(name: &str, body: &str, outputs: &str) -> Output {
    let home = home();
    let file = job(home.path(), name, body, outputs);
    airlock_run(&file, home.path(), &home.path().join("out"))
}

/// Steps that compile `attempts.c` and run one attempt.
fn attempt_steps(attempt: &str, arg: &str) -> String {
    format!(
        r#"[[steps]]
name = "compile"
run = "gcc -O2 -Wall -o /work/attempts attempts.c"

[[steps]]
name = "attempt"
argv = ["/work/attempts", "{attempt}"{arg}]
"#,
        arg = if arg.is_empty() {
            String::new()
        } else {
            format!(", \"{arg}\"")
        }
    )
}

/// The job failed because its last step exited 42: the attempt was blocked.
#[track_caller]
fn assert_blocked(o: &Output) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "the build must fail: {t}");
    assert!(
        t.contains("failed with exit code 42"),
        "the attempt must report it was blocked (exit 42): {t}"
    );
    assert!(!t.contains("ESCAPED"), "{t}");
}

/// A shell attempt: the script exits 42 when everything it tried was refused.
fn shell(name: &str, script: &str) -> Output {
    run_job(
        name,
        &format!("[[steps]]\nrun = '''\n{script}\n'''\n"),
        "\"x\"",
    )
}

// 1
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn writing_the_root_filesystem_fails() {
    let o = shell(
        "write-root",
        r#"for f in /pwned /bin/pwned /var/pwned /usr/pwned; do
  if touch "$f" 2>/dev/null; then echo "ESCAPED wrote $f"; exit 0; fi
  touch "$f" 2>&1 | grep -q 'Read-only file system' || { echo "ODD $f"; touch "$f"; exit 3; }
done
mkdir /newdir 2>/dev/null && { echo ESCAPED mkdir; exit 0; }
exit 42"#,
    );
    assert_blocked(&o);
}

// 2
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn writing_etc_fails() {
    let o = shell(
        "write-etc",
        r#"echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd 2>/dev/null && { echo ESCAPED passwd; exit 0; }
touch /etc/ld.so.preload 2>/dev/null && { echo ESCAPED preload; exit 0; }
ln -s /tmp/x /etc/evil 2>/dev/null && { echo ESCAPED symlink; exit 0; }
exit 42"#,
    );
    assert_blocked(&o);
}

// 3
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn writing_the_image_leaves_the_shared_cache_unchanged() {
    let o = shell(
        "write-image",
        r#"for f in /usr/bin/gcc /usr/lib/x86_64-linux-gnu/libc.so.6 /bin/sh; do
  { echo evil >> "$f"; } 2>/dev/null && { echo "ESCAPED $f"; exit 0; }
  chmod 777 "$f" 2>/dev/null && { echo "ESCAPED chmod $f"; exit 0; }
done
touch /usr/bin/pwned 2>/dev/null && { echo ESCAPED; exit 0; }
exit 42"#,
    );
    assert_blocked(&o);
    // Every finished rootfs in the cache (named by manifest digest; staging dirs skipped).
    let mut checked = 0;
    for entry in std::fs::read_dir(Path::new(SHARED_IMAGES).join("rootfs")).unwrap() {
        let root = entry.unwrap().path();
        let name = root.file_name().unwrap().to_string_lossy().into_owned();
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        assert!(!root.join("usr/bin/pwned").exists(), "{}", root.display());
        let sh = std::fs::read(root.join("usr/bin/dash")).unwrap();
        assert!(!sh.ends_with(b"evil\n"));
        checked += 1;
    }
    assert!(checked > 0);
}

// 4
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn host_files_cannot_be_read() {
    // A world-readable canary on the host: no path inside reaches it.
    let canary_dir = scratch();
    let canary = canary_dir.path().join("canary.txt");
    let secret = format!("canary-{}", std::process::id());
    std::fs::write(&canary, &secret).unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = shell(
        "host-files",
        &format!(
            r#"c={canary}
for p in "$c" "/proc/1/root$c" "/proc/self/root$c" "/work/../../../../..$c" "/out/../..$c"; do
  if cat "$p" 2>/dev/null; then echo "ESCAPED read $p"; exit 0; fi
done
cat /etc/shadow 2>/dev/null && {{ echo ESCAPED shadow; exit 0; }}
grep -rs canary- /etc /var /root /home /mnt /srv /opt 2>/dev/null && {{ echo ESCAPED found; exit 0; }}
exit 42"#,
            canary = canary.display()
        ),
    );
    assert_blocked(&o);
    assert!(!text(&o).contains(&secret));
}

// 5
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn runner_state_and_signing_keys_cannot_be_read() {
    let home = home();
    let keys = home.path().join("keys");
    // The signing key `airlock run` uses, created up front so the probe knows its bytes.
    std::fs::create_dir_all(&keys).unwrap();
    airlock_attest::write_keypair(&keys, "local-provenance").unwrap();
    let pem = std::fs::read_to_string(keys.join("local-provenance.key")).unwrap();
    let secrets: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(|l| {
            format!(
                "\"--secret-sha256\", \"{}:{}\"",
                l.len(),
                airlock_attest::Sha256Digest::of(l.as_bytes()).hex()
            )
        })
        .collect();
    let state = home.path().join("runner");
    let file = job(
        home.path(),
        "host-keys",
        &format!(
            r#"[[steps]]
name = "paths"
run = '''
for p in {keys}/local-provenance.key {keys} {state} {state}/jobs {state}/sandbox /var/lib/airlock /run/airlock; do
  if ls "$p" >/dev/null 2>&1 || cat "$p" >/dev/null 2>&1; then echo "ESCAPED $p"; exit 0; fi
done
if find / -xdev \( -name '*.key' -o -name 'runner.secret' -o -name 'runner.token' -o -name 'local-provenance*' \) 2>/dev/null | grep .; then echo ESCAPED; exit 0; fi
'''

[[steps]]
name = "compile"
run = "gcc -O2 -Wall -o /work/probe probe.c"

[[steps]]
name = "scan"
run = "/work/probe {secrets} && echo clean > /out/x"
"#,
            keys = keys.display(),
            state = state.display(),
            secrets = secrets
                .iter()
                .map(|s| s.replace('"', "").replace(", ", " "))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "\"x\"",
    );
    let o = airlock_run(&file, home.path(), &home.path().join("out"));
    // The probe passes: no line of the key and no PEM private key anywhere inside.
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("ok no-secrets"), "{t}");
    assert!(t.contains("PASS: 0 failed"), "{t}");
    assert!(!t.contains("ESCAPED"), "{t}");
    assert!(keys.join("local-provenance.key").exists());
}

// 6
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn tcp_connections_to_the_host_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let o = shell(
        "host-port",
        &format!(
            r#"if timeout 5 bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo ESCAPED; exit 0; fi
if timeout 5 bash -c 'echo hi > /dev/tcp/localhost/{port}' 2>/dev/null; then echo ESCAPED; exit 0; fi
exit 42"#
        ),
    );
    assert_blocked(&o);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        listener.accept().is_err(),
        "the host listener must never see a connection"
    );
}

// 7
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn only_loopback_exists_and_there_is_no_route() {
    let o = run_job(
        "no-route",
        r#"[[steps]]
run = '''
ls /sys/class/net > /out/interfaces
cat /proc/net/route /proc/net/ipv6_route
[ "$(ls /sys/class/net)" = lo ] || { echo ESCAPED interfaces; exit 0; }
[ "$(wc -l < /proc/net/route)" -le 1 ] || { echo ESCAPED route; exit 0; }
grep -v ' lo$' /proc/net/ipv6_route && { echo ESCAPED ipv6 route; exit 0; }
exit 42
'''
"#,
        "\"interfaces\"",
    );
    assert_blocked(&o);
}

// 8
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn dns_resolution_fails() {
    // No resolv.conf in the image: glibc asks 127.0.0.1:53 of the sandbox's own `lo`.
    let o = shell(
        "dns",
        r#"if timeout 10 getent hosts example.com; then echo ESCAPED; exit 0; fi
if timeout 10 getent ahosts airlock-ci.invalid; then echo ESCAPED; exit 0; fi
exit 42"#,
    );
    assert_blocked(&o);
}

// 9
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn mount_is_refused() {
    let o = run_job("mount", &attempt_steps("mount", ""), "\"x\"");
    assert_blocked(&o);
    let o = shell(
        "mount-cli",
        "mount -t tmpfs none /mnt 2>&1 && { echo ESCAPED; exit 0; }\nexit 42",
    );
    assert_blocked(&o);
}

// 10
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn new_user_namespaces_are_refused() {
    assert_blocked(&run_job("userns", &attempt_steps("userns", ""), "\"x\""));
    let o = shell(
        "unshare-cli",
        r#"unshare -U true && { echo ESCAPED unshare -U; exit 0; }
unshare -Ur id && { echo ESCAPED unshare -Ur; exit 0; }
unshare -m true && { echo ESCAPED unshare -m; exit 0; }
exit 42"#,
    );
    assert_blocked(&o);
}

// 11
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn setns_is_refused() {
    assert_blocked(&run_job("setns", &attempt_steps("setns", ""), "\"x\""));
}

// 12
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn ptrace_of_a_sibling_is_refused() {
    assert_blocked(&run_job("ptrace", &attempt_steps("ptrace", ""), "\"x\""));
}

// 13
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn keyctl_is_refused() {
    assert_blocked(&run_job("keyctl", &attempt_steps("keyctl", ""), "\"x\""));
}

// 14
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn bpf_is_refused() {
    assert_blocked(&run_job("bpf", &attempt_steps("bpf", ""), "\"x\""));
}

// 15
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn perf_modules_kexec_userfaultfd_and_io_uring_are_refused() {
    assert_blocked(&run_job("kernel", &attempt_steps("kernel", ""), "\"x\""));
}

// 15b
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn system_calls_through_the_i386_abi_are_killed() {
    assert_blocked(&run_job("i386", &attempt_steps("i386", ""), "\"x\""));
}

// 16
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn processes_outside_the_sandbox_cannot_be_signalled() {
    let mut sleeper = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = sleeper.id();
    let o = run_job("kill", &attempt_steps("kill", &pid.to_string()), "\"x\"");
    let alive = sleeper.try_wait().unwrap().is_none();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_blocked(&o);
    assert!(
        alive,
        "the host process {pid} must survive the step's kill attempts"
    );
}

// 17
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn setuid_binaries_gain_nothing() {
    assert_blocked(&run_job("setuid", &attempt_steps("setuid", ""), "\"x\""));
}

// 18
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn device_nodes_cannot_be_created_and_dev_is_minimal() {
    let mut body = attempt_steps("devices", "");
    // Before the attempt: /dev holds only the standard nodes.
    body = body.replace(
        "[[steps]]\nname = \"attempt\"",
        r#"[[steps]]
name = "dev-listing"
run = '''
extra=$(find /dev -mindepth 1 \( -type b -o -type c \) | grep -v -E '^/dev/(null|zero|full|random|urandom|tty|ptmx|pts/ptmx)$')
[ -z "$extra" ] || { echo "ESCAPED unexpected devices: $extra"; exit 0; }
'''

[[steps]]
name = "attempt""#,
    );
    assert_blocked(&run_job("devices", &body, "\"x\""));
}

// 19
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn proc_and_sys_are_masked_and_read_only() {
    let o = shell(
        "masked",
        r#"for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
  if [ -e "$f" ] && [ -s "$f" ] && head -c 16 "$f" >/dev/null 2>&1 && [ -n "$(head -c 16 "$f" 2>/dev/null)" ]; then echo "ESCAPED read $f"; exit 0; fi
done
ls /sys/firmware 2>/dev/null | grep . && { echo ESCAPED firmware; exit 0; }
echo 1 > /proc/sys/kernel/panic 2>/dev/null && { echo ESCAPED sysctl; exit 0; }
echo b > /proc/sysrq-trigger 2>/dev/null && { echo ESCAPED sysrq; exit 0; }
echo x > /sys/kernel/uevent_helper 2>/dev/null && { echo ESCAPED sysfs; exit 0; }
exit 42"#,
    );
    assert_blocked(&o);
}

// 20
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_fork_bomb_is_stopped_by_the_pids_limit() {
    let started = Instant::now();
    let o = run_job(
        "fork-bomb",
        r#"[[steps]]
run = '''
bomb() { bomb | bomb & }; bomb
sleep 3
# The build "fails" afterwards, as one would: the runner says why.
exit 1
'''

[resources]
pids = 64
"#,
        "\"x\"",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("pids-limit: step `step-1` reached its process limit of 64"),
        "{t}"
    );
    assert!(started.elapsed() < Duration::from_secs(90));
}

// 21
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_memory_bomb_is_reported_as_out_of_memory() {
    let o = run_job(
        "memory-bomb",
        r#"[[steps]]
run = "head -c 1G /dev/zero | tail > /dev/null"

[resources]
memory = "64MiB"
"#,
        "\"x\"",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("out-of-memory: step `step-1` was killed by the kernel's OOM killer at its memory limit of 64MiB"),
        "{t}"
    );
}

// 22
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn filling_tmp_stops_at_its_cap_with_enospc() {
    let o = run_job(
        "fill-tmp",
        r#"[[steps]]
run = "dd if=/dev/zero of=/tmp/fill bs=1M count=100"

[resources]
tmp = "16MiB"
"#,
        "\"x\"",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("No space left on device"), "{t}");
    assert!(
        t.contains("tmp-full: step `step-1` filled /tmp to its cap of 16MiB"),
        "{t}"
    );
}

// 23
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn an_infinite_loop_times_out() {
    let home = home();
    let file = job(
        home.path(),
        "loop",
        "[[steps]]\nrun = \"while :; do :; done\"\n",
        "\"x\"",
    );
    let toml = std::fs::read_to_string(&file)
        .unwrap()
        .replace("timeout = \"2m\"", "timeout = \"3s\"");
    std::fs::write(&file, toml).unwrap();
    let started = Instant::now();
    let o = airlock_run(&file, home.path(), &home.path().join("out"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("timed_out"), "{t}");
    assert!(
        t.contains("timed-out: step `step-1` was killed: the job exceeded its timeout of 3s"),
        "{t}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

// 24
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn background_processes_die_with_their_step() {
    let o = run_job(
        "background",
        r#"[[steps]]
name = "leave-a-daemon"
run = '''
setsid sh -c 'while :; do date +%s%N > /work/beat; sleep 0.1; done' </dev/null >/dev/null 2>&1 &
nohup sh -c 'sleep 2; echo late > /work/late' </dev/null >/dev/null 2>&1 &
sleep 0.5
'''

[[steps]]
name = "check"
run = '''
a=$(cat /work/beat); sleep 3; b=$(cat /work/beat)
[ "$a" = "$b" ] || { echo "ESCAPED the daemon is still writing"; exit 0; }
[ -e /work/late ] && { echo "ESCAPED the nohup process survived"; exit 0; }
exit 42
'''
"#,
        "\"x\"",
    );
    assert_blocked(&o);
}

// 25
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn job_b_cannot_read_job_a_workspace_while_both_run() {
    let home_a = home();
    let home_b = home();
    let secret = format!("secret-of-a-{}", std::process::id());
    let file_a = job(
        home_a.path(),
        "job-a",
        &format!(
            r#"[[steps]]
run = '''
echo {secret} > /work/secret
cat /proc/self/uid_map > /out/uid_map
i=0; while [ ! -e /work/done ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
'''
"#
        ),
        "\"uid_map\"",
    );
    let a_rooms = home_a.path().join("runner/runners");
    let out_a = home_a.path().join("out");
    let a = std::thread::spawn({
        let (file_a, home_a) = (file_a.clone(), home_a.path().to_owned());
        move || airlock_run(&file_a, &home_a, &out_a)
    });
    // Wait until A runs and its secret is in its workspace.
    let deadline = Instant::now() + Duration::from_secs(60);
    let a_work = loop {
        // runner/runners/<room>/jobs/<job>.<attempt>/work
        let found = std::fs::read_dir(&a_rooms)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|room| std::fs::read_dir(room.path().join("jobs")).ok())
            .flatten()
            .flatten()
            .map(|attempt| attempt.path().join("work"))
            .find(|w| w.join("secret").exists());
        if let Some(w) = found {
            break w;
        }
        assert!(Instant::now() < deadline, "job A did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    let file_b = job(
        home_b.path(),
        "job-b",
        &format!(
            r#"[[steps]]
run = '''
cat /proc/self/uid_map > /out/uid_map
for p in {a_work}/secret {a_work} /proc/*/root/work/secret; do
  if cat "$p" 2>/dev/null | grep -q secret-of-a; then echo "ESCAPED $p"; exit 0; fi
done
if grep -rs -D skip secret-of-a / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null | grep -v /work/airlock.toml; then echo ESCAPED; exit 0; fi
ls /proc | grep -E '^[0-9]+$' | wc -l
exit 42
'''
"#,
            a_work = a_work.display()
        ),
        "\"uid_map\"",
    );
    let o = airlock_run(&file_b, home_b.path(), &home_b.path().join("out"));
    // Let A finish.
    std::fs::write(a_work.join("done"), "").unwrap();
    assert_blocked(&o);
    let oa = a.join().unwrap();
    assert_eq!(oa.status.code(), Some(0), "{}", text(&oa));
    let map_a = std::fs::read_to_string(home_a.path().join("out/uid_map")).unwrap();
    let host_a: u64 = map_a.split_whitespace().nth(1).unwrap().parse().unwrap();
    // B's map is in its log (its job failed, so nothing was fetched): compare with the
    // range the runner logged.
    let t = text(&o);
    let b_line = t
        .lines()
        .find(|l| l.contains("host ids "))
        .expect("the runner logs the job's host ids");
    let b_range = b_line.rsplit("host ids ").next().unwrap();
    let (lo, hi) = b_range.trim().split_once("..").unwrap();
    let (lo, hi): (u64, u64) = (lo.parse().unwrap(), hi.parse().unwrap());
    assert!(
        host_a + 65536 <= lo || hi <= host_a,
        "jobs A ({host_a}) and B ({lo}..{hi}) must not share host ids"
    );
}

// 26
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn an_out_symlink_to_etc_passwd_is_refused() {
    let o = run_job(
        "out-symlink",
        "[[steps]]\nrun = \"ln -s /etc/passwd /out/hello\"\n",
        "\"hello\"",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("output `hello` refused: it is a symlink"), "{t}");
    assert!(!t.contains("root:x:0:0"), "{t}");
}

// 27
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_hard_link_trick_in_out_is_refused() {
    let o = run_job(
        "out-hardlink",
        r#"[[steps]]
run = '''
ln /etc/passwd /out/passwd 2>/dev/null && echo "linked /etc/passwd"
ln /work/airlock.toml /out/toml 2>/dev/null && echo "linked across mounts"
echo a > /out/a && ln /out/a /out/hello
'''
"#,
        "\"hello\"",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("output `hello` refused: it has several hard links"),
        "{t}"
    );
    assert!(!t.contains("linked /etc/passwd"), "{t}");
    assert!(!t.contains("linked across mounts"), "{t}");
}

// 28
#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_job_above_its_profile_ceilings_is_refused() {
    let o = run_job(
        "greedy",
        "[[steps]]\nrun = \"true\"\n\n[resources]\nmemory = \"64GiB\"\npids = 100000\n",
        "\"x\"",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("refused: the job asks for more than profile `untrusted-pr` allows: resources.memory = 64GiB > 4GiB; resources.pids = 100000 > 1024"),
        "{t}"
    );
}
