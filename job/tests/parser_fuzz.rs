//! Property tests of the job-file parser, seeded with the attack reproducers of the security
//! review (a source outside the tree, outputs named like airlock's files, resources that
//! passed parsing and failed in the sandbox, a 6 MB script): whatever the bytes, parsing
//! never panics, and what it accepts keeps every bound the runner and controller rely on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use airlock_job::limits::{MAX_SPEC_BYTES, MEMORY_RANGE, TMP_RANGE};
use airlock_job::{JobSpec, SourcePolicy, SourceSpec, is_clean_relative, reserved_component};
use proptest::prelude::*;

const IMAGE: &str =
    "oci-layout:img@sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A job file with the given `[source]` line, step script, outputs and resources.
fn job_file(source: &str, run: &str, outputs: &str, resources: &str) -> String {
    format!(
        "[job]\nname = \"fuzz\"\n\n[source]\n{source}\n\n[image]\nref = \"{IMAGE}\"\n\n\
         [[steps]]\nrun = {run}\n\n[outputs]\npaths = [{outputs}]\n\n[resources]\n{resources}\n"
    )
}

/// Field values from the reproducers and their neighbours.
fn sources() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "path = \".\"",
        "path = \"/var/lib/airlock/keys\"",
        "path = \"../..\"",
        "path = \"sub/../..\"",
        "path = \"/\"",
        "path = \"\"",
        "path = \".\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
        "path = \".\"\nsha256 = \"zz\"",
        "git = \"https://example.invalid/r.git\"\ncommit = \"0123456789abcdef0123456789abcdef01234567\"",
        "git = \"https://user:pw@example.invalid/r.git\"\ncommit = \"0123456789abcdef0123456789abcdef01234567\"",
        "archive = \"file:///etc/passwd\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
    ])
    .prop_map(str::to_owned)
}

fn outputs() -> impl Strategy<Value = String> {
    let one = prop::sample::select(vec![
        "\"a\"",
        "\"bin/*\"",
        "\"clob.intoto.jsonl\"",
        "\"clob.sigstore.json\"",
        "\"x.airlock-partial\"",
        "\"provdir.intoto.jsonl/a\"",
        "\"*.intoto.jsonl\"",
        "\"../a\"",
        "\"/etc/passwd\"",
        "\"a//b\"",
        "\"[\"",
        "\"\"",
    ]);
    prop::collection::vec(one, 0..4).prop_map(|v| v.join(", "))
}

fn resources() -> impl Strategy<Value = String> {
    let one = prop::sample::select(vec![
        "tmp = \"0\"",
        "tmp = \"1\"",
        "tmp = \"1MiB\"",
        "tmp = \"2TiB\"",
        "tmp = \"-1\"",
        "memory = \"0\"",
        "memory = \"16MiB\"",
        "memory = \"18446744073709551615\"",
        "memory = \"99999999999999999999999GiB\"",
        "pids = 0",
        "pids = 1",
        "pids = -1",
        "pids = 1048577",
    ]);
    prop::collection::vec(one, 0..3).prop_map(|mut v| {
        // A key twice is a TOML error, which is fine, but keep most cases parseable.
        v.dedup_by(|a, b| a.split('=').next() == b.split('=').next());
        v.join("\n")
    })
}

fn runs() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"true\"".to_owned()),
        (0usize..400_000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        Just(format!("\"{}\"", "y".repeat(6 << 20))),
        Just("\"\"".to_owned()),
    ]
}

/// What an accepted job must satisfy, whatever the file said.
fn assert_bounded(spec: &JobSpec) {
    let r = &spec.resources;
    assert!(
        (TMP_RANGE.0..=TMP_RANGE.1).contains(&r.tmp.0),
        "tmp {:?}",
        r.tmp
    );
    assert!((MEMORY_RANGE.0..=MEMORY_RANGE.1).contains(&r.memory.0));
    assert!(r.pids >= 1);
    for p in &spec.outputs.paths {
        assert_eq!(reserved_component(p), None, "reserved output {p}");
        assert!(is_clean_relative(p), "unclean output {p}");
    }
    let json = spec.to_json();
    assert!(json.len() <= MAX_SPEC_BYTES);
    // What the client submits, the controller parses back to the same job.
    assert_eq!(&JobSpec::from_json(&json).unwrap(), spec);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn reproducer_mutations_are_refused_with_a_field_or_accepted_within_bounds(
        source in sources(), run in runs(), outputs in outputs(), resources in resources()
    ) {
        let text = job_file(&source, &run, &outputs, &resources);
        match JobSpec::from_toml_str(&text) {
            Ok(spec) => assert_bounded(&spec),
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(!shown.trim().is_empty());
                // Small enough to print: a 6 MB script is never echoed back.
                prop_assert!(shown.len() < 4096, "{} bytes of error", shown.len());
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(
        text in prop::collection::vec(
            prop::sample::select(vec![
                "[job]", "[source]", "[image]", "[[steps]]", "[outputs]", "[resources]",
                "[[inputs]]", "[oidc]", "\n", "=", "\"", "name", "path", "run", "paths", "tmp",
                "memory", "pids", "ref", "url", "sha256", "timeout", "[", "]", "{", "}", ",",
                "\"..\"", "\"/\"", "0", "-1", "1e309", "\u{0}", "\u{feff}", "#", "'''",
            ]),
            0..64,
        ).prop_map(|v| v.join(" "))
    ) {
        let _ = JobSpec::from_toml_str(&text);
        let _ = JobSpec::from_json(text.as_bytes());
    }

    #[test]
    fn a_confined_source_always_resolves_inside_the_job_files_tree(
        parts in prop::collection::vec(
            prop::sample::select(vec!["a", "b", ".", "..", "out", "up", "loop"]), 1..6)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("repo");
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::fs::create_dir_all(tmp.path().join("secret")).unwrap();
        // Symlinks out of the tree, up the tree, and in a loop.
        std::os::unix::fs::symlink(tmp.path().join("secret"), base.join("out")).unwrap();
        std::os::unix::fs::symlink("..", base.join("a/up")).unwrap();
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        let path = parts.join("/");
        let text = job_file(&format!("path = \"{path}\""), "\"true\"", "\"a\"", "");
        let Ok(mut spec) = JobSpec::from_toml_str(&text) else { return Ok(()) };
        let canonical_base = std::fs::canonicalize(&base).unwrap();
        if spec.confine_source(&base, &SourcePolicy::default()).is_ok() {
            let SourceSpec::Path { path: resolved, .. } = &spec.source else { panic!("not a path source") };
            prop_assert!(
                Path::new(resolved).starts_with(&canonical_base),
                "{path} resolved to {resolved}"
            );
        }
    }
}
