//! Hermetic inputs end to end: a registry image pinned by digest (a tag resolved at submit
//! and recorded), declared downloads mounted read-only at `/inputs`, a git source pinned
//! from a tag, and a corrupted registry blob that fails the job and caches nothing.

use std::path::Path;
use std::process::Command;

use airlock_attest::Sha256Digest;

use crate::common::*;

/// `AIRLOCK_TEST_REGISTRY_IMAGE` from `scripts/registry.sh`: `HOST:PORT/airlock/base@sha256:HEX`.
fn registry_image() -> (String, String) {
    let image = std::env::var("AIRLOCK_TEST_REGISTRY_IMAGE").unwrap_or_else(|_| {
        panic!("AIRLOCK_TEST_REGISTRY_IMAGE is unset: run `eval \"$(scripts/registry.sh)\"` (scripts/test.sh does)")
    });
    let (name, digest) = image.split_once('@').unwrap();
    (name.to_owned(), digest.to_owned())
}

/// Writes `<root>/<name>/airlock.toml` with the given `[source]`, image ref and extra TOML.
fn job(root: &Path, name: &str, source: &str, image: &str, rest: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("airlock.toml");
    std::fs::write(
        &file,
        format!(
            "[job]\nname = \"{name}\"\nprofile = \"untrusted-pr\"\ntimeout = \"2m\"\n\n\
             [source]\n{source}\n\n[image]\nref = \"{image}\"\n\n{rest}\n"
        ),
    )
    .unwrap();
    file
}

fn dependency<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no resolved dependency `{name}` in {st}"))
}

fn cached(home: &Path, digest: &Sha256Digest) -> bool {
    home.join("runner/cache/blobs/sha256")
        .join(digest.hex())
        .exists()
}

#[test]
#[ignore = "needs root, the loopback registry and the base image: run scripts/test.sh"]
fn registry_image_by_tag_is_pinned_at_submit_pulled_and_recorded() {
    let (name, digest) = registry_image();
    let home = scratch();
    let tag = format!("{name}:latest");
    let file = job(
        home.path(),
        "from-registry",
        "path = \".\"",
        &tag,
        "[[steps]]\nrun = \"gcc --version | head -n1 > /out/gcc.txt\"\n\n[outputs]\npaths = [\"gcc.txt\"]",
    );
    let out = home.path().join("out");
    let o = airlock_run(&file, home.path(), &out);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!("pinned image {tag} to {name}@{digest}")),
        "{t}"
    );
    assert!(t.contains("pulling image"), "progress lines: {t}");
    assert!(t.contains("MiB/s"), "transfer rate in progress lines: {t}");

    let st = statement(&out, "from-registry");
    let image = dependency(&st, "image");
    assert_eq!(image["uri"], format!("{name}@{digest}"));
    assert_eq!(
        image["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let asked = &st["predicate"]["buildDefinition"]["externalParameters"]["image"];
    assert_eq!(asked["resolved_from"], tag, "the tag asked for is recorded");
    let layers = image["annotations"]["layers"].as_array().unwrap();
    assert!(!layers.is_empty(), "layers are annotated: {image}");
    assert!(
        layers
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("sha256:"))
    );
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn declared_inputs_are_read_only_and_a_wrong_sha256_fails_before_any_step() {
    let (layout, digest) = base_image();
    let image = format!("oci-layout:{}@{digest}", layout.display());
    let body = b"pinned input bytes\n".to_vec();
    let sha = Sha256Digest::of(&body);
    let url = serve(body);
    let home = scratch();
    let out = home.path().join("out");

    let good = job(
        home.path(),
        "inputs-ok",
        "path = \".\"",
        &image,
        &format!(
            "[[inputs]]\nname = \"data.txt\"\nurl = \"{url}/data.txt\"\nsha256 = \"{sha}\"\n\n\
             [[steps]]\nrun = \"cp /inputs/data.txt /out/copy && if touch /inputs/data.txt 2>/dev/null; then exit 9; fi\"\n\n\
             [outputs]\npaths = [\"copy\"]"
        ),
    );
    let o = airlock_run(&good, home.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read(out.join("copy")).unwrap(),
        b"pinned input bytes\n"
    );
    let st = statement(&out, "inputs-ok");
    let dep = dependency(&st, "data.txt");
    assert_eq!(dep["digest"]["sha256"], sha.hex());
    assert_eq!(dep["uri"], format!("{url}/data.txt"));

    // The same URL pinned to other bytes: the job fails before its first step and the
    // cache gains nothing.
    let evil_body = b"substituted bytes\n".to_vec();
    let evil_url = serve(evil_body.clone());
    let bad = job(
        home.path(),
        "inputs-bad",
        "path = \".\"",
        &image,
        &format!(
            "[[inputs]]\nname = \"data.txt\"\nurl = \"{evil_url}/data.txt\"\nsha256 = \"{}\"\n\n\
             [[steps]]\nrun = \"touch /out/ran\"\n\n[outputs]\npaths = [\"ran\"]",
            Sha256Digest::of(b"expected bytes\n")
        ),
    );
    let o = airlock_run(&bad, home.path(), &home.path().join("out-bad"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "a build failure: {t}");
    assert!(t.contains("nothing was cached"), "{t}");
    assert!(!t.contains("==> step"), "no step may run: {t}");
    assert!(!cached(home.path(), &Sha256Digest::of(&evil_body)));
    assert!(cached(home.path(), &sha), "the good input stays cached");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "-C"])
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_DATE", "1712345678 +0000")
        .env("GIT_COMMITTER_DATE", "1712345678 +0000")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn git_source_tag_is_pinned_checked_out_and_dated_by_its_commit() {
    let (layout, digest) = base_image();
    let image = format!("oci-layout:{}@{digest}", layout.display());
    let home = scratch();
    // A bare repository with a tagged commit, then a newer commit on main.
    let src = home.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("version.txt"), "v1\n").unwrap();
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "v1"]);
    let tagged = git(&src, &["rev-parse", "HEAD"]);
    git(&src, &["tag", "-a", "v1", "-m", "release v1"]);
    std::fs::write(src.join("version.txt"), "v2\n").unwrap();
    git(&src, &["commit", "-q", "-am", "v2"]);
    let bare = home.path().join("repo.git");
    let status = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(&bare)
        .status()
        .unwrap();
    assert!(status.success());
    let url = format!("file://{}", bare.display());

    let file = job(
        home.path(),
        "from-git",
        &format!("git = \"{url}\"\nref = \"v1\""),
        &image,
        "[[steps]]\nrun = \"cp version.txt /out/version.txt && echo $SOURCE_DATE_EPOCH > /out/epoch && test ! -e .git\"\n\n\
         [outputs]\npaths = [\"version.txt\", \"epoch\"]",
    );
    let out = home.path().join("out");
    let o = airlock_run(&file, home.path(), &out);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!("pinned git ref `v1` of {url} to commit {tagged}")),
        "{t}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("version.txt")).unwrap(),
        "v1\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("epoch")).unwrap(),
        "1712345678\n"
    );

    let st = statement(&out, "from-git");
    let source = dependency(&st, "source");
    assert_eq!(source["digest"]["gitCommit"], tagged);
    assert_eq!(source["uri"], format!("git+{url}"));
    let asked = &st["predicate"]["buildDefinition"]["externalParameters"]["source"];
    assert_eq!(asked["ref"], "v1", "the ref asked for is recorded");
    assert_eq!(asked["commit"], tagged);
}

/// Builds a one-layer image layout whose layer is unique to this run; returns the layout
/// directory, the manifest digest and the layer digest.
fn tiny_layout(root: &Path) -> (std::path::PathBuf, Sha256Digest, Sha256Digest) {
    let files = root.join("layer-files");
    std::fs::create_dir_all(&files).unwrap();
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).unwrap();
    std::fs::write(files.join("nonce"), hex::encode(nonce)).unwrap();
    let layer_tar = root.join("layer.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&layer_tar)
        .arg("-C")
        .arg(&files)
        .arg("nonce")
        .status()
        .unwrap();
    assert!(status.success());
    let layer = std::fs::read(&layer_tar).unwrap();
    let layer_digest = Sha256Digest::of(&layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer_digest.prefixed()]}
    }))
    .unwrap();
    let config_digest = Sha256Digest::of(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.prefixed(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest.prefixed(), "size": layer.len()}]
    }))
    .unwrap();
    let manifest_digest = Sha256Digest::of(&manifest);
    let layout = root.join("tiny-oci");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for (d, bytes) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
    }
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": manifest_digest.prefixed(), "size": manifest.len()}]
        }))
        .unwrap(),
    )
    .unwrap();
    (layout, manifest_digest, layer_digest)
}

#[test]
#[ignore = "needs root and the loopback registry: run scripts/test.sh"]
fn a_corrupted_registry_blob_fails_the_job_and_caches_nothing() {
    let (name, _) = registry_image();
    let registry = name.split('/').next().unwrap().to_owned();
    let storage = std::env::var("AIRLOCK_TEST_REGISTRY_STORAGE")
        .expect("AIRLOCK_TEST_REGISTRY_STORAGE is unset: run scripts/registry.sh");
    let home = scratch();
    let (layout, manifest, layer) = tiny_layout(home.path());
    let repo = format!("{registry}/airlock/corrupt");
    let push = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{repo}:t"))
        .status()
        .unwrap();
    assert!(push.success(), "skopeo push");
    // Flip the layer's bytes where the registry keeps them (same length).
    let data = Path::new(&storage)
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex())
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1100;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let file = job(
        home.path(),
        "corrupt-image",
        "path = \".\"",
        &format!("{repo}@{}", manifest.prefixed()),
        "[[steps]]\nrun = \"true\"\n\n[outputs]\npaths = [\"x\"]",
    );
    let o = airlock_run(&file, home.path(), &home.path().join("out"));
    let t = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a corrupt image fails the job: {t}"
    );
    assert!(t.contains(&format!("not the pinned sha256:{layer}")), "{t}");
    assert!(!t.contains("==> step"), "{t}");
    assert!(
        !cached(home.path(), &layer),
        "the corrupt layer is not cached"
    );
    let tmp = home.path().join("runner/cache/tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
}

#[test]
#[ignore = "needs root, the loopback registry and the base image: run scripts/test.sh"]
fn two_concurrent_jobs_needing_one_registry_image_download_it_once() {
    let (name, digest) = registry_image();
    let root = scratch();
    let dir = root.path().join("controller");
    let port = init_controller(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let _controller = start_controller(&dir.join("controller.toml"), port);
    // A fresh runner state: an empty blob cache, two jobs at a time.
    let _runner = Kill(
        airlock()
            .args([
                "runner",
                "--controller",
                &url,
                "--max-jobs",
                "2",
                "--registration-secret-file",
            ])
            .arg(dir.join("runner.secret"))
            .arg("--state-dir")
            .arg(root.path().join("runner"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let submit = |job_name: &str| {
        let file = job(
            root.path(),
            job_name,
            "path = \".\"",
            &format!("{name}@{digest}"),
            "[[steps]]\nrun = \"echo ok > /out/ok\"\n\n[outputs]\npaths = [\"ok\"]",
        );
        airlock()
            .arg("submit")
            .arg(&file)
            .arg("--wait")
            .env("AIRLOCK_CONTROLLER", &url)
            .env("AIRLOCK_TOKEN_FILE", dir.join("admin.token"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Both submitted before either can have pulled anything.
    let (a, b) = (submit("twin-a"), submit("twin-b"));
    let mut logs = String::new();
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{t}");
        let job_id = String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_owned();
        let mut l = airlock();
        l.arg("logs")
            .arg(&job_id)
            .args(["--controller", &url, "--token-file"])
            .arg(dir.join("admin.token"));
        logs.push_str(&text(&run(l)));
    }
    assert_eq!(
        logs.matches("pulled layer 1 ").count(),
        1,
        "exactly one of the two jobs downloads the layer: {logs}"
    );
    assert!(logs.contains("already cached"), "{logs}");
    assert_eq!(
        logs.matches("unpacking layer 1/").count(),
        1,
        "and exactly one unpacks it: {logs}"
    );
    assert!(logs.contains("cache hit"), "{logs}");
}

#[test]
#[ignore = "needs root, the loopback registry and the base image: run scripts/test.sh"]
fn examples_hello_runs_with_its_image_from_the_registry_by_digest() {
    let (name, digest) = registry_image();
    let home = scratch();
    let example = home.path().join("hello");
    std::fs::create_dir_all(&example).unwrap();
    std::fs::copy(
        repo().join("examples/hello/hello.c"),
        example.join("hello.c"),
    )
    .unwrap();
    let toml = std::fs::read_to_string(repo().join("examples/hello/airlock.toml")).unwrap();
    let pinned = with_image_ref(&toml, &format!("{name}@{digest}"));
    std::fs::write(example.join("airlock.toml"), pinned).unwrap();
    let out = home.path().join("out");
    let o = airlock_run(&example.join("airlock.toml"), home.path(), &out);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("pulled layer 1"), "{t}");
    let greeting = Command::new(out.join("hello")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&greeting.stdout),
        "Hello from a hermetic airlock build!\n"
    );
    let st = statement(&out, "hello");
    let image = dependency(&st, "image");
    assert_eq!(image["uri"], format!("{name}@{digest}"));
    assert_eq!(
        image["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert!(
        image["annotations"]["layers"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    );
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn archive_source_is_downloaded_verified_unpacked_and_recorded() {
    let (layout, digest) = base_image();
    let image = format!("oci-layout:{}@{digest}", layout.display());
    let home = scratch();
    let tree = home.path().join("tree");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    std::fs::write(tree.join("src/msg.txt"), "from the archive\n").unwrap();
    let archive = home.path().join("src.tar.gz");
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .arg("src")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let bytes = std::fs::read(&archive).unwrap();
    let sha = Sha256Digest::of(&bytes);
    let url = format!("{}/src.tar.gz", serve(bytes));
    let file = job(
        home.path(),
        "from-archive",
        &format!("archive = \"{url}\"\nsha256 = \"{sha}\""),
        &image,
        "[[steps]]\nrun = \"cp src/msg.txt /out/msg.txt\"\n\n[outputs]\npaths = [\"msg.txt\"]",
    );
    let out = home.path().join("out");
    let o = airlock_run(&file, home.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("msg.txt")).unwrap(),
        "from the archive\n"
    );
    let st = statement(&out, "from-archive");
    let source = dependency(&st, "source");
    assert_eq!(source["uri"], url);
    assert_eq!(source["digest"]["sha256"], sha.hex());
}
