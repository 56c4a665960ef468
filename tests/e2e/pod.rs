//! The runner's Kubernetes recipe, without a cluster: `tests/pod/emulate-pod.sh` runs airlock
//! as deploy/kubernetes/runners/deployment.yaml runs the runner (root of its own user
//! namespace of 196608 ids, the manifest's six capabilities, no_new_privs, the shipped
//! seccomp profile, a read-only root but for the emptyDir volumes, a read-only cgroup2 mount),
//! and the example job builds there to a provenance that verifies on the host, with every
//! step still in its own sandbox.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// `airlock run JOB` inside the emulated pod, with its home and outputs in `state`.
fn run_in_pod(state: &Path, run: &Path, job: &Path) -> std::process::Output {
    let mut c = Command::new(repo().join("tests/pod/emulate-pod.sh"));
    c.arg("--state")
        .arg(state)
        .arg("--run")
        .arg(run)
        .arg("--")
        .arg("env")
        .arg(format!("AIRLOCK_HOME={}", state.join("home").display()))
        .arg(env!("CARGO_BIN_EXE_airlock"))
        .arg("run")
        .arg(job)
        .arg("--out")
        .arg(state.join("out"));
    output_with_timeout(&mut c, std::time::Duration::from_secs(600))
}

/// A readable copy of examples/hello, its image named by absolute path, with `extra` steps.
fn hello(dir: &Path, extra: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(repo().join("examples/hello/hello.c"), dir.join("hello.c")).unwrap();
    let toml = std::fs::read_to_string(repo().join("examples/hello/airlock.toml")).unwrap();
    let toml = toml.replace(
        "oci-layout:../base-image/oci",
        &format!("oci-layout:{}", base_image().0.display()),
    );
    let toml = toml.replace("[outputs]", &format!("{extra}\n[outputs]"));
    let file = dir.join("airlock.toml");
    std::fs::write(&file, toml).unwrap();
    let chmod = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(dir)
        .status()
        .unwrap();
    assert!(chmod.success());
    file
}

#[test]
#[ignore = "needs root, the base image, python3-seccomp and the venv: run scripts/test.sh"]
fn the_runner_builds_in_the_emulated_pod_and_its_provenance_verifies() {
    let root = scratch();
    // What a step sees inside the pod: its own user namespace below the pod's (container
    // uid 1000 = pod uid 66536), a read-only /, no capabilities, no_new_privs, seccomp, the
    // rlimits standing in for the cgroup limits.
    let probe = r#"
[[steps]]
name = "sandbox-in-pod"
run = """
set -eu
test "$(id -u)" = 1000
awk '$1 == 0 { exit !($2 == 65536 && $3 == 65536) }' /proc/self/uid_map
grep -q '^CapEff:[[:space:]]*0000000000000000$' /proc/self/status
grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/self/status
grep -q '^Seccomp:[[:space:]]*2$' /proc/self/status
if touch /etc/escape 2>/dev/null; then exit 10; fi
test "$(ulimit -v)" != unlimited
if ls /var/lib/airlock 2>/dev/null | grep -q .; then exit 11; fi
echo sandboxed >/out/pod.txt
"""
"#;
    let job = hello(&root.path().join("hello"), probe);
    let job = {
        // The probe writes an output of its own.
        let text = std::fs::read_to_string(&job).unwrap();
        std::fs::write(
            &job,
            text.replace("paths = [\"hello\"]", "paths = [\"hello\", \"pod.txt\"]"),
        )
        .unwrap();
        job
    };
    let (state, run_dir) = (root.path().join("state"), root.path().join("run"));
    let o = run_in_pod(&state, &run_dir, &job);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "the job in the pod: {t}");
    assert!(
        t.contains("user-namespace root (a pod)"),
        "the runner knew it was in a pod: {t}"
    );
    assert!(
        t.contains("host ids 65536..131072"),
        "the job's ids lie inside the pod's: {t}"
    );

    let out = state.join("out");
    assert_eq!(
        std::fs::read_to_string(out.join("pod.txt")).unwrap(),
        "sandboxed\n"
    );
    let greeting = Command::new(out.join("hello")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&greeting.stdout),
        "Hello from a hermetic airlock build!\n"
    );
    // The provenance made in the pod verifies on the host, with airlock and securesystemslib.
    let key = state.join("home/keys/local-provenance.pub");
    let prov = out.join("hello.intoto.jsonl");
    let mut v = airlock();
    v.arg("verify")
        .arg(out.join("hello"))
        .arg("--provenance")
        .arg(&prov)
        .arg("--key")
        .arg(&key);
    let v = run(v);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let t = third_party_verify(&prov, &key, &out.join("hello"));
    assert_eq!(t.status.code(), Some(0), "{}", text(&t));
}

#[test]
#[ignore = "needs root and python3-seccomp: run scripts/test.sh"]
fn the_emulated_pod_is_what_the_manifest_asks_for() {
    let root = scratch();
    let (state, run_dir) = (root.path().join("state"), root.path().join("run"));
    let mut c = Command::new(repo().join("tests/pod/emulate-pod.sh"));
    c.arg("--state")
        .arg(&state)
        .arg("--run")
        .arg(&run_dir)
        .arg("--")
        .arg("/bin/sh")
        .arg("-c")
        .arg(
            "set -eu; id -u; awk '{print $3}' /proc/self/uid_map; \
         grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
         if touch /etc/x 2>/dev/null; then echo root-writable; fi; \
         if mkdir /sys/fs/cgroup/x 2>/dev/null; then echo cgroup-writable; fi; \
         touch \"$0/ok\" && echo state-writable",
        );
    c.arg(&state);
    let o = run(c);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0", "uid 0 of the pod's namespace: {t}");
    assert_eq!(lines[1], "196608", "{t}");
    // CHOWN, DAC_OVERRIDE, FOWNER, KILL, SETGID, SETUID: 0xeb.
    assert!(t.contains("CapEff:\t00000000000000eb"), "{t}");
    assert!(
        t.contains("NoNewPrivs:\t1") && t.contains("Seccomp:\t2"),
        "{t}"
    );
    assert!(
        !t.contains("root-writable") && !t.contains("cgroup-writable"),
        "{t}"
    );
    assert!(t.contains("state-writable"), "{t}");
}
