//! The security review's reproducers, as an attacker who writes a pull request's
//! `airlock.toml` would try them against `airlock run` (and `airlock submit`): each fails
//! early with a clear error (exit 2, the field named, nothing run) or runs with the
//! artifact intact, and no key material can be reached from a job file.

use std::path::{Path, PathBuf};

use crate::common::*;

/// A job directory `root/name` whose `airlock.toml` has `source` as its `[source]` body,
/// the base image, `steps` and the `outputs` list.
fn attack_job(root: &Path, name: &str, source: &str, steps: &str, outputs: &str) -> PathBuf {
    let (layout, digest) = base_image();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), "from the source tree\n").unwrap();
    let file = dir.join("airlock.toml");
    std::fs::write(
        &file,
        format!(
            "[job]\nname = \"{name}\"\nprofile = \"untrusted-pr\"\ntimeout = \"2m\"\n\n\
             [source]\n{source}\n\n[image]\nref = \"oci-layout:{}@{digest}\"\n\n{steps}\n\n\
             [outputs]\npaths = [{outputs}]\n",
            layout.display()
        ),
    )
    .unwrap();
    file
}

const STEP: &str = "[[steps]]\nrun = \"echo ok > /out/result.txt\"";

/// `airlock run` with `home` as AIRLOCK_HOME and extra arguments.
fn run_job(file: &Path, home: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = airlock();
    c.arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("AIRLOCK_HOME", home);
    run(c)
}

/// Exit 2, the file and every `expect` named, nothing written to `out`.
fn assert_refused(o: &std::process::Output, file: &Path, out: &Path, expect: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(2), "refused as bad input: {t}");
    assert!(
        t.contains(&file.display().to_string()),
        "names the file: {t}"
    );
    for e in expect {
        assert!(t.contains(e), "expected `{e}` in: {t}");
    }
    assert!(!out.exists(), "nothing ran: {t}");
    assert!(!t.contains("internal error"), "{t}");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_source_outside_the_job_files_tree_is_refused_and_keys_are_never_packable() {
    let root = scratch();
    let home = root.path().join("home");
    let keys = home.join("keys");
    let out = root.path().join("out");
    // Allowed explicitly, a directory outside the tree is packed.
    let shared = root.path().join("shared-src");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("input.txt"), "shared\n").unwrap();
    let file = attack_job(
        root.path(),
        "explicit",
        &format!("path = \"{}\"", shared.display()),
        "[[steps]]\nrun = \"cp input.txt /out/result.txt\"",
        "\"result.txt\"",
    );
    let shared_s = shared.display().to_string();
    let o = run_job(
        &file,
        &home,
        &root.path().join("out-explicit"),
        &["--allow-source-dir", &shared_s],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(root.path().join("out-explicit/result.txt")).unwrap(),
        "shared\n"
    );
    // Now the real signing key is in `keys/`; no job file can reach it.
    assert!(keys.join("local-provenance.key").is_file());
    let keys_s = keys.display().to_string();
    for (name, source) in [
        ("absolute", format!("path = \"{keys_s}\"")),
        ("var-lib", "path = \"/var/lib/airlock/keys\"".to_owned()),
        ("dotdot", "path = \"../..\"".to_owned()),
        ("inner-dotdot", "path = \"sub/../../home/keys\"".to_owned()),
    ] {
        let file = attack_job(root.path(), name, &source, STEP, "\"result.txt\"");
        let o = run_job(&file, &home, &out, &[]);
        assert_refused(
            &o,
            &file,
            &out,
            &["source.path", "leaves the job file's directory"],
        );
    }
    // A symlink inside the tree that resolves to the keys: checked after resolving.
    let file = attack_job(
        root.path(),
        "symlink",
        "path = \"src\"",
        STEP,
        "\"result.txt\"",
    );
    std::os::unix::fs::symlink(&keys, file.parent().unwrap().join("src")).unwrap();
    let o = run_job(&file, &home, &out, &[]);
    assert_refused(&o, &file, &out, &["source.path"]);

    // An operator's --allow-source-dir never opens airlock's own state.
    let file = attack_job(
        root.path(),
        "allowed",
        &format!("path = \"{keys_s}\""),
        STEP,
        "\"result.txt\"",
    );
    let home_s = home.display().to_string();
    let o = run_job(&file, &home, &out, &["--allow-source-dir", &home_s]);
    assert_refused(&o, &file, &out, &["source.path", "airlock's own state"]);

    // `airlock submit` applies the same rule before it connects anywhere.
    let file = attack_job(
        root.path(),
        "submitted",
        &format!("path = \"{keys_s}\""),
        STEP,
        "\"result.txt\"",
    );
    let token = root.path().join("token");
    std::fs::write(&token, "not-a-real-token").unwrap();
    let mut c = airlock();
    c.arg("submit")
        .arg(&file)
        .args(["--controller", "http://127.0.0.1:1", "--token-file"])
        .arg(&token);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("source.path"), "{}", text(&o));
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn outputs_named_like_airlocks_files_are_refused_and_the_provenance_stays_intact() {
    let root = scratch();
    let home = root.path().join("home");
    let out = root.path().join("out");
    for (name, outputs) in [
        ("envelope", "\"clob.intoto.jsonl\""),
        ("bundle", "\"clob.sigstore.json\""),
        ("partial", "\"x.airlock-partial\""),
        ("dir", "\"provdir.intoto.jsonl/a\""),
    ] {
        let file = attack_job(root.path(), name, "path = \".\"", STEP, outputs);
        let o = run_job(&file, &home, &out, &[]);
        assert_refused(&o, &file, &out, &["outputs.paths"]);
    }
    // A glob that would pick up such a file: the job fails, naming it; nothing is signed.
    let file = attack_job(
        root.path(),
        "clob",
        "path = \".\"",
        "[[steps]]\nrun = \"echo artifact > /out/result.txt; echo forged > /out/clob.intoto.jsonl\"",
        "\"*\"",
    );
    let o = run_job(&file, &home, &out, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "the build's fault: {t}");
    assert!(
        t.contains("clob.intoto.jsonl") && t.contains("rename it"),
        "{t}"
    );
    assert!(!out.join("clob.intoto.jsonl").exists(), "{t}");
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn values_that_would_fail_late_are_refused_at_parse_time_with_their_range() {
    let root = scratch();
    let home = root.path().join("home");
    let out = root.path().join("out");
    let tmp0 = attack_job(
        root.path(),
        "tmp0",
        "path = \".\"",
        &format!("{STEP}\n\n[resources]\ntmp = \"0\""),
        "\"result.txt\"",
    );
    let o = run_job(&tmp0, &home, &out, &[]);
    assert_refused(&o, &tmp0, &out, &["resources.tmp", "1MiB..=1TiB"]);

    // A 6 MB script: refused with the limit, not a transport error.
    let big = format!("[[steps]]\nrun = \"{}\"", "x".repeat(6 << 20));
    let file = attack_job(root.path(), "big", "path = \".\"", &big, "\"result.txt\"");
    let o = run_job(&file, &home, &out, &[]);
    assert_refused(&o, &file, &out, &["steps[0].run", "256 KiB"]);
    assert!(!text(&o).contains("OutOfRange"), "{}", text(&o));
    assert!(text(&o).len() < 10_000, "the script is not echoed back");

    // A declared digest that does not match the packed tree: both digests.
    let zeros = "0".repeat(64);
    let file = attack_job(
        root.path(),
        "digest",
        &format!("path = \".\"\nsha256 = \"{zeros}\""),
        STEP,
        "\"result.txt\"",
    );
    let o = run_job(&file, &home, &out, &[]);
    assert_refused(
        &o,
        &file,
        &out,
        &["source.sha256", &format!("sha256:{zeros}")],
    );
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_build_that_writes_a_tree_sixteen_thousand_levels_deep_does_not_hurt_its_runner() {
    let root = scratch();
    let home = root.path().join("home");
    let out = root.path().join("out");
    // In /work: the job succeeds and the workspace is removed afterwards.
    // The reproducer's one-line perl loop (a shell's `cd` fails once $PWD passes PATH_MAX).
    let deep = "[[steps]]\nrun = \"perl -e 'for (1..16000) { mkdir q(d) or die $!; chdir q(d) or \
                die $! }' && echo ok > /out/result.txt\"";
    let file = attack_job(
        root.path(),
        "deep-work",
        "path = \".\"",
        deep,
        "\"result.txt\"",
    );
    let o = run_job(&file, &home, &out, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        !t.contains("overflow") && !t.contains("internal error"),
        "{t}"
    );
    assert_eq!(
        crate::host::entries(&home.join("runner/runners")),
        Vec::<String>::new()
    );

    // In /out: collection stops at its depth limit and blames the build.
    let deep_out = "[[steps]]\nrun = \"echo ok > /out/result.txt; cd /out; i=0; \
                    while [ $i -lt 300 ]; do mkdir d && cd d || exit 7; i=$((i+1)); done\"";
    let out2 = root.path().join("out2");
    let file = attack_job(
        root.path(),
        "deep-out",
        "path = \".\"",
        deep_out,
        "\"result.txt\"",
    );
    let o = run_job(&file, &home, &out2, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("deeper than 256 directories"), "{t}");
    assert_eq!(
        crate::host::entries(&home.join("runner/runners")),
        Vec::<String>::new()
    );
}
