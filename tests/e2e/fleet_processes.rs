//! The fleet as separate processes: `airlock controller` (SQLite, or two replicas on one
//! PostgreSQL), two `airlock runner`s with the real sandbox, and clients over real gRPC.
//!
//! - 200 jobs submitted concurrently all complete exactly once (attempt 1, one provenance
//!   that verifies), spread over both runners;
//! - the controller stopped and restarted mid-run loses nothing (SQLite and PostgreSQL);
//! - two controller replicas on one PostgreSQL, runners spread across them: no job leased
//!   twice;
//! - cancel and drain.
//!
//! Faults (SIGKILL, SIGSTOP, a full disk, a database restart) are in `chaos.rs`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use airlock_proto::v1 as pb;

use crate::common::*;
use crate::fleet::*;

/// 200 jobs from 20 concurrent clients; returns after checking every one.
async fn two_hundred_jobs(fleet: &Fleet, replicas: usize) {
    let job_file = fleet.job_file("trivial", "[[steps]]\nrun = \"echo ok > /out/result.txt\"");
    let mut jobs = fleet.jobs(0).await;
    let spec = prepared_spec(&mut jobs, &job_file).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut jobs = fleet.jobs(i % replicas).await;
        let spec = spec.clone();
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                ids.push(submit(&mut jobs, &spec).await);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for c in clients {
        ids.extend(c.await.unwrap());
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);
    let mut runners = HashSet::new();
    for id in &ids {
        let job = finished(fleet, 0, id).await;
        assert_eq!(job.attempts.len(), 1, "job {id} was leased more than once");
        assert_eq!(job.attempt, 1);
        runners.insert(job.runner_id.clone());
        assert_one_verified_provenance(fleet, &mut jobs, &job).await;
    }
    assert_eq!(runners.len(), 2, "both runners took jobs");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn two_hundred_concurrent_jobs_on_two_sandboxed_runners_complete_exactly_once() {
    let mut fleet = Fleet::start(None);
    let _a = fleet.spawn_runner("runner-a", 0, 2);
    let _b = fleet.spawn_runner("runner-b", 0, 2);
    runtime().block_on(two_hundred_jobs(&fleet, 1));
}

#[test]
#[ignore = "needs root, the base image and PostgreSQL: run scripts/test.sh"]
fn two_controller_replicas_on_one_postgres_never_lease_a_job_twice() {
    let url = postgres_database();
    let mut fleet = Fleet::start(Some(&url));
    fleet.spawn_controller(free_port());
    let _a = fleet.spawn_runner("runner-a", 0, 2);
    let _b = fleet.spawn_runner("runner-b", 1, 2);
    runtime().block_on(two_hundred_jobs(&fleet, 2));
}

fn restart_loses_nothing(postgres: Option<String>) {
    let mut fleet = Fleet::start(postgres.as_deref());
    let _a = fleet.spawn_runner("runner-a", 0, 2);
    let _b = fleet.spawn_runner("runner-b", 0, 2);
    let rt = runtime();
    let job_file = fleet.job_file(
        "restart",
        "[[steps]]\nrun = \"sleep 1; echo ok > /out/result.txt\"",
    );
    let ids = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let mut ids = Vec::new();
        for _ in 0..8 {
            ids.push(submit(&mut jobs, &spec).await);
        }
        running_on(&mut jobs, &ids[0]).await;
        ids
    });
    // Stop the controller mid-run (SIGTERM: graceful) and start it again on the same port.
    let mut controller = fleet.procs.remove(0);
    controller.signal(nix::sys::signal::Signal::SIGTERM);
    let status = controller.child.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown: {status:?}");
    let port = fleet.ports.remove(0);
    fleet.spawn_controller(port);
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        for id in &ids {
            let job = finished(&fleet, 0, id).await;
            assert_one_verified_provenance(&fleet, &mut jobs, &job).await;
        }
    });
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_controller_restart_mid_run_loses_nothing_sqlite() {
    restart_loses_nothing(None);
}

#[test]
#[ignore = "needs root, the base image and PostgreSQL: run scripts/test.sh"]
fn a_controller_restart_mid_run_loses_nothing_postgres() {
    restart_loses_nothing(Some(postgres_database()));
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn airlock_cancel_stops_a_running_job_within_two_seconds() {
    let mut fleet = Fleet::start(None);
    let runner = fleet.spawn_runner("runner-a", 0, 1);
    let job_file = fleet.job_file(
        "endless",
        "[[steps]]\nrun = \"sleep 600; echo never > /out/result.txt\"",
    );
    let rt = runtime();
    let id = rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let id = submit(&mut jobs, &spec).await;
        step_started(&mut jobs, &id).await;
        id
    });
    let asked = Instant::now();
    let mut cancel = airlock();
    cancel
        .args([
            "cancel",
            &id,
            "--reason",
            "e2e",
            "--controller",
            &fleet.url(0),
        ])
        .arg("--token-file")
        .arg(fleet.dir.join("admin.token"));
    let o = run(cancel);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let job = rt.block_on(finished(&fleet, 0, &id));
    let took = asked.elapsed();
    assert_eq!(job.state(), pb::JobState::Cancelled, "{}", job.message);
    assert!(
        took < Duration::from_secs(2),
        "the job's processes were stopped only after {took:?}; runner log:\n{}",
        runner.log_text()
    );
    assert!(job.cancel_requested);
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn sigterm_drains_a_runner_its_running_job_finishes_then_it_exits() {
    let mut fleet = Fleet::start(None);
    let mut runner = fleet.spawn_runner("runner-a", 0, 1);
    let job_file = fleet.job_file(
        "drain",
        "[[steps]]\nrun = \"sleep 1; echo drained > /out/result.txt\"",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut jobs = fleet.jobs(0).await;
        let spec = prepared_spec(&mut jobs, &job_file).await;
        let id = submit(&mut jobs, &spec).await;
        let queued_after = submit(&mut jobs, &spec).await;
        step_started(&mut jobs, &id).await;
        runner.signal(nix::sys::signal::Signal::SIGTERM);
        let job = finished(&fleet, 0, &id).await;
        assert_one_verified_provenance(&fleet, &mut jobs, &job).await;
        // The draining runner took no new work: the second job is still queued.
        assert_eq!(
            get(&mut jobs, &queued_after).await.state(),
            pb::JobState::Queued
        );
    });
    let status = runner.child.0.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", runner.log_text());
    assert!(
        runner.log_text().contains("draining"),
        "{}",
        runner.log_text()
    );
}
