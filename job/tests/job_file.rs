//! Job files: good ones parse, bad ones are refused with the field and a hint.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use airlock_job::{Command, ImageRef, JobSpec, SourceSpec};

const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn good() -> String {
    format!(
        r#"
[job]
name = "hello"
profile = "trusted"
timeout = "10m"

[source]
path = "."

[image]
ref = "oci-layout:../base-image/oci@sha256:{DIGEST}"

[[steps]]
name = "build"
run = "cc -o /out/hello hello.c"
env = {{ CFLAGS = "-O2" }}

[[steps]]
argv = ["/out/hello"]

[outputs]
paths = ["hello"]
"#
    )
}

fn err(text: &str) -> String {
    JobSpec::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn good_job_parses_into_typed_values() {
    let spec = JobSpec::from_toml_str(&good()).unwrap();
    assert_eq!(spec.job.name, "hello");
    assert!(matches!(spec.image.reference, ImageRef::OciLayout { .. }));
    assert!(matches!(spec.source, SourceSpec::Path { .. }));
    assert_eq!(spec.steps.len(), 2);
    assert_eq!(spec.step_name(1), "step-2");
    assert!(matches!(spec.steps[0].command, Command::Shell(_)));
    assert_eq!(spec.timeout().as_secs(), 600);
}

#[test]
fn json_form_round_trips_and_is_validated_again() {
    let spec = JobSpec::from_toml_str(&good()).unwrap();
    let json = spec.to_json();
    let back = JobSpec::from_json(&json).unwrap();
    assert_eq!(spec, back);
    assert_eq!(json, back.to_json(), "canonical JSON is stable");
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["job"]["surprise"] = serde_json::json!(1);
    let e = JobSpec::from_json(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("surprise"), "{e}");
}

#[test]
fn unknown_field_is_refused_with_its_path() {
    let e = err(&good().replace("timeout = \"10m\"", "timeout = \"10m\"\ncolour = \"blue\""));
    assert!(e.contains("job"), "{e}");
    assert!(e.contains("colour"), "{e}");
    assert!(e.contains("hint:"), "{e}");
}

#[test]
fn image_without_digest_is_refused() {
    let e = err(&good().replace(
        &format!("oci-layout:../base-image/oci@sha256:{DIGEST}"),
        "oci-layout:../base-image/oci",
    ));
    assert!(e.contains("image.ref"), "{e}");
    assert!(e.contains("no digest"), "{e}");
    assert!(e.contains("sha256"), "{e}");
}

#[test]
fn image_tag_instead_of_digest_is_refused() {
    let e = err(&good().replace(
        &format!("oci-layout:../base-image/oci@sha256:{DIGEST}"),
        "debian:bookworm",
    ));
    assert!(e.contains("image.ref"), "{e}");
    assert!(e.contains("pin the image by digest"), "{e}");
}

#[test]
fn step_without_command_is_refused() {
    let e = err(&good().replace("argv = [\"/out/hello\"]", "name = \"empty\""));
    assert!(e.contains("steps[1]"), "{e}");
    assert!(e.contains("no command"), "{e}");
}

#[test]
fn missing_steps_and_outputs_are_refused() {
    let no_steps: String =
        good().split("[[steps]]").next().unwrap().to_string() + "[outputs]\npaths = [\"a\"]\n";
    assert!(err(&no_steps).contains("no steps"));
    let e = err(&good().replace("paths = [\"hello\"]", "paths = [\"../etc/passwd\"]"));
    assert!(e.contains("outputs.paths[0]"), "{e}");
}

#[test]
fn unknown_profile_and_reserved_env_are_refused() {
    assert!(err(&good().replace("\"trusted\"", "\"root\"")).contains("job.profile"));
    let e = err(&good().replace("CFLAGS", "SOURCE_DATE_EPOCH"));
    assert!(e.contains("cannot be overridden"), "{e}");
}

#[test]
fn git_source_needs_a_full_commit() {
    let e = err(&good().replace(
        "path = \".\"",
        "git = \"https://example.org/a.git\"\ncommit = \"main\"",
    ));
    assert!(e.contains("source"), "{e}");
    assert!(e.contains("40-hex"), "{e}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("airlock.toml");
    std::fs::write(
        &path,
        good().replace("[[steps]]\nargv", "[[steps]]\nbogus = 1\nargv"),
    )
    .unwrap();
    let e = JobSpec::from_toml_file(&path).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
}

#[test]
fn caches_parse_round_trip_and_bad_ones_name_their_field() {
    let text = good().replace(
        "[outputs]",
        "[[caches]]\nname = \"target\"\npath = \"/cache/target\"\nkey = [\"Cargo.lock\"]\n\n[outputs]",
    );
    let spec = JobSpec::from_toml_str(&text).unwrap();
    assert_eq!(spec.caches.len(), 1);
    assert_eq!(spec.caches[0].key, ["Cargo.lock"]);
    assert_eq!(JobSpec::from_json(&spec.to_json()).unwrap(), spec);
    let e = err(&text.replace("/cache/target", "/etc/target"));
    assert!(e.contains("caches[0].path"), "{e}");
    let e = err(&text.replace("key = [", "colour = 1\nkey = ["));
    assert!(e.contains("colour"), "{e}");
}
