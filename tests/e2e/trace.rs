//! Runtime traces of real sandboxed builds (issue 21): a step that executes programs, reads a
//! source file and tries to reach an address outside the sandbox produces a signed trace
//! naming each; PyPI securesystemslib verifies it for the outputs and refuses it tampered;
//! the hermeticity verdict says what was not hermetic; a profile with `fail_on_network`
//! refuses the call and fails the job; an untraced profile writes no trace.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;
use crate::provenance_fixtures::*;

/// A copy of the built-in profiles whose `untrusted-pr` profile traces (with `extra`).
fn traced_profiles(root: &Path, name: &str, extra: &str) -> PathBuf {
    profiles_copy(
        &root.join(name),
        "untrusted-pr",
        &format!("\n[trace]\nenabled = true\n{extra}\n"),
    )
}

const STEPS: &str = r#"[[steps]]
name = "probe"
run = "cat /work/input.txt > /out/result.txt && /bin/true && (bash -c 'exec 3<>/dev/tcp/10.1.2.3/443' 2>/dev/null || echo no-route)""#;

fn verify_trace(envelope: &Path, key: &Path, artifact: &Path) -> std::process::Output {
    let mut c = Command::new(venv_python());
    c.arg(repo().join("tests/interop/verify_dsse.py"))
        .arg(envelope)
        .arg(key)
        .arg("--artifact")
        .arg(artifact)
        .arg("--trace");
    run(c)
}

#[test]
#[ignore = "needs root, the base image and the venv: run scripts/test.sh"]
fn a_traced_build_names_what_it_executed_read_and_tried_to_reach() {
    let home = scratch();
    let job = job_dir(home.path(), "traced", STEPS, "\"result.txt\"");
    let out = home.path().join("out");
    let profiles = traced_profiles(home.path(), "profiles", "");
    let o = airlock_run_with(
        &job,
        home.path(),
        &out,
        &["--profiles-dir".into(), profiles.display().to_string()],
    );
    let log = text(&o);
    assert_eq!(o.status.code(), Some(0), "{log}");
    assert!(log.contains("trace: step `probe` executed"), "{log}");
    assert!(
        log.contains("network attempts: connect 10.1.2.3:443"),
        "{log}"
    );

    // Signed, for the outputs, and checked by third-party code.
    let trace_file = out.join("traced.trace.intoto.jsonl");
    let key = home.path().join("keys/local-provenance.pub");
    let artifact = out.join("result.txt");
    let v = verify_trace(&trace_file, &key, &artifact);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert!(
        text(&v).contains("securesystemslib verified"),
        "{}",
        text(&v)
    );
    let statement = statement_json(&read_envelope(&trace_file));
    assert_eq!(
        statement["predicateType"],
        "https://in-toto.io/attestation/runtime-trace/v0.2"
    );
    assert_eq!(
        statement["subject"],
        statement_json(&read_envelope(&out.join("traced.intoto.jsonl")))["subject"]
    );
    let log_ = &statement["predicate"]["monitorLog"];

    // Each program the step executed, with the digest of the file the image holds.
    let execs: Vec<&Value> = log_["process"].as_array().unwrap().iter().collect();
    let true_bin = execs
        .iter()
        .find(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/true")))
        .unwrap_or_else(|| panic!("/bin/true not traced: {execs:?}"));
    assert_eq!(true_bin["sha256"].as_str().unwrap().len(), 64, "{true_bin}");
    assert!(
        execs
            .iter()
            .any(|e| e["path"] == "/bin/sh" || e["path"] == "/usr/bin/sh"),
        "{execs:?}"
    );
    assert!(
        execs
            .iter()
            .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/bash"))),
        "{execs:?}"
    );

    // The source file it read, by its digest; the output it wrote.
    let files = log_["fileAccess"].as_array().unwrap();
    let input = files
        .iter()
        .find(|f| f["name"] == "/work/input.txt")
        .unwrap_or_else(|| panic!("/work/input.txt not traced: {files:?}"));
    assert_eq!(input["annotations"]["class"], "source");
    assert_eq!(input["annotations"]["access"], "read");
    assert_eq!(
        input["digest"]["sha256"],
        airlock_attest::Sha256Digest::of(b"from the source tree\n")
            .hex()
            .as_str()
    );
    assert!(
        files
            .iter()
            .any(|f| f["name"] == "/out/result.txt" && f["annotations"]["access"] == "write"),
        "{files:?}"
    );
    // The network attempt, not refused (the sandbox has no route anyway).
    let network = log_["network"].as_array().unwrap();
    let attempt = network
        .iter()
        .find(|n| n["ip"] == "10.1.2.3")
        .unwrap_or_else(|| panic!("{network:?}"));
    assert_eq!(
        (attempt["port"].as_u64(), attempt["refused"].as_bool()),
        (Some(443), Some(false))
    );
    assert_eq!(
        std::fs::read_to_string(&artifact).unwrap(),
        "from the source tree\n"
    );

    // The verdict names the exception.
    let h = &statement["predicate"]["hermeticity"];
    assert_eq!(h["verdict"], "not hermetic", "{h}");
    assert!(h["exceptions"].to_string().contains("10.1.2.3:443"), "{h}");

    // Tampered (the attempt removed): refused.
    let mut forged = statement.clone();
    forged["predicate"]["monitorLog"]["network"] = Value::Array(vec![]);
    let tampered = with_payload(&read_envelope(&trace_file), forged.to_string().as_bytes());
    let tampered_file = home.path().join("tampered.trace.intoto.jsonl");
    std::fs::write(&tampered_file, tampered.to_json_line().unwrap()).unwrap();
    let v = verify_trace(&tampered_file, &key, &artifact);
    assert_eq!(
        v.status.code(),
        Some(1),
        "a tampered trace verified:\n{}",
        text(&v)
    );
}

#[test]
#[ignore = "needs root, the base image and the venv: run scripts/test.sh"]
fn fail_on_network_refuses_the_call_and_fails_the_job_while_hermetic_jobs_pass() {
    let home = scratch();
    // 1. fail_on_network: the connect is refused by the supervisor and the job fails.
    let job = job_dir(home.path(), "phoning", STEPS, "\"result.txt\"");
    let out = home.path().join("out");
    let strict = traced_profiles(home.path(), "strict", "fail_on_network = true");
    let flags = ["--profiles-dir".to_owned(), strict.display().to_string()];
    let o = airlock_run_with(&job, home.path(), &out, &flags);
    let log = text(&o);
    assert_eq!(o.status.code(), Some(1), "{log}");
    assert!(log.contains("network attempts"), "{log}");
    assert!(
        !out.join("phoning.intoto.jsonl").exists(),
        "a job failed on network got provenance"
    );
    let statement = statement_json(&read_envelope(&out.join("phoning.trace.intoto.jsonl")));
    let network = statement["predicate"]["monitorLog"]["network"]
        .as_array()
        .unwrap()
        .clone();
    let attempt = network.iter().find(|n| n["ip"] == "10.1.2.3").unwrap();
    assert_eq!(attempt["refused"], true, "{attempt}");

    // 2. The same profile, a step that stays inside: hermetic, and it succeeds.
    let quiet = job_dir(
        home.path(),
        "quiet",
        "[[steps]]\nname = \"copy\"\nrun = \"cat /work/input.txt > /out/result.txt\"",
        "\"result.txt\"",
    );
    let out = home.path().join("out-quiet");
    let o = airlock_run_with(&quiet, home.path(), &out, &flags);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let statement = statement_json(&read_envelope(&out.join("quiet.trace.intoto.jsonl")));
    assert_eq!(statement["predicate"]["hermeticity"]["verdict"], "hermetic");

    // 3. Untraced profiles write no trace.
    let out = home.path().join("out-untraced");
    let o = airlock_run(&quiet, home.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!out.join("quiet.trace.intoto.jsonl").exists());
}
