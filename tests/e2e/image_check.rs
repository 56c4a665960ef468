//! Checked build images: a profile with `[image_check] require_attestation = true` runs a job
//! only on an image vouched for by provenance signed with a key of `--image-key`. The image
//! is built by airlock itself (`[[outputs.images]]`); its provenance beside the layout (where
//! `--out` wrote it) vouches for it, and the log names the attestation. Another key, an image
//! without provenance (the example base image) and a runner without `--image-key` fail the
//! job before any step. Pushed with `airlock push` to Debian's docker-registry, the image is
//! vouched for by its OCI referrer (found through the referrers tag, the registry having no
//! referrers API); the base image in that registry, with no referrer, is refused.

use std::path::{Path, PathBuf};

use crate::common::*;

/// A static program for an image without a shell: writes `/out/ran`.
const RAN_C: &str = r#"
#include <stdio.h>
int main(void) {
    FILE *f = fopen("/out/ran", "w");
    if (!f) return 1;
    fputs("ran in the checked image", f);
    return fclose(f) ? 1 : 0;
}
"#;

/// The step of the jobs that run on the checked image; its start must never be logged when
/// the check fails.
const STEP_LINE: &str = "==> step 1 `in-the-image`";

/// Writes `<root>/<dir>/airlock.toml` with `body` (and ran.c) and returns it.
fn job_file(root: &Path, dir: &str, body: &str) -> PathBuf {
    let dir = root.join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ran.c"), RAN_C).unwrap();
    let file = dir.join("airlock.toml");
    std::fs::write(&file, body).unwrap();
    file
}

/// Builds the image `build-image` with airlock into `<home>/built/`; returns the layout.
fn build_image(home: &Path) -> PathBuf {
    let job = job_file(
        home,
        "build",
        &format!(
            r#"
[job]
name = "imgcheck-build"
profile = "trusted"
timeout = "5m"
[source]
path = "."
[image]
ref = "oci-layout:{base}"
[[steps]]
name = "rootfs"
run = """
mkdir -p /out/root/usr/local/bin
gcc -O2 -static -o /out/root/usr/local/bin/ran ran.c
"""
[[outputs.images]]
name = "build-image"
rootfs = "root"
"#,
            base = base_image().0.display()
        ),
    );
    let out = home.join("built");
    let o = airlock_run(&job, home, &out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.join("imgcheck-build.intoto.jsonl").is_file());
    out.join("build-image")
}

/// A job on `image` (a ref, pinned or a layout to pin) whose one step writes `/out/ran`.
fn job_on(home: &Path, dir: &str, image: &str) -> PathBuf {
    job_file(
        home,
        dir,
        &format!(
            r#"
[job]
name = "imgcheck-use"
profile = "trusted"
timeout = "5m"
[source]
path = "."
[image]
ref = "{image}"
[[steps]]
name = "in-the-image"
argv = ["/usr/local/bin/ran"]
[outputs]
paths = ["ran"]
"#
        ),
    )
}

/// The built-in profiles with `trusted` requiring checked images.
fn checking_profiles(home: &Path) -> PathBuf {
    let dir = home.join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(repo().join("sandbox-profiles")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let trusted = dir.join("trusted.toml");
    let text = std::fs::read_to_string(&trusted).unwrap();
    let on = text.replace("require_attestation = false", "require_attestation = true");
    assert_ne!(on, text);
    std::fs::write(&trusted, on).unwrap();
    dir
}

fn local_key(home: &Path) -> PathBuf {
    home.join("keys/local-provenance.pub")
}

/// The keyid of a public key file, as airlock computes it.
fn keyid(key: &Path) -> String {
    airlock_attest::load_verifying_key(key)
        .unwrap()
        .keyid()
        .to_owned()
}

/// `--profiles-dir` and an `--image-key` per key.
fn flags(profiles: &Path, keys: &[&Path]) -> Vec<String> {
    let mut f = vec!["--profiles-dir".to_owned(), profiles.display().to_string()];
    for k in keys {
        f.push("--image-key".to_owned());
        f.push(k.display().to_string());
    }
    f
}

/// The job failed (exit 1) before its step, with the image check's message.
fn assert_refused_before_any_step(o: &std::process::Output, out: &Path) -> String {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("image check failed before any step"), "{t}");
    assert!(!t.contains(STEP_LINE), "a step ran: {t}");
    assert!(!out.join("ran").exists());
    t
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn an_image_built_by_airlock_is_vouched_for_by_its_provenance_and_others_are_refused() {
    let home = scratch();
    let home = home.path();
    let layout = build_image(home);
    let profiles = checking_profiles(home);
    let key = local_key(home);
    let layout_ref = format!("oci-layout:{}", layout.display());

    // (a) The provenance beside the layout, the right key: the step runs, and the log names
    // the attestation (file and line, key, builder id).
    let out = home.join("out-a");
    let o = airlock_run_with(
        &job_on(home, "a", &layout_ref),
        home,
        &out,
        &flags(&profiles, &[&key]),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert_eq!(
        std::fs::read_to_string(out.join("ran")).unwrap(),
        "ran in the checked image"
    );
    let provenance = layout.parent().unwrap().join("imgcheck-build.intoto.jsonl");
    let vouched = format!(
        "image check: vouched for by {} line 1 (envelope sha256:",
        provenance.display()
    );
    assert!(t.contains(&vouched), "{t}");
    assert!(
        t.contains(&format!("signed by trusted key {}", keyid(&key))),
        "{t}"
    );
    assert!(t.contains(", builder https://"), "{t}");
    assert!(t.contains("/builders/local"), "{t}");
    let check_line = t.find("image check: vouched").unwrap();
    assert!(
        check_line < t.find(STEP_LINE).unwrap(),
        "the check comes before the step: {t}"
    );

    // (b) Another key: refused before any step, saying whose signature it is.
    let other = home.join("other-keys");
    let mut keygen = airlock();
    keygen.args(["keys", "generate", "--out"]).arg(&other);
    assert!(run(keygen).status.success());
    let other_key = other.join("provenance.pub");
    let out = home.join("out-b");
    let o = airlock_run_with(
        &job_on(home, "b", &layout_ref),
        home,
        &out,
        &flags(&profiles, &[&other_key]),
    );
    let t = assert_refused_before_any_step(&o, &out);
    assert!(t.contains(&layout.display().to_string()), "{t}");
    assert!(t.contains("none of them is trusted"), "{t}");
    assert!(t.contains(&keyid(&key)), "names the signer: {t}");

    // The same with a required builder id that is not the local builder's.
    let out = home.join("out-b2");
    let mut f = flags(&profiles, &[&key]);
    f.extend([
        "--image-builder-id".to_owned(),
        "https://airlock.example/builders/release".to_owned(),
    ]);
    let o = airlock_run_with(&job_on(home, "b2", &layout_ref), home, &out, &f);
    let t = assert_refused_before_any_step(&o, &out);
    assert!(t.contains("builder.id is"), "{t}");

    // (c) The example base image has no provenance beside it: found none.
    let (base, base_digest) = base_image();
    let out = home.join("out-c");
    let o = airlock_run_with(
        &job_on(
            home,
            "c",
            &format!("oci-layout:{}@{base_digest}", base.display()),
        ),
        home,
        &out,
        &flags(&profiles, &[&key]),
    );
    let t = assert_refused_before_any_step(&o, &out);
    assert!(
        t.contains(&format!(
            "looked for *.intoto.jsonl files beside the layout, in {}",
            base.parent().unwrap().display()
        )),
        "{t}"
    );
    assert!(t.contains("found none"), "{t}");

    // A runner without --image-key: the message names the flag.
    let out = home.join("out-d");
    let o = airlock_run_with(
        &job_on(home, "d", &layout_ref),
        home,
        &out,
        &flags(&profiles, &[]),
    );
    let t = assert_refused_before_any_step(&o, &out);
    assert!(t.contains("--image-key"), "{t}");

    // The built-in profiles require nothing: the unsigned base image runs as before.
    let out = home.join("out-e");
    let o = airlock_run(
        &job_file(
            home,
            "e",
            &format!(
                r#"
[job]
name = "imgcheck-plain"
profile = "trusted"
timeout = "5m"
[source]
path = "."
[image]
ref = "oci-layout:{}@{base_digest}"
[[steps]]
name = "in-the-image"
run = "echo plain > /out/ran"
[outputs]
paths = ["ran"]
"#,
                base.display()
            ),
        ),
        home,
        &out,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("image check"), "{}", text(&o));
}

/// `AIRLOCK_TEST_REGISTRY` from `scripts/registry.sh`: `127.0.0.1:PORT`.
fn registry_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is unset: run `eval \"$(scripts/registry.sh)\"` (scripts/test.sh does)")
    })
}

#[test]
#[ignore = "needs root, the base image and the test registry: run scripts/test.sh"]
fn a_pushed_image_is_vouched_for_by_its_referrer_and_an_unattested_one_is_refused() {
    let home = scratch();
    let home = home.path();
    let layout = build_image(home);
    let profiles = checking_profiles(home);
    let key = local_key(home);

    // airlock push: the image with its provenance attached as an OCI referrer.
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).unwrap();
    let repository = format!(
        "{}/e2e-imgcheck/build-{}",
        registry_env("AIRLOCK_TEST_REGISTRY"),
        hex::encode(id)
    );
    let mut push = airlock();
    push.arg("push")
        .arg(&layout)
        .arg(&repository)
        .arg("--key")
        .arg(&key);
    let o = run(push);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let pinned = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pushed "))
        .unwrap_or_else(|| panic!("no `pushed` line: {stdout}"))
        .to_owned();
    let referrer = stdout
        .lines()
        .find_map(|l| l.strip_prefix("attached provenance "))
        .and_then(|r| r.split_once('@'))
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| panic!("no `attached provenance` line: {stdout}"));

    // The job on the pushed image: vouched for by the referrer, found through the
    // referrers tag (Debian's docker-registry has no referrers API).
    let out = home.join("out-r");
    let o = airlock_run_with(
        &job_on(home, "r", &pinned),
        home,
        &out,
        &flags(&profiles, &[&key]),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert_eq!(
        std::fs::read_to_string(out.join("ran")).unwrap(),
        "ran in the checked image"
    );
    assert!(
        t.contains(&format!(
            "image check: vouched for by referrer {referrer} layer sha256:"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!("signed by trusted key {}", keyid(&key))),
        "{t}"
    );

    // The base image in the registry has no referrer: refused before it is pulled.
    let base = registry_env("AIRLOCK_TEST_REGISTRY_IMAGE");
    let out = home.join("out-s");
    let o = airlock_run_with(
        &job_on(home, "s", &base),
        home,
        &out,
        &flags(&profiles, &[&key]),
    );
    let t = assert_refused_before_any_step(&o, &out);
    assert!(t.contains("the referrers tag"), "{t}");
    assert!(t.contains("found none"), "{t}");
    assert!(!t.contains("pulling image"), "nothing was pulled: {t}");
}
