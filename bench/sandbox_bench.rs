//! Container start + teardown of `/bin/true`: airlock's sandbox side by side with crun, runc,
//! bubblewrap and `unshare` (the floor), on the same rootfs; and the wall time of building
//! `examples/hello` in the sandbox versus directly on the host (chroot into the same rootfs,
//! so the same gcc). Run through `bench/sandbox.sh`, which prepares everything.
//!
//! Usage: sandbox_bench --airlock BIN --rootfs DIR --scratch DIR --hello DIR [--runs N]
//!        [--builds N] [--only NAME,...]
//! Prints a Markdown table to stdout; progress to stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_runner::sandbox::{IdMap, Launcher, SandboxPlan};
use tokio::sync::{mpsc, watch};

struct Args {
    airlock: PathBuf,
    rootfs: PathBuf,
    scratch: PathBuf,
    hello: PathBuf,
    runs: usize,
    builds: usize,
    only: Option<Vec<String>>,
}

fn args() -> Args {
    let mut a = std::env::args().skip(1);
    let mut out = Args {
        airlock: PathBuf::new(),
        rootfs: PathBuf::new(),
        scratch: PathBuf::new(),
        hello: PathBuf::new(),
        runs: 100,
        builds: 10,
        only: None,
    };
    while let Some(flag) = a.next() {
        let v = a.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--airlock" => out.airlock = v.into(),
            "--rootfs" => out.rootfs = v.into(),
            "--scratch" => out.scratch = v.into(),
            "--hello" => out.hello = v.into(),
            "--runs" => out.runs = v.parse().unwrap(),
            "--builds" => out.builds = v.parse().unwrap(),
            "--only" => out.only = Some(v.split(',').map(str::to_owned).collect()),
            _ => panic!("unknown flag {flag}"),
        }
    }
    out
}

/// Median and p95 in milliseconds.
fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len();
    let median = if n % 2 == 1 {
        ms(samples[n / 2])
    } else {
        (ms(samples[n / 2 - 1]) + ms(samples[n / 2])) / 2.0
    };
    let p95 = ms(samples[((n * 95).div_ceil(100)).saturating_sub(1).min(n - 1)]);
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
    (median, p95, mean)
}

fn time_command(mut make: impl FnMut(usize) -> Command, runs: usize) -> Vec<Duration> {
    // Two warm-up runs, not counted.
    for i in 0..2 {
        let st = make(1_000_000 + i).stdout(Stdio::null()).status().unwrap();
        assert!(st.success(), "warm-up failed: {st}");
    }
    (0..runs)
        .map(|i| {
            let mut c = make(i);
            c.stdout(Stdio::null());
            let t = Instant::now();
            let st = c.status().unwrap();
            let d = t.elapsed();
            assert!(st.success(), "run {i} failed: {st}");
            d
        })
        .collect()
}

fn mkdir(p: &Path, mode: u32, owner: Option<u32>) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(uid) = owner {
        std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
    }
}

fn plan(a: &Args, argv: Vec<String>) -> SandboxPlan {
    let id_map = IdMap {
        host_base: 4_000_000,
        size: 65536,
    };
    let host = 4_001_000;
    let work = a.scratch.join("work");
    let out = a.scratch.join("out");
    mkdir(&work, 0o755, Some(host));
    mkdir(&out, 0o755, Some(host));
    let mut p = SandboxPlan::new(&a.rootfs, &work, &out, argv, id_map);
    p.memory_bytes = Some(1 << 30);
    p.pids = Some(1024);
    p.cpu_millis = Some(2000);
    p.open_files = Some(4096);
    p
}

async fn airlock_runs(a: &Args, plan: &SandboxPlan, runs: usize) -> Vec<Duration> {
    let launcher = Launcher::new(&a.airlock, a.scratch.join("airlock-state")).unwrap();
    // The runner's path: one job sandbox (zygote) per job, a fresh container per step.
    let job = launcher
        .job(&format!("bench-job-{}", std::process::id()))
        .unwrap();
    let (_cancel_tx, cancel) = watch::channel(false);
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs + 2 {
        let (tx, mut rx) = mpsc::channel(16);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let t = Instant::now();
        let o = job
            .run_step(
                &format!("bench-{i}"),
                plan,
                Duration::from_secs(600),
                cancel.clone(),
                tx,
            )
            .await
            .unwrap();
        let d = t.elapsed();
        let _ = drain.await;
        assert!(o.success(), "{o:?}");
        if i >= 2 {
            out.push(d);
        }
    }
    job.finish().await.unwrap();
    out
}

/// An OCI bundle with airlock's own spec (same rootfs, namespaces, mounts, seccomp) for
/// crun and runc; the cgroup path is theirs.
fn bundle(a: &Args, plan: &SandboxPlan, name: &str) -> PathBuf {
    let dir = a.scratch.join(format!("bundle-{name}"));
    mkdir(&dir, 0o700, None);
    let mut spec = plan.to_oci_spec().unwrap();
    if let Some(linux) = spec.linux_mut() {
        linux.set_cgroups_path(Some(PathBuf::from(format!("/airlock-bench-{name}"))));
    }
    spec.save(dir.join("config.json")).unwrap();
    dir
}

fn main() {
    let a = args();
    let wanted = |n: &str| a.only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let t_plan = plan(&a, vec!["/bin/true".into()]);
    let mut rows: Vec<(String, String, Vec<Duration>)> = Vec::new();
    let runs = a.runs;

    if wanted("airlock") {
        eprintln!("airlock sandbox: {runs} runs");
        let s = rt.block_on(airlock_runs(&a, &t_plan, runs));
        rows.push((
            "airlock (`JobSandbox::run_step`, the runner's path: a helper forked by the job's zygote; libcontainer 0.7 create, limits, lo up, start, wait; state removal)".into(),
            "Launcher::run_step".into(),
            s,
        ));
    }
    // crun 1.8 refuses the hybrid cgroup layout unless the v2 mount is hidden in a private
    // mount namespace (SPEC-NOTES); runc works as is.
    if wanted("crun") {
        eprintln!("crun: {runs} runs");
        let b = bundle(&a, &t_plan, "crun");
        let root = a.scratch.join("crun-state");
        let s = time_command(
            |i| {
                let mut c = Command::new("unshare");
                c.args(["-m", "sh", "-c"]).arg(format!(
                    "umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun --root {} run --bundle {} bench-{i}",
                    root.display(),
                    b.display()
                ));
                c
            },
            runs,
        );
        rows.push((
            "crun 1.8 (same spec; `unshare -m` + umount of cgroup v2 included)".into(),
            "crun run".into(),
            s,
        ));
    }
    if wanted("runc") {
        eprintln!("runc: {runs} runs");
        let b = bundle(&a, &t_plan, "runc");
        let root = a.scratch.join("runc-state");
        let s = time_command(
            |i| {
                let mut c = Command::new("runc");
                c.arg("--root")
                    .arg(&root)
                    .args(["run", "--bundle"])
                    .arg(&b)
                    .arg(format!("bench-{i}"));
                c
            },
            runs,
        );
        rows.push(("runc (same spec)".into(), "runc run".into(), s));
    }
    if wanted("bwrap") {
        eprintln!("bwrap: {runs} runs");
        let rootfs = a.rootfs.clone();
        let s = time_command(
            |_| {
                let mut c = Command::new("bwrap");
                c.arg("--ro-bind").arg(&rootfs).arg("/").args([
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "--tmpfs",
                    "/tmp",
                    "--unshare-all",
                    "--uid",
                    "1000",
                    "--gid",
                    "1000",
                    "--die-with-parent",
                    "/bin/true",
                ]);
                c
            },
            runs,
        );
        rows.push((
            "bubblewrap (ro rootfs, --unshare-all, uid 1000)".into(),
            "bwrap".into(),
            s,
        ));
    }
    if wanted("unshare") {
        eprintln!("unshare: {runs} runs");
        let rootfs = a.rootfs.clone();
        let s = time_command(
            |_| {
                let mut c = Command::new("unshare");
                c.args(["-Urnpmiu", "--fork", "--root"])
                    .arg(&rootfs)
                    .arg("/bin/true");
                c
            },
            runs,
        );
        rows.push((
            "unshare -Urnpmiu --fork --root ROOTFS (the floor: namespaces only)".into(),
            "unshare".into(),
            s,
        ));
    }
    if wanted("fork") {
        let s = time_command(|_| Command::new("/bin/true"), runs);
        rows.push((
            "plain fork+exec of /bin/true (reference)".into(),
            "fork+exec".into(),
            s,
        ));
    }

    println!(
        "### Container start + teardown of `/bin/true` ({runs} runs each, after 2 warm-up runs)\n"
    );
    println!("| runtime | median ms | p95 ms | mean ms |");
    println!("|---|---:|---:|---:|");
    let mut medians = std::collections::BTreeMap::new();
    for (label, key, s) in &rows {
        let (m, p, mean) = stats(s.clone());
        medians.insert(key.clone(), m);
        println!("| {label} | {m:.2} | {p:.2} | {mean:.2} |");
    }
    if let (Some(al), Some(floor)) = (medians.get("Launcher::run_step"), medians.get("unshare")) {
        println!("\nairlock / unshare floor: {:.2}x", al / floor);
    }
    if let (Some(al), Some(crun)) = (medians.get("Launcher::run_step"), medians.get("crun run")) {
        println!("airlock / crun: {:.2}x", al / crun);
    }

    if wanted("hello") && a.builds > 0 {
        // examples/hello's two steps, in the sandbox vs chroot into the same rootfs.
        let script = "gcc -O2 -Wall -Werror -o /out/hello /work/hello.c && /out/hello";
        let work = a.scratch.join("work");
        std::fs::copy(a.hello.join("hello.c"), work.join("hello.c")).unwrap();
        let h_plan = plan(&a, vec!["/bin/sh".into(), "-c".into(), script.into()]);
        eprintln!("hello in the sandbox: {} builds", a.builds);
        let sandbox = rt.block_on(airlock_runs(&a, &h_plan, a.builds));
        // Host: the same compiler, via chroot, no namespaces.
        let host_dir = a.rootfs.join("tmp/airlock-bench-host");
        mkdir(&host_dir, 0o755, None);
        std::fs::copy(a.hello.join("hello.c"), host_dir.join("hello.c")).unwrap();
        eprintln!("hello on the host (chroot): {} builds", a.builds);
        let host = time_command(
            |_| {
                let mut c = Command::new("chroot");
                c.arg(&a.rootfs).args([
                    "/bin/sh",
                    "-c",
                    "gcc -O2 -Wall -Werror -o /tmp/airlock-bench-host/hello /tmp/airlock-bench-host/hello.c && /tmp/airlock-bench-host/hello",
                ]);
                c
            },
            a.builds,
        );
        let _ = std::fs::remove_dir_all(&host_dir);
        let (sm, sp, _) = stats(sandbox);
        let (hm, hp, _) = stats(host);
        println!(
            "\n### Building examples/hello (compile + run), {} builds each\n",
            a.builds
        );
        println!("| where | median ms | p95 ms |");
        println!("|---|---:|---:|");
        println!(
            "| airlock sandbox (one step, limits as the `trusted` profile) | {sm:.1} | {sp:.1} |"
        );
        println!("| host: chroot into the same rootfs (same gcc) | {hm:.1} | {hp:.1} |");
        println!(
            "\nsandbox overhead: {:+.1}% ({:+.1} ms)",
            (sm / hm - 1.0) * 100.0,
            sm - hm
        );
    }
}
