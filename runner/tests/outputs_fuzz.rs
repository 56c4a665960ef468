//! Property tests of the output collector on trees a build could write: random nesting,
//! names like airlock's own files (`x.intoto.jsonl`, `x.sigstore.json`, `x.airlock-partial`),
//! symlinks in and out of `/out`, hard links and FIFOs, against random patterns. Whatever the
//! tree, collection never panics, blames the build (never the platform) when it refuses, and
//! what it returns is only regular files inside `/out` with names clear of airlock's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use airlock_job::{is_clean_relative, reserved_component};
use airlock_runner::report::outputs::{OutputLimits, collect_outputs};
use proptest::prelude::*;

/// One entry a build writes below `/out`.
#[derive(Debug, Clone)]
enum Entry {
    File,
    Dir,
    LinkOutside,
    LinkInside,
    HardLink,
    Fifo,
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "bin",
    "x.intoto.jsonl",
    "y.sigstore.json",
    "z.airlock-partial",
    "fuzz.intoto.jsonl",
    ".hidden",
];

const PATTERNS: &[&str] = &[
    "a",
    "b",
    "*",
    "bin/*",
    "**",
    "**/a",
    "*/b",
    "a/b",
    "bin/a",
    "[ab]",
    "*.jsonl",
    "x*",
    "**/*.json",
];

fn entries() -> impl Strategy<Value = Vec<(Vec<&'static str>, Entry)>> {
    let path = prop::collection::vec(prop::sample::select(NAMES), 1..5);
    let kind = prop_oneof![
        6 => Just(Entry::File),
        3 => Just(Entry::Dir),
        1 => Just(Entry::LinkOutside),
        1 => Just(Entry::LinkInside),
        1 => Just(Entry::HardLink),
        1 => Just(Entry::Fifo),
    ];
    prop::collection::vec((path, kind), 0..12)
}

/// Writes the entries below `out` (an entry whose parent is a file is skipped, as a build's
/// failed `mkdir -p` would be).
fn write_tree(out: &Path, outside: &Path, tree: &[(Vec<&str>, Entry)]) {
    for (parts, kind) in tree {
        let path = out.join(parts.join("/"));
        if path.symlink_metadata().is_ok() {
            continue;
        }
        let Some(parent) = path.parent() else {
            continue;
        };
        if std::fs::create_dir_all(parent).is_err() {
            continue;
        }
        let _ = match kind {
            Entry::File => std::fs::write(&path, parts.join("/")),
            Entry::Dir => std::fs::create_dir(&path),
            Entry::LinkOutside => std::os::unix::fs::symlink(outside, &path),
            Entry::LinkInside => std::os::unix::fs::symlink(".", &path),
            Entry::HardLink => std::fs::hard_link(outside, &path),
            Entry::Fifo => nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRUSR)
                .map_err(std::io::Error::from),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn collected_outputs_are_regular_files_in_out_with_names_clear_of_airlocks(
        tree in entries(),
        patterns in prop::collection::vec(prop::sample::select(PATTERNS), 1..4),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let outside = tmp.path().join("host-secret");
        std::fs::write(&outside, "not an output").unwrap();
        write_tree(&out, &outside, &tree);
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        match collect_outputs(&out, &patterns, OutputLimits::default()) {
            Ok(found) => {
                let canonical_out = std::fs::canonicalize(&out).unwrap();
                for o in found {
                    prop_assert!(is_clean_relative(&o.path), "{}", o.path);
                    prop_assert_eq!(reserved_component(&o.path), None);
                    let meta = std::fs::symlink_metadata(&o.file).unwrap();
                    prop_assert!(meta.is_file(), "{} is not a regular file", o.path);
                    prop_assert_eq!(meta.nlink(), 1);
                    prop_assert_eq!(meta.len(), o.size);
                    prop_assert!(std::fs::canonicalize(&o.file).unwrap().starts_with(&canonical_out));
                    prop_assert_ne!(std::fs::read(&o.file).unwrap(), b"not an output".to_vec());
                }
            }
            Err(e) => prop_assert!(e.is_build_failure(), "blamed the platform: {e}"),
        }
    }
}
