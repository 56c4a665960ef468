//! Issue 22: the job's zygotes fork every step's helper, the next step's container is
//! created while the current step runs, and each step still starts in a fresh container:
//! new namespaces of every kind, its own seccomp filter, a cgroup namespace rooted at its
//! zygote's cgroup, its own limits, and nothing of the previous step's processes. A
//! container prepared for a step that never runs is discarded.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::host::*;

/// What each step records about itself, one `key value` per line.
const PROBE: &str = r#"for ns in user mnt pid net ipc uts cgroup; do echo "ns.$ns $(readlink /proc/self/ns/$ns)"; done; echo "seccomp $(grep '^Seccomp:' /proc/self/status | cut -f2)"; echo "cgroup $(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\n' ' ')"; echo "pid $$"; echo "procs $(ls -d /proc/[0-9]* | wc -l)"; echo "tmp $(ls /tmp | wc -l)"; echo "msgq $(tail -n +2 /proc/sysvipc/msg | wc -l)""#;

fn probe_step(i: usize, background: bool) -> String {
    // The first step leaves a process, a file in /tmp and a System V message queue
    // behind: none of them may survive into the next step.
    let extra = if background {
        "sleep 300 & touch /tmp/left-behind; ipcmk -Q >/dev/null; "
    } else {
        ""
    };
    format!(
        "[[steps]]\nname = \"probe-{i}\"\nrun = '''{extra}{{ {PROBE}; }} > /out/probe-{i}.txt'''\n"
    )
}

fn read_probe(out: &std::path::Path, i: usize) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(out.join(format!("probe-{i}.txt")))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn every_step_of_a_job_gets_fresh_namespaces_seccomp_and_an_empty_pid_namespace() {
    let home = scratch();
    let steps = format!(
        "{}\n{}\n{}",
        probe_step(0, true),
        probe_step(1, false),
        probe_step(2, false)
    );
    let job = job_dir(
        home.path(),
        "isolation",
        &steps,
        r#""probe-0.txt", "probe-1.txt", "probe-2.txt""#,
    );
    let out = home.path().join("out");
    let o = airlock_run(&job, home.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let probes: Vec<_> = (0..3).map(|i| read_probe(&out, i)).collect();
    // Namespace inode numbers are recycled once a namespace is freed, and whether a step's
    // container was created before the previous step's namespaces were freed is a matter of
    // timing, so freshness is shown by what a namespace holds (below), and here by none of
    // them being the host's (the zygotes' and the runner's).
    for kind in ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        for (i, p) in probes.iter().enumerate() {
            assert_ne!(
                p[&format!("ns.{kind}")],
                host.to_str().unwrap(),
                "step {i} is in the host's {kind} namespace"
            );
        }
    }
    for (i, p) in probes.iter().enumerate() {
        // 2: SECCOMP_MODE_FILTER, loaded by the step's own container init.
        assert_eq!(p["seccomp"], "2", "step {i}");
        // The cgroup namespace is rooted at the job's cgroup: no host path is visible.
        assert_eq!(p["cgroup"], "/", "step {i}");
        // The shell is the pid namespace's first process.
        assert_eq!(p["pid"], "1", "step {i}");
    }
    // The sleep the first step left behind died with its pid namespace: the next step
    // sees only its own processes (the shell, its pipeline).
    let procs: u32 = probes[1]["procs"].parse().unwrap();
    assert!(procs <= 4, "step 1 sees {procs} processes");
    assert_eq!(probes[0]["tmp"], "1", "step 0 made its /tmp file");
    assert_eq!(probes[0]["msgq"], "1", "step 0 made its message queue");
    for (i, p) in probes.iter().enumerate().skip(1) {
        assert_eq!(p["tmp"], "0", "step {i} sees an earlier step's /tmp");
        assert_eq!(p["msgq"], "0", "step {i} sees an earlier step's IPC queue");
    }
}

/// Waits (at most 2 minutes) until `ready` holds, or panics with `what` and the log.
fn wait_until(log: &Path, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} never happened:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn the_next_step_is_created_while_a_step_runs_and_discarded_when_that_step_fails() {
    let root = scratch();
    let home = root.path().join("home");
    let job = job_dir(
        root.path(),
        "pipelined",
        "[[steps]]\nname = \"slow-fail\"\nrun = \"sleep 2; exit 3\"\n\n\
         [[steps]]\nname = \"never\"\nrun = \"touch /out/never-ran\"\n\n\
         [[steps]]\nname = \"never-either\"\nrun = \"true\"\n",
        r#""never-ran""#,
    );
    let log = root.path().join("run.log");
    let mut child = airlock()
        .arg("run")
        .arg(&job)
        .arg("--out")
        .arg(root.path().join("out"))
        .env("AIRLOCK_HOME", &home)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let state = home.join("runner");
    wait_until(&log, "the first step", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("==> step 1")
    });
    let rooms = rooms(&state);
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let sandbox = state.join("runners").join(&rooms[0]).join("sandbox");
    // While the first step sleeps, the second step's container exists too: created, its
    // init waiting for the start.
    wait_until(&log, "the second step's container", || {
        entries(&sandbox.join("containers")).len() == 2
    });
    let mut containers = entries(&sandbox.join("containers"));
    containers.sort();
    assert!(
        containers[0].contains(".s0.") && containers[1].contains(".s1."),
        "{containers:?}"
    );
    // The sandbox state is on a tmpfs of its own.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(&format!("{} ", sandbox.display())) && l.contains(" - tmpfs ")),
        "no tmpfs on {}",
        sandbox.display()
    );
    // On a v1 host the two steps are in different zygotes' cgroups, so the one being created
    // counts against neither the running step's pids nor its memory limit.
    let pids = Path::new("/sys/fs/cgroup/pids/airlock");
    if pids.is_dir() {
        let zygotes: Vec<_> = entries(pids)
            .into_iter()
            .filter(|c| c.ends_with(&format!(".{}", rooms[0])))
            .collect();
        assert_eq!(zygotes.len(), 2, "{zygotes:?}");
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("step `slow-fail` failed with exit code 3"),
        "{text}"
    );
    assert!(!text.contains("==> step 2"), "{text}");
    // The prepared container was discarded: nothing of the room runs, holds a cgroup or a
    // mount, or is left on disk.
    assert_state_clean(&state, &rooms);
}
