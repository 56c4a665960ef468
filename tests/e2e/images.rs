//! `[[outputs.images]]`: a job packages a directory of `/out` as an OCI image. The image is
//! reproducible (two runs, one manifest digest), signed as a subject (airlock verify and
//! securesystemslib), refused when a layer is swapped, read and pushed unchanged by the
//! third-party `skopeo` to Debian's docker-registry, runnable as a job's image, and usable
//! as the base of another image. A rootfs with an escaping symlink or a setuid file fails
//! the job, naming the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A static C program: `mk PATH TEXT` writes TEXT to PATH, creating its parents. The
/// images below have no shell, so this is how a step in them writes files.
const MK_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    char path[4096];
    strncpy(path, argv[1], sizeof path - 1);
    path[sizeof path - 1] = 0;
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') { *p = 0; mkdir(path, 0755); *p = '/'; }
    }
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    fputs(argv[2], f);
    return fclose(f) ? 1 : 0;
}
"#;

/// The base image's layout (pinned at submit: it is named without a digest).
fn base_layout() -> PathBuf {
    base_image().0
}

/// Writes `<root>/<dir>/airlock.toml` (+ mk.c and hello.c) and returns the job file.
fn job_file(root: &Path, dir: &str, body: &str) -> PathBuf {
    let dir = root.join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mk.c"), MK_C).unwrap();
    std::fs::copy(repo().join("examples/hello/hello.c"), dir.join("hello.c")).unwrap();
    let file = dir.join("airlock.toml");
    std::fs::write(&file, body).unwrap();
    file
}

/// The job building `hello-image` from scratch: two static binaries and a relative symlink.
fn image_job(root: &Path, dir: &str) -> PathBuf {
    job_file(
        root,
        dir,
        &format!(
            r#"
[job]
name = "img"
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
gcc -O2 -static -o /out/root/usr/local/bin/hello hello.c
gcc -O2 -static -o /out/root/usr/local/bin/mk mk.c
ln -s usr/local/bin/hello /out/root/hello
"""
[[outputs.images]]
name = "hello-image"
rootfs = "root"
entrypoint = ["/usr/local/bin/hello"]
env = ["PATH=/usr/local/bin"]
user = "65532:65532"
labels = {{ "org.opencontainers.image.title" = "hello" }}
"#,
            base = base_layout().display()
        ),
    )
}

/// The subject named `name` in the job's statement: its sha256 and media type.
fn subject(out: &Path, job: &str, name: &str) -> (String, String) {
    let s = statement(out, job);
    let found = s["subject"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no subject {name} in {s}"))
        .clone();
    (
        found["digest"]["sha256"].as_str().unwrap().to_owned(),
        found["mediaType"].as_str().unwrap_or_default().to_owned(),
    )
}

fn manifest(layout: &Path, digest: &str) -> serde_json::Value {
    let bytes = std::fs::read(layout.join("blobs/sha256").join(digest)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn verify(out: &Path, artifact: &Path, home: &Path) -> std::process::Output {
    let mut c = airlock();
    c.arg("verify")
        .arg(artifact)
        .arg("--provenance")
        .arg(out.join("img.intoto.jsonl"))
        .arg("--key")
        .arg(home.join("keys/local-provenance.pub"));
    run(c)
}

#[test]
#[ignore = "needs root, the base image, the venv and the test registry: run scripts/test.sh"]
fn an_image_output_is_reproducible_signed_runnable_and_pushes_unchanged() {
    let home = scratch();
    let (out1, out2) = (home.path().join("out1"), home.path().join("out2"));
    for (dir, out) in [("a", &out1), ("b", &out2)] {
        let o = airlock_run(&image_job(home.path(), dir), home.path(), out);
        assert_eq!(o.status.code(), Some(0), "run {dir}: {}", text(&o));
        assert!(
            text(&o).contains("image output hello-image: manifest sha256:"),
            "{}",
            text(&o)
        );
    }
    // Reproducible: two runs, one manifest digest, named as the image.
    let (digest, media_type) = subject(&out1, "img", "hello-image");
    assert_eq!(subject(&out2, "img", "hello-image").0, digest);
    assert_eq!(media_type, "application/vnd.oci.image.manifest.v1+json");
    let layout = out1.join("hello-image");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], format!("sha256:{digest}"));
    // The layout's files are not subjects of their own.
    let s = statement(&out1, "img");
    assert_eq!(s["subject"].as_array().unwrap().len(), 1, "{s}");

    // Signed: airlock verify reads the layout; securesystemslib checks the envelope and
    // that the manifest's bytes are a subject.
    let v = verify(&out1, &layout, home.path());
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let key = home.path().join("keys/local-provenance.pub");
    let manifest_blob = layout.join("blobs/sha256").join(&digest);
    let t = third_party_verify(&out1.join("img.intoto.jsonl"), &key, &manifest_blob);
    assert_eq!(t.status.code(), Some(0), "{}", text(&t));

    // A swapped layer fails verification although the manifest is untouched.
    let m = manifest(&layout, &digest);
    let layer = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let tampered = home.path().join("tampered");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&layout)
        .arg(&tampered)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::write(tampered.join("blobs/sha256").join(&layer), b"not the layer").unwrap();
    let bad = home.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::rename(&tampered, bad.join("hello-image")).unwrap();
    let v = verify(&out1, &bad.join("hello-image"), home.path());
    assert_ne!(
        v.status.code(),
        Some(0),
        "a swapped layer verified: {}",
        text(&v)
    );
    assert!(text(&v).contains("layer 1"), "{}", text(&v));

    // skopeo reads the layout and pushes it unchanged: the registry serves the same bytes.
    let registry = std::env::var("AIRLOCK_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!("AIRLOCK_TEST_REGISTRY is unset: run `eval \"$(scripts/registry.sh)\"` (scripts/test.sh does)")
    });
    let target = format!("docker://{registry}/airlock/hello-image:e2e");
    let push = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(&target)
        .output()
        .unwrap();
    assert!(push.status.success(), "skopeo copy: {}", text(&push));
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &target])
        .output()
        .unwrap();
    assert!(raw.status.success(), "skopeo inspect: {}", text(&raw));
    assert_eq!(airlock_attest::Sha256Digest::of(&raw.stdout).hex(), digest);

    // Runnable: a job whose image is the new image (no shell: the step execs `mk`), which
    // packages a second image on top of it.
    let second = job_file(
        home.path(),
        "c",
        &format!(
            r#"
[job]
name = "img"
profile = "trusted"
timeout = "5m"
[source]
path = "."
[image]
ref = "oci-layout:{layout}"
[[steps]]
name = "in-the-image"
argv = ["/usr/local/bin/mk", "/out/ran", "ran in hello-image"]
[[steps]]
name = "rootfs"
argv = ["/usr/local/bin/mk", "/out/extra/etc/motd", "layered"]
[outputs]
paths = ["ran"]
[[outputs.images]]
name = "layered"
rootfs = "extra"
base = "oci-layout:{layout}"
compression = "none"
"#,
            layout = layout.display()
        ),
    );
    let out3 = home.path().join("out3");
    let o = airlock_run(&second, home.path(), &out3);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out3.join("ran")).unwrap(),
        "ran in hello-image"
    );
    let (layered, _) = subject(&out3, "img", "layered");
    let m2 = manifest(&out3.join("layered"), &layered);
    let layers = m2["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{m2}");
    assert_eq!(
        layers[0]["digest"],
        format!("sha256:{layer}"),
        "the base's layer comes first"
    );
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        m2["annotations"]["org.opencontainers.image.base.digest"],
        format!("sha256:{digest}")
    );
    let config = manifest(
        &out3.join("layered"),
        m2["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    assert_eq!(
        config["config"]["Entrypoint"][0], "/usr/local/bin/hello",
        "inherited from the base"
    );
    let s = statement(&out3, "img");
    let base_dep = s["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "images/layered/base")
        .unwrap_or_else(|| panic!("no base dependency in {s}"))
        .clone();
    assert_eq!(base_dep["digest"]["sha256"], digest.as_str());
    let v = verify(&out3, &out3.join("layered"), home.path());
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn an_escaping_symlink_or_a_setuid_file_in_the_rootfs_fails_the_job_naming_it() {
    let home = scratch();
    for (case, command, expected) in [
        (
            "link",
            "mkdir -p /out/root/etc && ln -s ../../../etc/shadow /out/root/etc/shadow",
            "etc/shadow",
        ),
        (
            "setuid",
            "mkdir -p /out/root && cp /bin/true /out/root/su && chmod 4755 /out/root/su",
            "setuid",
        ),
        (
            "whiteout",
            "mkdir -p /out/root && touch /out/root/.wh.etc",
            "whiteout",
        ),
    ] {
        let job = job_file(
            home.path(),
            case,
            &format!(
                r#"
[job]
name = "img"
profile = "trusted"
timeout = "5m"
[source]
path = "."
[image]
ref = "oci-layout:{base}"
[[steps]]
run = "{command}"
[[outputs.images]]
name = "m"
rootfs = "root"
"#,
                base = base_layout().display()
            ),
        );
        let out = home.path().join(format!("out-{case}"));
        let o = airlock_run(&job, home.path(), &out);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{case}: the build's fault: {t}");
        assert!(
            t.contains("image output `m`") && t.contains(expected),
            "{case}: {t}"
        );
        assert!(
            !out.join("img.intoto.jsonl").exists(),
            "{case}: nothing signed"
        );
    }
}
