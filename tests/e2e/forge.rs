//! Forge webhooks end to end: a real controller and runner, a git repository on disk, and a
//! local fake of the forge's REST API that serves the job file and records the commit
//! statuses. Payloads have the shapes the forges document.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hmac::{KeyInit, Mac};

use crate::common::*;
use crate::fake_forge::{Call, FakeForge};

const GH_SECRET: &str = "gh-webhook-secret-7f3a";
const GH_TOKEN: &str = "gh-api-token-c0ffee";
const GL_SECRET: &str = "gl-webhook-token-91b2";
const GL_TOKEN: &str = "gl-api-token-beef42";
const FJ_SECRET: &str = "fj-webhook-secret-55d1";
const FJ_TOKEN: &str = "fj-api-token-a11ce5";

/// A controller with three forges, a runner, a repository and the fake API.
struct Setup {
    root: tempfile::TempDir,
    dir: PathBuf,
    url: String,
    commit: String,
    /// A later commit whose job file asks for `release`.
    release_commit: String,
    clone_url: String,
    api: FakeForge,
    log: PathBuf,
    _controller: Kill,
    _runner: Kill,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn secret_file(path: &Path, value: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The job file committed to the repository: asks for `profile`, with a hostile log line.
fn job_file(profile: &str) -> String {
    let (layout, digest) = base_image();
    format!(
        "[job]\nname = \"forge-hello\"\nprofile = \"{profile}\"\n\n[source]\npath = \".\"\n\n\
         [image]\nref = \"oci-layout:{}@{digest}\"\n\n\
         [[steps]]\nname = \"build\"\nrun = \"cat greeting.txt > /out/hello.txt && echo '<script>alert(1)</script>'\"\n\n\
         [outputs]\npaths = [\"hello.txt\"]\n",
        layout.display()
    )
}

fn setup() -> Setup {
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");

    let src = root.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("airlock.toml"), job_file("trusted")).unwrap();
    std::fs::write(src.join("greeting.txt"), "hello from a pull request\n").unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "feature"]);
    let commit = git(&src, &["rev-parse", "HEAD"]);
    std::fs::write(src.join("airlock.toml"), job_file("release")).unwrap();
    git(&src, &["commit", "-q", "-am", "release"]);
    let release_commit = git(&src, &["rev-parse", "HEAD"]);
    let bare = root.path().join("app.git");
    git(
        root.path(),
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let clone_url = format!("file://{}", bare.display());

    let api = FakeForge::start(
        "airlock.toml",
        vec![
            (commit.clone(), job_file("trusted")),
            (release_commit.clone(), job_file("release")),
        ],
    );
    let secrets = dir.join("forge");
    std::fs::create_dir_all(&secrets).unwrap();
    for (name, value) in [
        ("gh.secret", GH_SECRET),
        ("gh.token", GH_TOKEN),
        ("gl.secret", GL_SECRET),
        ("gl.token", GL_TOKEN),
        ("fj.secret", FJ_SECRET),
        ("fj.token", FJ_TOKEN),
    ] {
        secret_file(&secrets.join(name), value);
    }
    let config = dir.join("controller.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    for (kind, name, root_path) in [
        ("github", "gh", "/gh"),
        ("gitlab", "gl", "/gl/api/v4"),
        ("forgejo", "fj", "/fj/api/v1"),
    ] {
        text.push_str(&format!(
            "\n[[forges]]\nkind = \"{kind}\"\nname = \"{name}\"\n\
             webhook_secret_file = \"forge/{name}.secret\"\ntoken_file = \"forge/{name}.token\"\n\
             api_url = \"{}{root_path}\"\n{}",
            api.url(),
            if name == "gh" {
                "release_repositories = [\"org/app\"]\n"
            } else {
                ""
            }
        ));
    }
    text.push_str(&format!("\n[web]\npublic_url = \"{url}\"\n"));
    std::fs::write(&config, text).unwrap();

    let log = root.path().join("controller.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let controller = start_controller_with(&config, port, |c| {
        c.stderr(log_file).env("RUST_LOG", "debug");
    });
    let mut runner = runner_command(
        &url,
        &dir.join("runner.secret"),
        &root.path().join("runner"),
    );
    runner.arg("--allow-file-git").stderr(Stdio::null());
    let runner = Kill(runner.spawn().unwrap());
    Setup {
        root,
        dir,
        url,
        commit,
        release_commit,
        clone_url,
        api,
        log,
        _controller: controller,
        _runner: runner,
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Setup {
    /// POSTs `body` to `/webhooks/<forge>` with `headers`; (HTTP status, JSON answer).
    fn deliver(
        &self,
        forge: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let file = self.root.path().join("delivery.json");
        std::fs::write(&file, body).unwrap();
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
            .args(["-H", "Content-Type: application/json"]);
        for (k, v) in headers {
            curl.arg("-H").arg(format!("{k}: {v}"));
        }
        curl.arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{}/webhooks/{forge}", self.url));
        let out = curl.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (json, code) = text.rsplit_once('\n').unwrap();
        (
            code.trim().parse().unwrap(),
            serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
        )
    }

    fn submitted_total(&self) -> u64 {
        let out = Command::new("curl")
            .args(["-sS", &format!("{}/metrics", self.url)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("airlock_jobs_submitted_total "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut c = airlock();
        c.args(args)
            .args(["--controller", &self.url, "--token-file"])
            .arg(self.dir.join("admin.token"));
        let o = run(c);
        assert!(o.status.success(), "airlock {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Follows the job to its end; returns `airlock status`.
    fn finish(&self, job: &str) -> String {
        self.cli(&["logs", "-f", job]);
        self.cli(&["status", job])
    }

    /// Fetches the job's outputs and provenance; returns the statement.
    fn statement(&self, job: &str) -> (PathBuf, serde_json::Value) {
        let out = self.root.path().join(format!("out-{job}"));
        self.cli(&["fetch", job, "--out", out.to_str().unwrap()]);
        let st = statement(&out, "forge-hello");
        (out, st)
    }

    /// `airlock verify` of the fetched output with `profile`'s key and builder id.
    fn verify(&self, out: &Path, profile: &str) {
        let mut verify = airlock();
        verify
            .arg("verify")
            .arg(out.join("hello.txt"))
            .arg("--provenance")
            .arg(out.join("forge-hello.intoto.jsonl"))
            .arg("--key")
            .arg(self.dir.join(format!("keys/{profile}.pub")))
            .arg("--builder-id")
            .arg(format!("{}/builders/{profile}", self.url));
        let o = run(verify);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }

    fn controller_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

fn github_pr(setup: &Setup, head_repo: &str) -> Vec<u8> {
    serde_json::json!({
        "action": "opened",
        "number": 7,
        "pull_request": {
            "head": {"ref": "feature", "sha": setup.commit,
                     "repo": {"id": 2, "full_name": head_repo, "clone_url": setup.clone_url}},
            "base": {"ref": "main", "sha": "1".repeat(40),
                     "repo": {"id": 1, "full_name": "org/app", "clone_url": "https://forge.invalid/org/app.git"}},
        },
        "repository": {"id": 1, "full_name": "org/app"},
        "sender": {"login": "eve"},
    })
    .to_string()
    .into_bytes()
}

fn states(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.body["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_signed_pull_request_from_a_fork_runs_untrusted_and_reports_statuses() {
    let s = setup();
    let body = github_pr(&s, "eve/app");
    let gh_headers = |delivery: &str, signature: String| {
        vec![
            ("X-GitHub-Event", "pull_request".to_owned()),
            ("X-GitHub-Delivery", delivery.to_owned()),
            ("X-Hub-Signature-256", signature),
        ]
    };

    // Forged, missing and wrongly keyed signatures: 401 and nothing queued, nothing fetched.
    let before = s.submitted_total();
    for signature in [
        format!("sha256={}", hmac_hex("not-the-secret", &body)),
        format!("sha256={}", "0".repeat(64)),
        String::new(),
    ] {
        let (code, answer) = s.deliver("gh", &gh_headers("d-forged", signature), &body);
        assert_eq!(code, 401, "{answer}");
    }
    let (code, _) = s.deliver("nope", &gh_headers("d", "x".into()), &body);
    assert_eq!(code, 404);
    // Over the 5 MiB cap: refused before the signature is even computed.
    let huge = vec![b' '; 6 << 20];
    let (code, _) = s.deliver(
        "gh",
        &gh_headers("d-huge", format!("sha256={}", hmac_hex(GH_SECRET, &huge))),
        &huge,
    );
    assert_eq!(code, 413);
    // Authentic but malformed: 400 naming the field.
    let bad = br#"{"action": "opened", "number": "seven"}"#;
    let (code, answer) = s.deliver(
        "gh",
        &gh_headers("d-bad", format!("sha256={}", hmac_hex(GH_SECRET, bad))),
        bad,
    );
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("number"),
        "{answer}"
    );
    assert_eq!(
        s.submitted_total(),
        before,
        "a refused delivery queues nothing"
    );
    assert!(s.api.calls().is_empty(), "nothing was fetched for it");

    // The signed delivery: the job file asks for `trusted`; a fork runs as untrusted-pr.
    let signature = format!("sha256={}", hmac_hex(GH_SECRET, &body));
    let (code, answer) = s.deliver("gh", &gh_headers("d-1", signature.clone()), &body);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["profile"], "untrusted-pr");
    let job = answer["job_id"].as_str().unwrap().to_owned();
    assert_eq!(answer["url"], format!("{}/jobs/{job}", s.url));

    // The same signed body again (a redelivery, or a replay under another delivery id).
    let (code, again) = s.deliver("gh", &gh_headers("d-2", signature), &body);
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["job_id"], job.as_str());
    assert_eq!(s.submitted_total(), before + 1);

    // The job file was read from the head repository at the head commit.
    let gets: Vec<Call> = s
        .api
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET")
        .collect();
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert_eq!(
        gets[0].target,
        format!("/gh/repos/eve/app/contents/airlock.toml?ref={}", s.commit)
    );
    assert_eq!(
        gets[0].headers["authorization"],
        format!("Bearer {GH_TOKEN}")
    );

    let status = s.finish(&job);
    assert!(status.contains("state:   succeeded"), "{status}");
    assert!(
        status.contains("trigger: github pull_request #7 of org/app from fork eve/app by eve"),
        "{status}"
    );

    // pending, then success, on the base repository for the head commit, linking the page.
    let posted = s
        .api
        .wait_for_statuses("/gh/repos/org/app/", |c| c.len() >= 2);
    assert_eq!(states(&posted), ["pending", "success"], "{posted:#?}");
    for call in &posted {
        assert_eq!(
            call.target,
            format!("/gh/repos/org/app/statuses/{}", s.commit)
        );
        assert_eq!(call.body["context"], "airlock/forge-hello");
        assert_eq!(call.body["target_url"], format!("{}/jobs/{job}", s.url));
        assert_eq!(call.headers["authorization"], format!("Bearer {GH_TOKEN}"));
    }

    // The status's link is the job's page: headless Chromium renders its state and steps.
    let target = posted[1].body["target_url"].as_str().unwrap().to_owned();
    let (base, page_job) = target.rsplit_once("/jobs/").unwrap();
    let seen = crate::web::browser(
        base,
        page_job,
        Some(&s.dir.join("admin.token")),
        &[("--expect-state", "SUCCEEDED"), ("--expect-step", "build")],
    );
    assert_eq!(seen["login"]["ok"], true, "{seen:#}");
    assert_eq!(seen["timed_out"], false, "{seen:#}");
    assert_eq!(seen["state"], "SUCCEEDED", "{seen:#}");
    assert!(
        seen["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step["data_step"] == "build"),
        "{seen:#}"
    );
    assert_eq!(seen["alerts"], serde_json::json!([]), "{seen:#}");
    assert!(
        seen["log"]
            .as_str()
            .unwrap()
            .contains("<script>alert(1)</script>"),
        "the job's hostile log line is shown as text: {seen:#}"
    );

    // Provenance records the event and the decided profile, and verifies.
    let (out, st) = s.statement(&job);
    let params = &st["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(params["job"]["profile"], "untrusted-pr");
    let trigger = &params["trigger"];
    assert_eq!(trigger["kind"], "github");
    assert_eq!(trigger["event"], "pull_request");
    assert_eq!(trigger["repository"], "org/app");
    assert_eq!(trigger["ref"], "refs/heads/feature");
    assert_eq!(trigger["sender"], "eve");
    assert_eq!(trigger["delivery"], "d-1");
    assert_eq!(trigger["change_request"]["fork"], true);
    assert_eq!(trigger["change_request"]["head_repository"], "eve/app");
    assert_eq!(params["source"]["commit"], s.commit.as_str());
    assert_eq!(params["source"]["git"], s.clone_url.as_str());
    assert_eq!(
        st["predicate"]["runDetails"]["builder"]["id"],
        format!("{}/builders/untrusted-pr", s.url)
    );
    s.verify(&out, "untrusted-pr");

    // No token or webhook secret reached the controller's logs.
    let log = s.controller_log();
    assert!(
        log.contains("webhook queued a job"),
        "debug log is captured"
    );
    for secret in [
        GH_SECRET, GH_TOKEN, GL_SECRET, GL_TOKEN, FJ_SECRET, FJ_TOKEN,
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the controller log"
        );
    }
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn gitlab_merge_requests_and_forgejo_pushes_queue_jobs_and_report_statuses() {
    let s = setup();

    // GitLab: a merge request from a fork, authenticated by X-Gitlab-Token.
    let mr = serde_json::json!({
        "object_kind": "merge_request",
        "user": {"username": "mallory"},
        "project": {"id": 1, "path_with_namespace": "org/app", "git_http_url": "https://forge.invalid/org/app.git"},
        "object_attributes": {
            "iid": 3, "action": "open", "source_branch": "fix",
            "source_project_id": 9, "target_project_id": 1,
            "last_commit": {"id": s.commit},
            "source": {"id": 9, "path_with_namespace": "mallory/app", "git_http_url": s.clone_url},
            "target": {"id": 1, "path_with_namespace": "org/app", "git_http_url": "https://forge.invalid/org/app.git"},
        },
    })
    .to_string()
    .into_bytes();
    let gl = |token: &str| {
        vec![
            ("X-Gitlab-Event", "Merge Request Hook".to_owned()),
            ("X-Gitlab-Event-UUID", "gl-1".to_owned()),
            ("X-Gitlab-Token", token.to_owned()),
        ]
    };
    let (code, _) = s.deliver("gl", &gl("wrong-token"), &mr);
    assert_eq!(code, 401);
    let (code, answer) = s.deliver("gl", &gl(GL_SECRET), &mr);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["profile"], "untrusted-pr");
    let gl_job = answer["job_id"].as_str().unwrap().to_owned();

    // Forgejo: a push to main of the base repository keeps the file's profile.
    let push = serde_json::json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": s.commit,
        "repository": {"id": 1, "full_name": "org/app", "clone_url": s.clone_url},
        "pusher": {"login": "bob"}, "sender": {"login": "bob"},
    })
    .to_string()
    .into_bytes();
    let fj = |signature: String| {
        vec![
            ("X-Forgejo-Event", "push".to_owned()),
            ("X-Forgejo-Delivery", "fj-1".to_owned()),
            ("X-Forgejo-Signature", signature),
        ]
    };
    let (code, _) = s.deliver("fj", &fj(hmac_hex(GL_SECRET, &push)), &push);
    assert_eq!(code, 401, "another forge's secret");
    let (code, answer) = s.deliver("fj", &fj(hmac_hex(FJ_SECRET, &push)), &push);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["profile"], "trusted");
    let fj_job = answer["job_id"].as_str().unwrap().to_owned();

    // An ignored event and a pull request that is closed queue nothing.
    let (code, answer) = s.deliver(
        "fj",
        &[
            ("X-Forgejo-Event", "issues".to_owned()),
            ("X-Forgejo-Delivery", "fj-2".to_owned()),
            ("X-Forgejo-Signature", hmac_hex(FJ_SECRET, b"{}")),
        ],
        b"{}",
    );
    assert_eq!(code, 200);
    assert!(answer["ignored"].is_string(), "{answer}");

    for job in [&gl_job, &fj_job] {
        let status = s.finish(job);
        assert!(status.contains("state:   succeeded"), "{status}");
    }
    let gl_statuses = s.api.wait_for_statuses("/gl/api/v4/", |c| c.len() >= 2);
    assert_eq!(
        states(&gl_statuses),
        ["pending", "success"],
        "{gl_statuses:#?}"
    );
    for call in &gl_statuses {
        assert_eq!(
            call.target,
            format!("/gl/api/v4/projects/org%2Fapp/statuses/{}", s.commit)
        );
        assert_eq!(call.body["name"], "airlock/forge-hello");
        assert_eq!(call.headers["private-token"], GL_TOKEN);
        assert_eq!(call.body["target_url"], format!("{}/jobs/{gl_job}", s.url));
    }
    let fj_statuses = s.api.wait_for_statuses("/fj/api/v1/", |c| c.len() >= 2);
    assert_eq!(
        states(&fj_statuses),
        ["pending", "success"],
        "{fj_statuses:#?}"
    );
    for call in &fj_statuses {
        assert_eq!(
            call.target,
            format!("/fj/api/v1/repos/org/app/statuses/{}", s.commit)
        );
        assert_eq!(call.headers["authorization"], format!("token {FJ_TOKEN}"));
        assert_eq!(call.body["context"], "airlock/forge-hello");
    }
    let gets: Vec<String> = s
        .api
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET")
        .map(|c| c.target)
        .collect();
    assert!(
        gets.contains(&format!(
            "/gl/api/v4/projects/mallory%2Fapp/repository/files/airlock.toml?ref={}",
            s.commit
        )),
        "{gets:?}"
    );
    let (_, st) = s.statement(&gl_job);
    let trigger = &st["predicate"]["buildDefinition"]["externalParameters"]["trigger"];
    assert_eq!(trigger["kind"], "gitlab");
    assert_eq!(trigger["event"], "merge_request");
    assert_eq!(trigger["change_request"]["number"], 3);
    let (_, st) = s.statement(&fj_job);
    let params = &st["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(params["trigger"]["event"], "push");
    assert_eq!(params["trigger"]["sender"], "bob");
    assert_eq!(params["job"]["profile"], "trusted");
}

fn github_push(setup: &Setup, git_ref: &str, commit: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": git_ref, "before": "0".repeat(40), "after": commit, "deleted": false,
        "repository": {"id": 1, "full_name": "org/app", "clone_url": setup.clone_url},
        "sender": {"login": "rel-eng"},
    })
    .to_string()
    .into_bytes()
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn release_runs_only_for_tag_pushes_of_allowed_repositories() {
    let s = setup();
    let headers = |delivery: &str, body: &[u8]| {
        vec![
            ("X-GitHub-Event", "push".to_owned()),
            ("X-GitHub-Delivery", delivery.to_owned()),
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(GH_SECRET, body)),
            ),
        ]
    };
    // A branch push of a job file that asks for `release`: refused, and the commit says why.
    let branch = github_push(&s, "refs/heads/main", &s.release_commit);
    let before = s.submitted_total();
    let (code, answer) = s.deliver("gh", &headers("b-1", &branch), &branch);
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("only for tag pushes"),
        "{answer}"
    );
    assert_eq!(s.submitted_total(), before);
    let refused = s
        .api
        .wait_for_statuses(&s.release_commit, |c| !c.is_empty());
    assert_eq!(states(&refused), ["error"]);
    assert_eq!(refused[0].body["context"], "airlock");
    assert!(refused[0].body.get("target_url").is_none(), "{refused:#?}");

    // The tag push of an allowed repository runs as release and is signed by the release key.
    let tag = github_push(&s, "refs/tags/v1.0.0", &s.release_commit);
    let (code, answer) = s.deliver("gh", &headers("t-1", &tag), &tag);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["profile"], "release");
    let job = answer["job_id"].as_str().unwrap().to_owned();
    let status = s.finish(&job);
    assert!(status.contains("state:   succeeded"), "{status}");
    let (out, st) = s.statement(&job);
    assert_eq!(
        st["predicate"]["buildDefinition"]["externalParameters"]["trigger"]["event"],
        "tag"
    );
    s.verify(&out, "release");

    // The same tag on a forge that does not list the repository: refused.
    let (code, answer) = s.deliver(
        "fj",
        &[
            ("X-Forgejo-Event", "push".to_owned()),
            ("X-Forgejo-Delivery", "t-2".to_owned()),
            ("X-Forgejo-Signature", hmac_hex(FJ_SECRET, &tag)),
        ],
        &tag,
    );
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("release_repositories"),
        "{answer}"
    );
}
