//! Bad job files are refused before anything runs, naming file, field and fix.

use crate::common::*;

fn refused(name: &str, body: &str, expect: &[&str]) {
    let home = scratch();
    let dir = home.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("airlock.toml");
    std::fs::write(&file, body).unwrap();
    let state = home.path().join("state");
    let o = airlock_run(&file, &state, &home.path().join("out"));
    assert_eq!(o.status.code(), Some(2), "bad input exits 2");
    let t = text(&o);
    assert!(
        t.contains(&file.display().to_string()),
        "names the file: {t}"
    );
    assert!(t.contains("hint:"), "gives a hint: {t}");
    for e in expect {
        assert!(t.contains(e), "expected `{e}` in: {t}");
    }
    assert!(!state.exists(), "nothing ran: no state was created");
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn job(image: &str, extra_job: &str, steps: &str) -> String {
    format!(
        "[job]\nname = \"bad\"\n{extra_job}\n[source]\npath = \".\"\n\n[image]\nref = \"{image}\"\n\n{steps}\n\n[outputs]\npaths = [\"x\"]\n"
    )
}

#[test]
fn unknown_field_is_refused() {
    refused(
        "unknown",
        &job(
            &format!("oci-layout:/x@{DIGEST}"),
            "colour = \"red\"",
            "[[steps]]\nrun = \"true\"",
        ),
        &["job", "colour"],
    );
}

#[test]
fn image_without_digest_is_refused() {
    refused(
        "nodigest",
        &job("oci-layout:/x", "", "[[steps]]\nrun = \"true\""),
        &["image.ref", "no digest"],
    );
}

#[test]
fn image_tag_is_refused() {
    refused(
        "tag",
        &job("debian:bookworm", "", "[[steps]]\nrun = \"true\""),
        &["image.ref", "pin the image by digest"],
    );
}

#[test]
fn step_without_command_is_refused() {
    refused(
        "nocmd",
        &job(
            &format!("oci-layout:/x@{DIGEST}"),
            "",
            "[[steps]]\nname = \"build\"",
        ),
        &["steps[0]", "no command"],
    );
}
