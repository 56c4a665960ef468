//! Dev-only smoke test of the sandbox against a real root file system. Needs root.
//!
//! ```text
//! cargo run -p airlock-runner --example sandbox_smoke -- ROOTFS [--bench N]
//! ```
//!
//! `ROOTFS` is an unpacked image with the mount points `/work /out /inputs /tmp /proc /dev
//! /sys /run /etc` and `/bin/sh`, `bash`, `id`, `sleep`, `unshare`, `mount`. The binary is
//! its own helper: started as `sandbox_smoke sandbox-exec BUNDLE` it runs
//! `sandbox_exec_main`, as the real CLI does.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_runner::sandbox::{
    IdMap, Launcher, OutputChunk, SANDBOX_EXEC_SUBCOMMAND, SandboxPlan, StepOutcome, Stream,
    sandbox_exec_main,
};
use tokio::sync::{mpsc, watch};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The helper must be dispatched before any runtime or thread exists.
    if args.get(1).map(String::as_str) == Some(SANDBOX_EXEC_SUBCOMMAND) {
        let code = match args.get(2) {
            Some(bundle) => sandbox_exec_main(Path::new(bundle)),
            None => 2,
        };
        std::process::exit(code);
    }
    let Some(rootfs) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: sandbox_smoke ROOTFS [--bench N]");
        std::process::exit(2);
    };
    let bench = match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("--bench"), Some(n)) => n.parse().unwrap_or(20),
        _ => 20,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(smoke(rootfs, bench)) {
        Ok(0) => println!("\nALL CHECKS PASSED"),
        Ok(failed) => {
            println!("\n{failed} CHECK(S) FAILED");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// One step's result and output.
struct Run {
    outcome: StepOutcome,
    stdout: String,
    stderr: String,
}

/// Test context: a launcher, a scratch directory, a plan template and a failure counter.
struct Ctx {
    launcher: Launcher,
    base: PathBuf,
    template: SandboxPlan,
    n: usize,
    failed: usize,
}

impl Ctx {
    /// Fresh work/out directories owned by the step's host uid.
    fn dirs(&mut self) -> Result<(PathBuf, PathBuf), Error> {
        self.n += 1;
        let work = self.base.join(format!("work{}", self.n));
        let out = self.base.join(format!("out{}", self.n));
        for d in [&work, &out] {
            std::fs::create_dir_all(d)?;
            std::os::unix::fs::chown(
                d,
                Some(self.template.host_uid()),
                Some(self.template.host_gid()),
            )?;
        }
        Ok((work, out))
    }

    fn plan(&mut self, script: &str) -> Result<SandboxPlan, Error> {
        let (work, out) = self.dirs()?;
        let mut plan = self.template.clone();
        plan.work_dir = work;
        plan.out_dir = out;
        plan.argv = vec!["/bin/bash".into(), "-c".into(), script.into()];
        Ok(plan)
    }

    async fn run_plan(
        &mut self,
        plan: &SandboxPlan,
        timeout: Duration,
        cancel: watch::Receiver<bool>,
    ) -> Result<Run, Error> {
        let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
        let id = format!("smoke-{}-{}", std::process::id(), self.n);
        let collector = tokio::spawn(async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            while let Some(chunk) = rx.recv().await {
                match chunk.stream {
                    Stream::Stdout => out.extend(chunk.data),
                    Stream::Stderr => err.extend(chunk.data),
                }
            }
            (out, err)
        });
        let outcome = self
            .launcher
            .run_step(&id, plan, timeout, cancel, tx)
            .await?;
        let (out, err) = collector.await?;
        Ok(Run {
            outcome,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    async fn run(&mut self, script: &str, timeout: Duration) -> Result<(Run, SandboxPlan), Error> {
        let plan = self.plan(script)?;
        let (_keep, cancel) = watch::channel(false);
        let run = self.run_plan(&plan, timeout, cancel).await?;
        println!("\n$ {script}");
        println!("  outcome: {:?}", run.outcome);
        for line in run.stdout.lines() {
            println!("  out| {line}");
        }
        for line in run.stderr.lines() {
            println!("  err| {line}");
        }
        Ok((run, plan))
    }

    fn check(&mut self, what: &str, ok: bool) {
        println!("  [{}] {what}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            self.failed += 1;
        }
    }
}

/// Processes on the host whose command line contains `needle`.
fn host_processes(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmd.contains(needle) {
            found.push(format!(
                "{} {}",
                entry.file_name().to_string_lossy(),
                cmd.trim()
            ));
        }
    }
    found
}

async fn smoke(rootfs: PathBuf, bench: usize) -> Result<usize, Error> {
    let exe = std::env::current_exe()?;
    let base = std::env::temp_dir().join(format!("sbx-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let marker = base.join("marker");
    std::fs::write(&marker, b"")?;
    std::thread::sleep(Duration::from_millis(20));
    let state = base.join("state");
    let launcher = Launcher::new(&exe, &state)?;
    let id_map = IdMap {
        host_base: 200_000,
        size: 65536,
    };
    let mut template = SandboxPlan::new(&rootfs, "/", "/", vec![], id_map);
    template.env = vec![("SOURCE_DATE_EPOCH".into(), "1700000000".into())];
    template.tmp_size_bytes = 64 << 20;
    let mut cx = Ctx {
        launcher,
        base: base.clone(),
        template,
        n: 0,
        failed: 0,
    };
    let t = Duration::from_secs(30);

    // (1) identity, /out on the host, environment
    let (r, plan) = cx
        .run(
            "echo hi > /out/x && id -u && id -g && hostname && pwd && echo \"$TZ $LANG $HOME $SOURCE_DATE_EPOCH\"",
            t,
        )
        .await?;
    let meta = std::fs::metadata(plan.out_dir.join("x"))?;
    cx.check("exit 0", r.outcome.exit_code == Some(0));
    cx.check(
        "id -u / id -g print 1000",
        r.stdout.starts_with("1000\n1000\n"),
    );
    cx.check(
        "hostname airlock, cwd /work",
        r.stdout.contains("airlock\n/work\n"),
    );
    cx.check(
        "TZ/LANG/HOME/SDE",
        r.stdout.contains("UTC C.UTF-8 /tmp 1700000000"),
    );
    cx.check(
        &format!(
            "/out/x on host owned by {}:{} (is {}:{})",
            plan.host_uid(),
            plan.host_gid(),
            meta.uid(),
            meta.gid()
        ),
        meta.uid() == plan.host_uid() && meta.gid() == plan.host_gid(),
    );
    cx.check(
        "/out/x contains hi",
        std::fs::read_to_string(plan.out_dir.join("x"))? == "hi\n",
    );

    // (2) read-only root
    let (r, _) = cx
        .run("touch /foo; touch /etc/foo; echo x > /usr/bin/sh; mkdir /work/ok /tmp/ok && echo writable", t)
        .await?;
    cx.check(
        "/ and /etc are EROFS",
        r.stderr.matches("Read-only file system").count() >= 3,
    );
    cx.check("/work and /tmp are writable", r.stdout.contains("writable"));

    // (3) no network but lo
    let (r, _) = cx
        .run(
            "ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1; \
             (exec 3<>/dev/tcp/127.0.0.1/80) 2>&1; (exec 3<>/dev/tcp/1.1.1.1/443) 2>&1; \
             (exec 3<>/dev/tcp/10.0.2.2/22) 2>&1; echo done",
            t,
        )
        .await?;
    cx.check("only lo in /sys/class/net", r.stdout.starts_with("lo\n"));
    cx.check(
        "127.0.0.1 reachable (lo up) but nothing listens",
        r.stdout.contains("127.0.0.1/80: Connection refused"),
    );
    cx.check(
        "1.1.1.1 unreachable",
        r.stdout.contains("1.1.1.1/443: Network is unreachable"),
    );
    cx.check(
        "10.0.2.2 unreachable",
        r.stdout.contains("10.0.2.2/22: Network is unreachable"),
    );
    let mut plan = cx.plan("(exec 3<>/dev/tcp/127.0.0.1/80) 2>&1; ls /sys/class/net")?;
    plan.loopback_up = false;
    let (_k, cancel) = watch::channel(false);
    let r = cx.run_plan(&plan, t, cancel).await?;
    println!(
        "\n$ connect 127.0.0.1 with loopback_up = false\n  out| {}",
        r.stdout.trim().replace('\n', "\n  out| ")
    );
    cx.check(
        "loopback_up=false: 127.0.0.1 unreachable, still only lo",
        r.stdout.contains("127.0.0.1/80: Network is unreachable") && r.stdout.ends_with("lo\n"),
    );

    // (4) exit code
    let (r, _) = cx.run("echo failing >&2; exit 3", t).await?;
    cx.check(
        "exit_code 3, not an error",
        r.outcome.exit_code == Some(3) && !r.outcome.timed_out,
    );

    // (5) timeout kills everything, even background processes
    let started = Instant::now();
    let (r, _) = cx
        .run(
            "sleep 100 & sleep 101 & (sleep 102 &) ; echo started; sleep 103",
            Duration::from_secs(1),
        )
        .await?;
    let elapsed = started.elapsed();
    cx.check(
        &format!("timed_out, killed by SIGKILL, within {elapsed:?}"),
        r.outcome.timed_out && r.outcome.signal == Some(9) && elapsed < Duration::from_secs(3),
    );
    let left = ["sleep 100", "sleep 101", "sleep 102", "sleep 103"]
        .iter()
        .flat_map(|n| host_processes(n))
        .collect::<Vec<_>>();
    cx.check(&format!("no process left behind {left:?}"), left.is_empty());

    // (6) seccomp, capabilities, no_new_privs
    let (r, _) = cx
        .run(
            "unshare -U true; unshare -r true; unshare -m true; mount -t tmpfs none /tmp; \
             grep -E '^(Seccomp|NoNewPrivs|CapEff|CapBnd|CapPrm):' /proc/self/status; \
             cat /proc/self/uid_map /proc/self/gid_map",
            t,
        )
        .await?;
    cx.check(
        "unshare -U/-r/-m fail with EPERM",
        r.stderr
            .matches("unshare failed: Operation not permitted")
            .count()
            == 3,
    );
    cx.check("mount fails", r.stderr.contains("mount: "));
    cx.check("Seccomp: 2 (filter)", r.stdout.contains("Seccomp:\t2"));
    cx.check("NoNewPrivs: 1", r.stdout.contains("NoNewPrivs:\t1"));
    cx.check(
        "no capabilities",
        r.stdout.contains("CapEff:\t0000000000000000")
            && r.stdout.contains("CapBnd:\t0000000000000000")
            && r.stdout.contains("CapPrm:\t0000000000000000"),
    );
    cx.check(
        "uid_map 0 -> 200000 x 65536",
        r.stdout.contains("0     200000      65536"),
    );

    // (7) exec failure is an outcome (127), not an infrastructure error
    let mut plan = cx.plan("")?;
    plan.argv = vec!["no-such-program".into()];
    let (_k, cancel) = watch::channel(false);
    let r = cx.run_plan(&plan, t, cancel).await?;
    println!(
        "\n$ no-such-program\n  outcome: {:?}\n  err| {}",
        r.outcome,
        r.stderr.trim()
    );
    cx.check(
        "missing program exits 127",
        r.outcome.exit_code == Some(127),
    );

    // (8) cancellation
    let plan = cx.plan("sleep 50")?;
    let (cancel_tx, cancel) = watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = cancel_tx.send(true);
    });
    let r = cx.run_plan(&plan, t, cancel).await?;
    println!(
        "\n$ sleep 50 (cancelled after 0.5 s)\n  outcome: {:?}",
        r.outcome
    );
    cx.check("cancelled", r.outcome.cancelled && !r.outcome.timed_out);

    // (9) limits: pids and memory
    let mut plan = cx.plan("")?;
    plan.argv = vec![
        "/bin/sh".into(),
        "-c".into(),
        "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all-forked".into(),
    ];
    plan.pids = Some(16);
    let (_k, cancel) = watch::channel(false);
    let r = cx.run_plan(&plan, t, cancel).await?;
    println!(
        "\n$ 40 background sleeps with pids=16 (dash)\n  outcome: {:?}\n  out| {}\n  err| {}",
        r.outcome,
        r.stdout.trim(),
        r.stderr.trim()
    );
    cx.check(
        "pids.max enforced (fork fails)",
        r.stderr.contains("Cannot fork") && !r.stdout.contains("all-forked"),
    );
    let mut plan = cx.plan("x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo ${#x}")?;
    plan.memory_bytes = Some(64 << 20);
    let (_k, cancel) = watch::channel(false);
    let r = cx.run_plan(&plan, t, cancel).await?;
    println!(
        "\n$ 300 MB string with memory=64MiB\n  outcome: {:?}",
        r.outcome
    );
    cx.check(
        "memory limit enforced (OOM kill)",
        r.outcome.oom_killed && !r.outcome.success(),
    );

    // (10) concurrent steps
    let mut handles = Vec::new();
    for i in 0..4 {
        let plan = cx.plan(&format!("sleep 0.3; echo {i} > /out/c; cat /out/c"))?;
        let launcher = cx.launcher.clone();
        handles.push(tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel(8);
            let (_k, cancel) = watch::channel(false);
            let id = format!("smoke-conc-{}-{i}", std::process::id());
            let outcome = launcher
                .run_step(&id, &plan, Duration::from_secs(30), cancel, tx)
                .await;
            let mut out = Vec::new();
            while let Some(c) = rx.recv().await {
                out.extend(c.data);
            }
            (outcome, String::from_utf8_lossy(&out).trim().to_owned(), i)
        }));
    }
    let started = Instant::now();
    let mut all_ok = true;
    for h in handles {
        let (outcome, out, i) = h.await?;
        all_ok &= matches!(&outcome, Ok(o) if o.success()) && out == i.to_string();
    }
    cx.check(
        &format!("4 concurrent steps in {:?}", started.elapsed()),
        all_ok,
    );

    // (10b) read-only inputs and the token-broker socket directory
    let inputs = cx.base.join("inputs");
    let sockdir = cx.base.join("broker");
    for d in [&inputs, &sockdir] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(inputs.join("zlib.tar.gz"), b"input bytes")?;
    let _listener = std::os::unix::net::UnixListener::bind(sockdir.join("oidc.sock"))?;
    let mut plan = cx.plan(
        "cat /inputs/zlib.tar.gz; echo; touch /inputs/new; ls -l /run/airlock/oidc.sock | cut -c1; \
         touch /run/airlock/x; touch /run/x",
    )?;
    plan.inputs_dir = Some(inputs);
    plan.oidc_socket_dir = Some(sockdir);
    let (_k, cancel) = watch::channel(false);
    let r = cx.run_plan(&plan, t, cancel).await?;
    println!(
        "\n$ /inputs and /run/airlock\n  outcome: {:?}\n  out| {}\n  err| {}",
        r.outcome,
        r.stdout.trim().replace('\n', "\n  out| "),
        r.stderr.trim().replace('\n', "\n  err| ")
    );
    cx.check("/inputs readable", r.stdout.starts_with("input bytes\n"));
    cx.check(
        "/inputs read-only",
        r.stderr.contains("'/inputs/new': Read-only file system"),
    );
    cx.check("oidc.sock visible as a socket", r.stdout.contains("\ns\n"));
    cx.check(
        "/run/airlock read-only, /run not writable by the step",
        r.stderr.contains("'/run/airlock/x': Read-only file system")
            && r.stderr.contains("'/run/x': Permission denied"),
    );

    // (11) a real compiler, if the image has one
    let (r, plan) = cx
        .run(
            "command -v gcc >/dev/null || { echo no-gcc; exit 0; }; \
             printf 'int main(void){return 42;}' > /work/a.c && gcc -O2 -o /out/a /work/a.c && /out/a; echo rc=$?",
            t,
        )
        .await?;
    cx.check(
        "gcc builds and runs in /work -> /out",
        r.stdout.contains("no-gcc")
            || (r.stdout.contains("rc=42") && plan.out_dir.join("a").exists()),
    );

    // (12) the helper is SIGKILLed: infrastructure error, last-resort cgroup kill
    let plan = cx.plan("sleep 104")?;
    cx.n += 1;
    let id = format!("smoke-kill-{}-{}", std::process::id(), cx.n);
    let killer = tokio::spawn({
        let id = id.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for p in host_processes(&format!("{SANDBOX_EXEC_SUBCOMMAND} ")) {
                if p.contains(&id)
                    && let Some(pid) = p.split(' ').next().and_then(|x| x.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    });
    let (tx, _rx) = mpsc::channel(8);
    let (_k, cancel) = watch::channel(false);
    let result = cx.launcher.run_step(&id, &plan, t, cancel, tx).await;
    killer.await?;
    println!("\n$ sleep 104, helper SIGKILLed after 0.5 s\n  result: {result:?}");
    cx.check(
        "helper crash is an error",
        matches!(
            result,
            Err(airlock_runner::sandbox::SandboxError::HelperCrashed { .. })
        ),
    );
    cx.check(
        "container killed anyway",
        host_processes("sleep 104").is_empty(),
    );

    // (13) the run_step future is dropped: the helper still kills the container
    let plan = cx.plan("sleep 105")?;
    cx.n += 1;
    let id = format!("smoke-drop-{}-{}", std::process::id(), cx.n);
    let (tx, _rx) = mpsc::channel(8);
    let (_k, cancel) = watch::channel(false);
    let dropped = tokio::time::timeout(
        Duration::from_millis(500),
        cx.launcher.run_step(&id, &plan, t, cancel, tx),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "\n$ sleep 105, run_step future dropped after 0.5 s\n  result: {:?}",
        dropped.is_err()
    );
    cx.check(
        "container killed after drop",
        host_processes("sleep 105").is_empty(),
    );
    let removed = cx.launcher.cleanup_stale()?;
    cx.check(
        &format!("cleanup_stale removed the dropped step's bundle ({removed})"),
        removed == 1,
    );

    // (14) overhead
    let mut times = Vec::new();
    let mut plan = cx.plan("")?;
    plan.argv = vec!["/bin/true".into()];
    for _ in 0..bench {
        let (_k, cancel) = watch::channel(false);
        let (tx, _rx) = mpsc::channel(8);
        cx.n += 1;
        let id = format!("smoke-bench-{}-{}", std::process::id(), cx.n);
        let started = Instant::now();
        let outcome = cx.launcher.run_step(&id, &plan, t, cancel, tx).await?;
        times.push(started.elapsed());
        if !outcome.success() {
            cx.check("bench step succeeded", false);
        }
    }
    times.sort();
    if !times.is_empty() {
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        println!(
            "\n/bin/true x{bench}: median {:?}, mean {mean:?}, min {:?}, max {:?}",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }

    // nothing left behind
    let leftovers: Vec<_> = ["containers", "bundles"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(state.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect();
    cx.check(
        &format!("state dir empty {leftovers:?}"),
        leftovers.is_empty(),
    );
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/pids/airlock")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    cx.check(&format!("no cgroups left {cgroups:?}"), cgroups.is_empty());
    cx.check(
        "no helper left",
        host_processes(SANDBOX_EXEC_SUBCOMMAND).is_empty(),
    );
    let changed = std::process::Command::new("find")
        .arg(&rootfs)
        .arg("-xdev")
        .arg("-newer")
        .arg(&marker)
        .output()?;
    let changed = String::from_utf8_lossy(&changed.stdout).into_owned();
    cx.check(
        &format!("rootfs untouched [{}]", changed.trim()),
        changed.trim().is_empty(),
    );
    let _ = std::fs::remove_dir_all(&base);
    Ok(cx.failed)
}
