//! `airlock run`s on one machine, sharing one `AIRLOCK_HOME`: started at once they all
//! succeed (none reaps another's live sandbox), and what a killed run left (its build
//! processes, containers, workspace, database) is gone once the next run has started.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::host::*;

/// A job whose one step sleeps `secs` seconds, then writes `/out/result.txt`.
fn sleeping_job(root: &Path, name: &str, secs: u32) -> PathBuf {
    job_dir(
        root,
        name,
        &format!("[[steps]]\nrun = \"sleep {secs}; cp input.txt /out/result.txt\""),
        "\"result.txt\"",
    )
}

/// `airlock run JOB --out OUT` with `home` as AIRLOCK_HOME, stderr to `log`.
fn spawn_run(job: &Path, home: &Path, out: &Path, log: &Path) -> Child {
    airlock()
        .arg("run")
        .arg(job)
        .arg("--out")
        .arg(out)
        .env("AIRLOCK_HOME", home)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits (at most 2 minutes) for `child` to exit; its exit code.
fn wait(child: &mut Child, log: &Path) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "airlock run did not finish:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `log` shows that the run's first step started.
fn wait_for_step(log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("==> step 1")
    {
        assert!(
            Instant::now() < deadline,
            "the step never started:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `n` runs of `job` at once (the first one's step already running when the others
/// start, so their start-up reaping meets a live sandbox) and asserts that all succeed.
fn runs_at_once(n: usize) {
    let root = scratch();
    let home = root.path().join("home");
    let job = sleeping_job(root.path(), "concurrent", 3);
    let log = |i: usize| root.path().join(format!("run-{i}.log"));
    let out = |i: usize| root.path().join(format!("out-{i}"));
    let first = spawn_run(&job, &home, &out(0), &log(0));
    wait_for_step(&log(0));
    let mut children = vec![first];
    children.extend((1..n).map(|i| spawn_run(&job, &home, &out(i), &log(i))));
    for (i, child) in children.iter_mut().enumerate() {
        let code = wait(child, &log(i));
        let text = std::fs::read_to_string(log(i)).unwrap_or_default();
        assert_eq!(code, Some(0), "run {i} of {n} failed:\n{text}");
        assert_eq!(
            std::fs::read_to_string(out(i).join("result.txt")).unwrap(),
            "from the source tree\n"
        );
        assert!(out(i).join("concurrent.intoto.jsonl").is_file());
    }
    // Every run removed its rooms on the way out.
    assert_eq!(entries(&home.join("runner/runners")), Vec::<String>::new());
    assert_eq!(entries(&home.join("runs")), Vec::<String>::new());
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn two_airlock_runs_started_at_once_both_succeed() {
    runs_at_once(2);
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn four_airlock_runs_started_at_once_all_succeed() {
    runs_at_once(4);
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_killed_runs_build_dies_with_it_and_the_next_run_removes_its_leftovers() {
    let root = scratch();
    let home = root.path().join("home");
    let long = sleeping_job(root.path(), "long", 600);
    let log = root.path().join("killed.log");
    let mut killed = spawn_run(&long, &home, &root.path().join("out-killed"), &log);
    wait_for_step(&log);
    let room_id = entries(&home.join("runner/runners"))
        .iter()
        .find_map(|r| r.strip_suffix(".lock").map(str::to_owned))
        .unwrap();
    assert!(
        !build_processes_of(&room_id).is_empty(),
        "the step should be running"
    );
    killed.kill().unwrap(); // SIGKILL: no cleanup of its own
    killed.wait().unwrap();
    // The helper gets SIGTERM when its runner dies and kills the container; nothing of the
    // build survives its runner.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !build_processes_of(&room_id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "build processes outlived their runner: {:?}",
            build_processes_of(&room_id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rooms = entries(&home.join("runner/runners"));
    assert_eq!(
        rooms.len(),
        2,
        "the dead run's room and lock stay: {rooms:?}"
    );
    assert_eq!(entries(&home.join("runs")).len(), 2);

    // The next run reaps it all: room, lock, containers and cgroups, database.
    let short = sleeping_job(root.path(), "short", 0);
    let next_log = root.path().join("next.log");
    let mut next = spawn_run(&short, &home, &root.path().join("out-next"), &next_log);
    assert_eq!(
        wait(&mut next, &next_log),
        Some(0),
        "{}",
        std::fs::read_to_string(&next_log).unwrap_or_default()
    );
    assert_eq!(entries(&home.join("runner/runners")), Vec::<String>::new());
    assert_eq!(entries(&home.join("runs")), Vec::<String>::new());
    assert_eq!(processes_mentioning(&room_id), Vec::<i32>::new());
    assert_eq!(cgroups_of(&room_id), Vec::<PathBuf>::new());
}
