//! Admission policy as code: Rego files in `[policy] dir`, evaluated by a real controller on
//! every submission; enforce refuses, evaluate records; the bundle digest reaches provenance.

use std::path::Path;
use std::process::Stdio;

use crate::common::*;

const POLICY: &str = r#"package airlock.admission

# Builds never download: inputs are declared and fetched by the runner.
deny contains msg if {
    some step in input.job.steps
    contains(step.run, "curl")
    msg := sprintf("step %q runs curl; declare the download in [[inputs]]", [step.name])
}

deny contains "only admin may submit release jobs" if {
    input.job.job.profile == "release"
    input.client.role != "admin"
}
"#;

fn write_policy(dir: &Path) -> std::path::PathBuf {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::write(policy.join("admission.rego"), POLICY).unwrap();
    policy
}

fn with_policy(config: &Path, mode: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "\n[policy]\ndir = \"policy\"\nmode = \"{mode}\"\n"
    ));
    std::fs::write(config, text).unwrap();
}

fn submit(url: &str, token: &Path, job: &Path, wait: bool) -> std::process::Output {
    let mut c = airlock();
    c.arg("submit").arg(job);
    if wait {
        c.arg("--wait");
    }
    c.args(["--controller", url, "--token-file"]).arg(token);
    run(c)
}

/// `airlock fetch JOB --out OUT`, then the statement of `<name>.intoto.jsonl`.
fn fetch_statement(
    url: &str,
    token: &Path,
    job: &str,
    out: &Path,
    name: &str,
) -> serde_json::Value {
    let mut fetch = airlock();
    fetch
        .args(["fetch", job, "--out"])
        .arg(out)
        .args(["--controller", url, "--token-file"])
        .arg(token);
    assert!(run(fetch).status.success());
    statement(out, name)
}

fn policy_eval(policy: &Path, job: &Path) -> serde_json::Value {
    let mut c = airlock();
    c.args(["policy", "eval"]).arg(policy).arg(job);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn enforce_refuses_with_the_messages_and_admitted_jobs_carry_the_policy_digest() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let policy = write_policy(&dir);
    with_policy(&dir.join("controller.toml"), "enforce");
    let token = dir.join("admin.token");
    let curl = job_dir(
        root.path(),
        "fetcher",
        "[[steps]]\nname = \"get\"\nrun = \"curl https://example.invalid/x > /out/x\"",
        "\"x\"",
    );
    let fine = job_dir(
        root.path(),
        "fine",
        "[[steps]]\nname = \"make\"\nrun = \"echo ok > /out/x\"",
        "\"x\"",
    );

    // Locally first: `policy test` exits 1 on deny, 0 on allow; `eval` is JSON.
    let mut t = airlock();
    t.args(["policy", "test"]).arg(&policy).arg(&curl);
    let o = run(t);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("deny: step \"get\" runs curl"),
        "{}",
        text(&o)
    );
    let decided = policy_eval(&policy, &fine);
    assert_eq!(decided["decision"], "allow");
    let digest = decided["policy"]["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = policy_eval(&policy, &curl);
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["admitted"], false);

    let log = root.path().join("controller.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let _controller = start_controller_with(&dir.join("controller.toml"), port, |c| {
        c.stderr(log_file);
    });
    let _runner = Kill(
        runner_command(
            &url,
            &dir.join("runner.secret"),
            &root.path().join("runner"),
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );

    let o = submit(&url, &token, &curl, false);
    assert_ne!(o.status.code(), Some(0));
    let said = text(&o);
    assert!(said.to_lowercase().contains("permission"), "{said}");
    assert!(
        said.contains("step \\\"get\\\" runs curl") || said.contains("step \"get\" runs curl"),
        "{said}"
    );
    assert!(
        said.contains(&digest[..12]),
        "the refusal names the policy: {said}"
    );
    // Nothing was queued; the refusal is an audit line in the controller's log.
    let metrics = std::process::Command::new("curl")
        .args(["-sS", &format!("{url}/metrics")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&metrics.stdout).contains("airlock_jobs_submitted_total 0"),
        "{}",
        String::from_utf8_lossy(&metrics.stdout)
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("admission denied")
    );

    let o = submit(&url, &token, &fine, true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let job = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let st = fetch_statement(&url, &token, &job, &root.path().join("out"), "fine");
    let recorded = &st["predicate"]["buildDefinition"]["internalParameters"]["admissionPolicy"];
    assert_eq!(recorded["digest"]["sha256"], digest.as_str());
    assert_eq!(recorded["mode"], "enforce");
    assert_eq!(recorded["decision"], "allow");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn evaluate_admits_and_records_and_a_broken_policy_stops_the_controller() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let policy = write_policy(&dir);
    let config = dir.join("controller.toml");
    with_policy(&config, "evaluate");

    // A policy that does not parse: the controller does not start, and says where.
    std::fs::write(
        policy.join("broken.rego"),
        "package airlock.admission\n\ndeny contains msg if {\n    input.job ==\n}\n",
    )
    .unwrap();
    let mut c = airlock();
    c.args(["controller", "--config"]).arg(&config);
    let o = output_with_timeout(&mut c, std::time::Duration::from_secs(60));
    assert_ne!(o.status.code(), Some(0));
    let said = text(&o);
    assert!(
        said.contains("broken.rego") && said.contains(":5:"),
        "{said}"
    );
    std::fs::remove_file(policy.join("broken.rego")).unwrap();

    let _controller = start_controller(&config, port);
    let _runner = Kill(
        runner_command(
            &url,
            &dir.join("runner.secret"),
            &root.path().join("runner"),
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let job_file = job_dir(
        root.path(),
        "curly",
        "[[steps]]\nname = \"say\"\nrun = \"echo no curl here > /out/x\"",
        "\"x\"",
    );
    let token = dir.join("admin.token");
    let o = submit(&url, &token, &job_file, true);
    assert_eq!(
        o.status.code(),
        Some(0),
        "evaluate mode admits: {}",
        text(&o)
    );
    let job = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let mut status = airlock();
    status
        .args(["status", &job, "--controller", &url, "--token-file"])
        .arg(&token);
    let shown = String::from_utf8_lossy(&run(status).stdout).to_string();
    assert!(
        shown.contains("policy:  would deny (evaluate mode): step \"say\" runs curl"),
        "{shown}"
    );
    let st = fetch_statement(&url, &token, &job, &root.path().join("out"), "curly");
    let recorded = &st["predicate"]["buildDefinition"]["internalParameters"]["admissionPolicy"];
    assert_eq!(recorded["mode"], "evaluate");
    assert_eq!(recorded["decision"], "deny");
    assert_eq!(
        recorded["messages"][0],
        "step \"say\" runs curl; declare the download in [[inputs]]"
    );
}

/// `airlock keys generate --name NAME --out DIR`; returns the keyid it printed.
fn generate_key(dir: &Path, name: &str) -> String {
    let mut c = airlock();
    c.args(["keys", "generate", "--name", name, "--out"])
        .arg(dir);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("keyid:"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_profile_that_requires_signed_jobs_admits_only_the_configured_signers() {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let signers = dir.join("signers");
    let alice = generate_key(&signers, "alice");
    let mallory_dir = root.path().join("mallory");
    generate_key(&mallory_dir, "mallory");
    let config = dir.join("controller.toml");
    let mut text_cfg = std::fs::read_to_string(&config).unwrap();
    text_cfg.push_str(
        "\n[job_signatures]\nkeys = [\"signers/alice.pub\"]\nrequired_for = [\"untrusted-pr\"]\n",
    );
    std::fs::write(&config, text_cfg).unwrap();
    let _controller = start_controller(&config, port);
    let _runner = Kill(
        runner_command(
            &url,
            &dir.join("runner.secret"),
            &root.path().join("runner"),
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let job = job_dir(
        root.path(),
        "signed",
        "[[steps]]\nrun = \"echo signed > /out/x\"",
        "\"x\"",
    );
    let token = dir.join("admin.token");
    let submit = |key: Option<&Path>| {
        let mut c = airlock();
        c.arg("submit").arg(&job).arg("--wait");
        if let Some(key) = key {
            c.arg("--sign").arg(key);
        }
        c.args(["--controller", &url, "--token-file"]).arg(&token);
        run(c)
    };

    let o = submit(None);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("admits only signed jobs"), "{}", text(&o));
    let o = submit(Some(&mallory_dir.join("mallory.key")));
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("does not verify"), "{}", text(&o));

    let o = submit(Some(&signers.join("alice.key")));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let st = fetch_statement(&url, &token, &id, &root.path().join("out"), "signed");
    assert_eq!(
        st["predicate"]["buildDefinition"]["internalParameters"]["jobSignature"]["keyid"],
        alice.as_str()
    );
}
