//! Issue 22: the job's zygote forks every step's helper, and each step still starts in a
//! fresh container: new namespaces of every kind, its own seccomp filter, a cgroup
//! namespace rooted at the job's cgroup, its own limits, and nothing of the previous step's
//! processes.

use crate::common::*;

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
    // Namespace inode numbers are recycled once a namespace is freed, and a job's steps
    // never overlap, so freshness is shown by what a namespace holds (below), and here by
    // none of them being the host's (the zygote's and the runner's).
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
