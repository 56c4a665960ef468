//! Property tests of the lockfile parsers on what a source tree (an attacker's pull request)
//! can hold: arbitrary text, and mutations of well-formed lockfiles. Whatever the input, a
//! parser never panics; what it accepts has at least one pin per package, names that are
//! one safe path component or a scoped npm name, and exact versions; what it refuses is a
//! job error, never an infrastructure failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use airlock_job::Ecosystem;
use airlock_runner::fetch::deps::{DepsError, parse_lockfile};
use proptest::prelude::*;

const CARGO: &str = r#"version = 3

[[package]]
name = "app"
version = "0.1.0"

[[package]]
name = "itoa"
version = "1.0.15"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c"
"#;

const NPM: &str = r#"{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app"},
"node_modules/ms":{"version":"2.1.3","resolved":"https://registry.invalid/ms/-/ms-2.1.3.tgz",
"integrity":"sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA=="}}}"#;

const PYPI: &str = "six==1.17.0 \\\n    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n";

fn check(ecosystem: Ecosystem, text: &str) {
    match parse_lockfile(ecosystem, "lock", text) {
        Ok(packages) => {
            for p in packages {
                assert!(!p.pins.is_empty(), "{p:?}");
                assert!(
                    !p.version.is_empty() && !p.version.contains(['/', ' ', '*']),
                    "{p:?}"
                );
                let parts: Vec<&str> = p.name.split('/').collect();
                assert!(
                    parts.len() == 1
                        || (ecosystem == Ecosystem::Npm
                            && parts.len() == 2
                            && parts[0].starts_with('@')),
                    "{p:?}"
                );
                assert!(
                    parts
                        .iter()
                        .all(|s| !s.is_empty() && *s != "." && *s != ".."),
                    "{p:?}"
                );
                assert!(p.purl().starts_with(&format!("pkg:{ecosystem}/")), "{p:?}");
            }
        }
        Err(e) => {
            assert!(e.is_job_error(), "{e}");
            assert!(
                matches!(e, DepsError::Lockfile { .. } | DepsError::Package { .. }),
                "{e}"
            );
        }
    }
}

/// A lockfile with a few bytes replaced, inserted or deleted.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec((0..base.len(), any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
        let mut bytes = base.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        for e in Ecosystem::ALL {
            check(e, &text);
        }
    }

    #[test]
    fn mutated_cargo_locks(text in mutated(CARGO)) { check(Ecosystem::Cargo, &text); }

    #[test]
    fn mutated_npm_locks(text in mutated(NPM)) { check(Ecosystem::Npm, &text); }

    #[test]
    fn mutated_requirements(text in mutated(PYPI)) { check(Ecosystem::Pypi, &text); }
}

#[test]
fn the_unmutated_lockfiles_parse() {
    for (e, text) in [
        (Ecosystem::Cargo, CARGO),
        (Ecosystem::Npm, NPM),
        (Ecosystem::Pypi, PYPI),
    ] {
        let packages = parse_lockfile(e, "lock", text).expect("parse");
        assert_eq!(packages.len(), 1, "{e}");
    }
}
