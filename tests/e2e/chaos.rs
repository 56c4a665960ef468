//! The chaos suite: real controllers, runners and sandboxes, with faults injected from
//! outside — SIGKILL, SIGSTOP, a second SIGTERM, a restarted database, a full disk. Each
//! scenario asserts what the fleet promises whatever happens:
//!
//! - 0 jobs lost: every job ends SUCCEEDED;
//! - 0 jobs completed twice: one succeeded attempt and exactly one provenance envelope, which
//!   verifies with the profile's key for the job's outputs;
//! - nothing left: once the runners have stopped gracefully, no room, lock, partial
//!   download, mount, build process or cgroup of any runner that ever ran on the state dir.
//!
//! Each scenario prints one `chaos-figures | ...` line; `docs/operations.md` has the table
//! (`cargo test -p airlock --test e2e -- --include-ignored --nocapture chaos | grep
//! chaos-figures`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_attest::Sha256Digest;
use airlock_proto::v1 as pb;
use nix::sys::signal::Signal;

use crate::common::*;
use crate::fleet::*;
use crate::host::*;

/// Outcomes of one scenario, printed for the table in `docs/operations.md`.
struct Figures {
    scenario: &'static str,
    faults: String,
    jobs: usize,
    succeeded: usize,
    retried: usize,
    lost: usize,
    twice: usize,
}

impl Figures {
    fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            faults: String::new(),
            jobs: 0,
            succeeded: 0,
            retried: 0,
            lost: 0,
            twice: 0,
        }
    }

    fn fault(&mut self, what: &str) {
        if !self.faults.is_empty() {
            self.faults.push_str(", ");
        }
        self.faults.push_str(what);
    }

    /// Waits for every job in `ids` to end and counts how it ended.
    async fn settle(&mut self, fleet: &Fleet, ids: &[String]) {
        let mut jobs = fleet.jobs(0).await;
        for id in ids {
            let job = finished(fleet, 0, id).await;
            self.jobs += 1;
            let succeeded_attempts = job
                .attempts
                .iter()
                .filter(|a| a.state() == pb::JobState::Succeeded)
                .count();
            if job.state() != pb::JobState::Succeeded {
                eprintln!(
                    "job {id} lost: {:?} {} {:?}",
                    job.state(),
                    job.message,
                    job.attempts
                );
                self.lost += 1;
                continue;
            }
            let envelopes = verified_provenances(fleet, &mut jobs, &job).await;
            if succeeded_attempts != 1 || envelopes != 1 {
                eprintln!(
                    "job {id} completed twice: {envelopes} envelopes, {:?}",
                    job.attempts
                );
                self.twice += 1;
            }
            self.succeeded += 1;
            if job.attempts.len() > 1 {
                self.retried += 1;
            }
        }
    }

    /// Prints the figures line, then asserts nothing was lost or done twice.
    fn report(&self) {
        println!(
            "chaos-figures | {} | {} | {} | {}/{} succeeded | {} retried | {} lost | {} twice",
            self.scenario,
            self.faults,
            self.jobs,
            self.succeeded,
            self.jobs,
            self.retried,
            self.lost,
            self.twice
        );
        assert_eq!(self.lost, 0, "{}: jobs lost", self.scenario);
        assert_eq!(self.twice, 0, "{}: jobs completed twice", self.scenario);
        assert_eq!(self.succeeded, self.jobs);
    }
}

/// Waits (at most 2 minutes) until `pred` holds for the process's log.
fn wait_for_log(proc: &Proc, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = proc.log_text();
        if pred(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {what}:\n{text}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the runner logs `phase: <phase>` for job `id`.
fn wait_for_phase(runner: &Proc, id: &str, phase: &str) {
    let needle = format!("phase: {phase}");
    wait_for_log(runner, &needle, |log| {
        log.lines().any(|l| l.contains(id) && l.contains(&needle))
    });
}

/// SIGKILLs the runner and reaps it: no drain, no cleanup of its own.
fn sigkill(runner: Proc) {
    drop(runner);
}

/// SIGTERMs the runner and waits for it to exit (drained: its jobs are done).
fn stop(mut runner: Proc) {
    runner.signal(Signal::SIGTERM);
    let status = runner.child.0.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", runner.log_text());
}

/// Adds the rooms now in `state` to `seen`.
fn note_rooms(state: &Path, seen: &mut Vec<String>) {
    for room in rooms(state) {
        if !seen.contains(&room) {
            seen.push(room);
        }
    }
}

/// Waits until some job of `ids` is in a step on the runner `runner_id` (per its log).
async fn a_step_running_on(jobs: &mut Jobs, runner: &Proc, runner_id: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for id in ids {
            let job = get(jobs, id).await;
            if job.runner_id == runner_id
                && job.state() == pb::JobState::Running
                && runner
                    .log_text()
                    .lines()
                    .any(|l| l.contains(id.as_str()) && l.contains("phase: steps"))
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no job ran on {runner_id}:\n{}",
            runner.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until some job of `ids` is RUNNING (on any runner).
async fn any_running(jobs: &mut Jobs, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for id in ids {
            if get(jobs, id).await.state() == pb::JobState::Running {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no job is running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn submit_n(jobs: &mut Jobs, spec: &[u8], n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(submit(jobs, spec).await);
    }
    ids
}

/// Waits until the blob cache in `state` holds a partial download.
fn partial_download_in(state: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while entries(&state.join("cache/tmp")).is_empty() {
        assert!(Instant::now() < deadline, "no partial download appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn chaos_runner_sigkilled_in_each_phase_and_restarted_on_its_state_dir() {
    let fleet = Fleet::start(None);
    let state = fleet.root.path().join("state");
    let rt = runtime();
    let mut figures = Figures::new("runner SIGKILL in each phase, restart on the same state dir");
    let mut seen = Vec::new();

    let body: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let sha = Sha256Digest::of(&body);
    let (url, stalled) = serve_stalling_first(body);
    let fetching = fleet.job_file(
        "fetching",
        &format!(
            "[[inputs]]\nname = \"data.bin\"\nurl = \"{url}/data.bin\"\nsha256 = \"{sha}\"\n\n\
             [[steps]]\nrun = \"sha256sum /inputs/data.bin > /out/result.txt\""
        ),
    );
    let in_step = fleet.job_file(
        "in-step",
        "[[steps]]\nrun = \"sleep 2; echo done > /out/result.txt\"",
    );
    // Large enough that its upload takes a while.
    let big = fleet.job_file(
        "uploading",
        "[[steps]]\nrun = \"head -c 100663296 /dev/zero > /out/result.txt\"",
    );

    let mut runner = fleet.spawn_runner_on("runner", 0, 1, &state);
    runner.runner_id();
    let (ids, runner) = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let mut ids = Vec::new();

        // Fetching a declared input: the download stalls half way; kill the runner there.
        let spec = prepared_spec(&mut jobs, &fetching).await;
        let id = submit(&mut jobs, &spec).await;
        stalled.recv_timeout(Duration::from_secs(120)).unwrap();
        partial_download_in(&state);
        note_rooms(&state, &mut seen);
        sigkill(runner);
        figures.fault("fetching");
        runner = fleet.spawn_runner_on("runner", 0, 1, &state);
        ids.push(id);

        // In a step.
        let spec = prepared_spec(&mut jobs, &in_step).await;
        let id = submit(&mut jobs, &spec).await;
        step_started(&mut jobs, &id).await;
        note_rooms(&state, &mut seen);
        sigkill(runner);
        figures.fault("in a step");
        runner = fleet.spawn_runner_on("runner", 0, 1, &state);
        ids.push(id);

        // Uploading outputs, then completing.
        let spec = prepared_spec(&mut jobs, &big).await;
        for phase in ["uploading outputs", "completing"] {
            let id = submit(&mut jobs, &spec).await;
            // The earlier job's retry runs first on this one-job runner: wait for this one.
            tokio::task::block_in_place(|| wait_for_phase(&runner, &id, phase));
            note_rooms(&state, &mut seen);
            sigkill(runner);
            figures.fault(phase);
            runner = fleet.spawn_runner_on("runner", 0, 1, &state);
            ids.push(id);
        }
        (ids, runner)
    });
    rt.block_on(figures.settle(&fleet, &ids));
    note_rooms(&state, &mut seen);
    stop(runner);
    figures.report();
    // Killed before it could complete, each of the first three ran again.
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        for id in &ids[..3] {
            let job = get(&mut jobs, id).await;
            assert_eq!(job.attempts.len(), 2, "{id}: {:?}", job.attempts);
            assert_eq!(job.attempts[0].state(), pb::JobState::InfraFailed);
        }
    });
    assert_state_clean(&state, &seen);
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn chaos_two_runners_on_one_state_dir_thirty_jobs_runner_and_controller_sigkilled() {
    let mut fleet = Fleet::start(None);
    let state = fleet.root.path().join("state");
    let rt = runtime();
    let mut figures = Figures::new("two runners on one state dir (SQLite)");
    let mut seen = Vec::new();
    let job_file = fleet.job_file(
        "thirty",
        "[[steps]]\nrun = \"sleep 1; echo ok > /out/result.txt\"",
    );
    let a = fleet.spawn_runner_on("runner-a", 0, 2, &state);
    let b = fleet.spawn_runner_on("runner-b", 0, 2, &state);
    let runner_a = a.runner_id();
    b.runner_id();
    let ids = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let ids = submit_n(&mut jobs, &spec, 30).await;
        a_step_running_on(&mut jobs, &a, &runner_a, &ids).await;
        ids
    });
    note_rooms(&state, &mut seen);
    sigkill(a);
    figures.fault("runner SIGKILL mid-step, restarted on the same state dir");
    let a = fleet.spawn_runner_on("runner-a", 0, 2, &state);
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        any_running(&mut jobs, &ids).await;
    });
    note_rooms(&state, &mut seen);
    fleet.kill_controller(0);
    figures.fault("controller SIGKILL and restart");
    fleet.restart_controller(0);
    rt.block_on(figures.settle(&fleet, &ids));
    note_rooms(&state, &mut seen);
    stop(a);
    stop(b);
    figures.report();
    assert!(figures.retried >= 1, "the killed runner's job ran again");
    assert_state_clean(&state, &seen);
}

/// A private PostgreSQL cluster (`scripts/postgres.sh` on its own directory and port), so
/// restarting it disturbs no other test; stopped when dropped.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    url: String,
}

impl PrivatePostgres {
    fn start() -> Self {
        let dir = scratch();
        let port = free_port();
        let mut pg = Self {
            dir,
            port,
            url: String::new(),
        };
        let out = pg.script(None);
        pg.url = out
            .trim()
            .strip_prefix("export AIRLOCK_TEST_POSTGRES_URL=")
            .unwrap_or_else(|| panic!("postgres.sh printed {out}"))
            .to_owned();
        pg
    }

    fn script(&self, arg: Option<&str>) -> String {
        let mut cmd = std::process::Command::new(repo().join("scripts/postgres.sh"));
        cmd.args(arg)
            .env("AIRLOCK_PG_DIR", self.dir.path().join("pg"))
            .env("AIRLOCK_PG_PORT", self.port.to_string());
        let o = run(cmd);
        assert!(o.status.success(), "postgres.sh {arg:?}: {}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Stops the server (fast: open connections are cut) and starts it again.
    fn restart(&self) {
        self.script(Some("stop"));
        self.script(None);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/postgres.sh"))
            .arg("stop")
            .env("AIRLOCK_PG_DIR", self.dir.path().join("pg"))
            .env("AIRLOCK_PG_PORT", self.port.to_string())
            .output();
    }
}

#[test]
#[ignore = "needs root, the base image and PostgreSQL: run scripts/test.sh"]
fn chaos_two_controllers_on_postgres_one_sigkilled_and_the_database_restarted() {
    let pg = PrivatePostgres::start();
    let mut fleet = Fleet::start(Some(&pg.url));
    fleet.spawn_controller(free_port());
    let state = fleet.root.path().join("state");
    let rt = runtime();
    let mut figures = Figures::new("two controllers on PostgreSQL, two runners on one state dir");
    let mut seen = Vec::new();
    let job_file = fleet.job_file(
        "postgres",
        "[[steps]]\nrun = \"sleep 1; echo ok > /out/result.txt\"",
    );
    let a = fleet.spawn_runner_on("runner-a", 0, 2, &state);
    let b = fleet.spawn_runner_on("runner-b", 1, 2, &state);
    a.runner_id();
    b.runner_id();
    let ids = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let ids = submit_n(&mut jobs, &spec, 16).await;
        any_running(&mut jobs, &ids).await;
        ids
    });
    note_rooms(&state, &mut seen);
    fleet.kill_controller(0);
    figures.fault("controller SIGKILL and restart");
    fleet.restart_controller(0);
    rt.block_on(async {
        let mut jobs = fleet.jobs(1).await;
        any_running(&mut jobs, &ids).await;
    });
    pg.restart();
    figures.fault("PostgreSQL restarted mid-run");
    rt.block_on(figures.settle(&fleet, &ids));
    note_rooms(&state, &mut seen);
    stop(a);
    stop(b);
    figures.report();
    assert_state_clean(&state, &seen);
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = std::process::Command::new("mount");
        cmd.args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "tmpfs",
        ])
        .arg(&dir);
        let o = run(cmd);
        assert!(o.status.success(), "mount tmpfs: {}", text(&o));
        Self(dir)
    }

    fn free_bytes(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.0).unwrap();
        st.blocks_available() * st.fragment_size()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .output();
    }
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn chaos_the_blob_store_disk_fills_during_an_upload_and_the_retry_succeeds_once_freed() {
    let root = scratch();
    let blobs = Tmpfs::mount(root.path().join("blobs"), "32m");
    let fleet = Fleet::start_with(&format!("blob_dir = \"{}\"\n", blobs.0.display()));
    let state = fleet.root.path().join("state");
    let rt = runtime();
    let mut figures = Figures::new("blob store disk full during upload");
    let mut seen = Vec::new();
    let job_file = fleet.job_file(
        "disk-full",
        "[[steps]]\nrun = \"sleep 2; head -c 8388608 /dev/zero > /out/result.txt\"",
    );
    let runner = fleet.spawn_runner_on("runner", 0, 1, &state);
    runner.runner_id();
    let id = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        // Leave 2 MiB: the 8 MiB output cannot be stored.
        let filler = blobs.0.join("filler");
        let room = blobs.free_bytes().saturating_sub(2 * 1024 * 1024);
        std::fs::write(&filler, vec![1u8; usize::try_from(room).unwrap()]).unwrap();
        figures.fault("blob store full (tmpfs) during upload, freed after the failure");
        let id = submit(&mut jobs, &spec).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        let failed = loop {
            let job = get(&mut jobs, &id).await;
            if let Some(first) = job.attempts.first()
                && first.state() == pb::JobState::InfraFailed
            {
                break first.clone();
            }
            assert!(
                Instant::now() < deadline && job.state() != pb::JobState::Succeeded,
                "the upload did not fail: {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        note_rooms(&state, &mut seen);
        std::fs::remove_file(&filler).unwrap();
        assert!(
            failed.reason.contains("No space left on device"),
            "the attempt says why: {}",
            failed.reason
        );
        id
    });
    rt.block_on(figures.settle(&fleet, std::slice::from_ref(&id)));
    // The failed upload left no partial blob behind.
    assert_eq!(entries(&blobs.0.join("tmp")), Vec::<String>::new());
    note_rooms(&state, &mut seen);
    stop(runner);
    figures.report();
    assert_state_clean(&state, &seen);
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn chaos_a_killed_runners_job_is_retried_elsewhere_and_a_frozen_runner_is_fenced() {
    let fleet = Fleet::start(None);
    let state = fleet.root.path().join("state");
    let rt = runtime();
    let mut figures = Figures::new("runner SIGKILL; runner frozen past its lease");
    let mut seen = Vec::new();
    let slow = fleet.job_file(
        "slow",
        "[[steps]]\nrun = \"sleep 2; echo done > /out/result.txt\"",
    );
    let a = fleet.spawn_runner_on("runner-a", 0, 1, &state);
    let runner_a = a.runner_id();
    let (b, c, ids) = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &slow).await;

        // SIGKILL mid-job: the lease lapses, attempt 2 runs on runner B.
        let x = submit(&mut jobs, &spec).await;
        assert_eq!(running_on(&mut jobs, &x).await, runner_a);
        let b = fleet.spawn_runner_on("runner-b", 0, 1, &state);
        let runner_b = b.runner_id();
        note_rooms(&state, &mut seen);
        sigkill(a);
        figures.fault("runner SIGKILL mid-job");
        let job = finished(&fleet, 0, &x).await;
        let attempts: Vec<_> = job
            .attempts
            .iter()
            .map(|t| (t.runner_id.as_str(), t.state()))
            .collect();
        assert_eq!(
            attempts,
            [
                (runner_a.as_str(), pb::JobState::InfraFailed),
                (runner_b.as_str(), pb::JobState::Succeeded)
            ],
            "{:?}",
            job.attempts
        );
        assert!(job.attempts[0].reason.contains("lease expired"));

        // SIGSTOP mid-job (a partition): the job moves to runner C; when the frozen runner
        // wakes up its lease is stale and every call it makes is refused.
        let c = fleet.spawn_runner_on("runner-c", 0, 1, &state);
        let runner_c = c.runner_id();
        let y = submit(&mut jobs, &spec).await;
        let first = running_on(&mut jobs, &y).await;
        let (frozen, other) = if first == runner_b {
            (&b, runner_c.clone())
        } else {
            (&c, runner_b.clone())
        };
        note_rooms(&state, &mut seen);
        frozen.signal(Signal::SIGSTOP);
        figures.fault("runner SIGSTOP past its lease, then SIGCONT");
        let job = finished(&fleet, 0, &y).await;
        frozen.signal(Signal::SIGCONT);
        assert_eq!(job.runner_id, other);
        assert_eq!(job.attempts[0].state(), pb::JobState::InfraFailed);
        // The woken runner notices its lease is gone and gives the job up.
        let deadline = Instant::now() + Duration::from_secs(30);
        let noticed = |log: &str| {
            log.lines()
                .any(|l| l.contains("the lease is gone") && l.contains(y.as_str()))
        };
        while !noticed(&frozen.log_text()) {
            assert!(
                Instant::now() < deadline,
                "the frozen runner never noticed:\n{}",
                frozen.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let after = get(&mut jobs, &y).await;
        assert_eq!(after.state(), pb::JobState::Succeeded);
        assert_eq!(after.attempts.len(), 2);
        assert_eq!(after.outputs, job.outputs);
        (b, c, vec![x, y])
    });
    rt.block_on(figures.settle(&fleet, &ids));
    stop(b);
    stop(c);
    figures.report();
    assert_state_clean(&state, &seen);
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn chaos_a_second_sigterm_hands_the_running_attempt_back_at_once() {
    let fleet = Fleet::start(None);
    let state = fleet.root.path().join("state");
    let rt = runtime();
    let mut figures = Figures::new("second SIGTERM mid-step (hand-back)");
    let mut seen = Vec::new();
    let job_file = fleet.job_file(
        "hand-back",
        "[[steps]]\nrun = \"sleep 3; echo ok > /out/result.txt\"",
    );
    let mut a = fleet.spawn_runner_on("runner-a", 0, 1, &state);
    a.runner_id();
    let id = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let id = submit(&mut jobs, &spec).await;
        step_started(&mut jobs, &id).await;
        id
    });
    note_rooms(&state, &mut seen);
    a.signal(Signal::SIGTERM);
    wait_for_log(&a, "draining", |l| l.contains("draining"));
    a.signal(Signal::SIGTERM);
    figures.fault("second SIGTERM mid-step");
    let status = a.child.0.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", a.log_text());
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let job = get(&mut jobs, &id).await;
        // Handed back by the runner itself, not found by a lease expiry: the attempt is
        // recorded at once with the reason, and the job is queued for a retry.
        assert_eq!(job.attempts.len(), 1, "{:?}", job.attempts);
        assert_eq!(job.attempts[0].state(), pb::JobState::InfraFailed);
        assert!(
            job.attempts[0].reason.contains("handed the attempt back"),
            "{}",
            job.attempts[0].reason
        );
        assert_eq!(job.state(), pb::JobState::Queued);
    });
    let b = fleet.spawn_runner_on("runner-b", 0, 1, &state);
    rt.block_on(figures.settle(&fleet, std::slice::from_ref(&id)));
    note_rooms(&state, &mut seen);
    stop(b);
    figures.report();
    assert_state_clean(&state, &seen);
}
