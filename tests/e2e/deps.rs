//! `[[deps]]` end to end: lockfile packages fetched from a loopback mirror, verified against
//! the lockfile, laid out read-only at `/deps` and recorded in provenance as purls; a mirror
//! serving tampered bytes fails the job before any step, naming the package; the cache serves
//! verified bytes only; real offline builds of the three examples (cargo, npm, pip) in the
//! toolchains image.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::common::*;
use crate::deps_mirror::Mirror;

/// The toolchains image layout and its manifest digest.
pub fn toolchains_image() -> (PathBuf, String) {
    example_image("toolchains-image")
}

/// `(purl, alg, hex, downloadLocation)` of every resolved dependency with a `pkg:` uri.
fn packages_in(st: &serde_json::Value) -> Vec<(String, String, String, String)> {
    st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["uri"].as_str().is_some_and(|u| u.starts_with("pkg:")))
        .map(|d| {
            let (alg, hex) = d["digest"].as_object().unwrap().iter().next().unwrap();
            (
                d["uri"].as_str().unwrap().to_owned(),
                alg.clone(),
                hex.as_str().unwrap().to_owned(),
                d["downloadLocation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// `(name, version, checksum)` of every crates.io package of the Rust example's lockfile.
fn cargo_lock_packages() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(repo().join("examples/deps-rust/Cargo.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("source").is_some())
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
                p["checksum"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A job in `<root>/<name>/` with the Rust example's lockfile, on the base image: its step
/// lists what `/deps` holds and proves it read-only (no toolchain needed).
pub fn listing_job(root: &Path, name: &str, profile: &str) -> PathBuf {
    let (layout, digest) = base_image();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        repo().join("examples/deps-rust/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    let file = dir.join("airlock.toml");
    std::fs::write(
        &file,
        format!(
            r#"[job]
name = "{name}"
profile = "{profile}"
timeout = "3m"

[source]
path = "."

[image]
ref = "oci-layout:{}@{digest}"

[[deps]]
ecosystem = "cargo"
lockfile = "Cargo.lock"

[[steps]]
run = """
set -e
ls /deps/cargo/vendor > /out/vendor.txt
cat "$CARGO_HOME/config.toml" > /out/config.toml
if touch /deps/x 2>/dev/null || touch /deps/cargo/vendor/itoa-*/Cargo.toml 2>/dev/null; then
  echo writable; exit 1
fi
"""

[outputs]
paths = ["vendor.txt", "config.toml"]
"#,
            layout.display()
        ),
    )
    .unwrap();
    file
}

#[test]
#[ignore = "needs root, the base image and the deps fixtures: run scripts/test.sh"]
fn lockfile_packages_are_vendored_read_only_and_recorded_as_purls() {
    let mirror = Mirror::with_fixtures();
    let home = scratch();
    let file = listing_job(home.path(), "deps-listing", "trusted");
    let out = home.path().join("out");
    let o = airlock_run_with(&file, home.path(), &out, &mirror.flags());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let locked = cargo_lock_packages();
    assert!(locked.len() >= 5, "the example pins several crates");
    let vendor = std::fs::read_to_string(out.join("vendor.txt")).unwrap();
    for (name, version, _) in &locked {
        assert!(
            vendor.lines().any(|l| l == format!("{name}-{version}")),
            "{name}-{version} not vendored: {vendor}"
        );
    }
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("replace-with = \"airlock-vendored\""),
        "{config}"
    );
    assert!(
        t.contains(&format!("pins {} cargo packages", locked.len())),
        "{t}"
    );

    let st = statement(&out, "deps-listing");
    let recorded = packages_in(&st);
    assert_eq!(recorded.len(), locked.len(), "{recorded:?}");
    for (name, version, checksum) in &locked {
        let purl = format!("pkg:cargo/{name}@{version}");
        let entry = recorded
            .iter()
            .find(|r| r.0 == purl)
            .unwrap_or_else(|| panic!("{purl} missing from provenance: {recorded:?}"));
        assert_eq!(
            (entry.1.as_str(), entry.2.as_str()),
            ("sha256", checksum.as_str())
        );
        assert_eq!(
            entry.3,
            format!("{}/cargo/{name}/{version}/download", mirror.url)
        );
    }

    // The SBOM lists the same lockfile packages, with the lockfile's digests, and both
    // formats' validators accept it (the mirror's loopback URL is no SPDX download location:
    // NOASSERTION, with the URL in sourceInfo).
    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("deps-listing.spdx.json")).unwrap())
            .unwrap();
    for (name, version, checksum) in &locked {
        let purl = format!("pkg:cargo/{name}@{version}");
        let p = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["externalRefs"][0]["referenceLocator"] == purl.as_str())
            .unwrap_or_else(|| panic!("{purl} missing from the SBOM"));
        assert_eq!(
            p["checksums"][0]["checksumValue"],
            checksum.as_str(),
            "{purl}"
        );
        assert_eq!(p["downloadLocation"], "NOASSERTION", "{purl}");
    }
    let pyspdxtools = venv_python().with_file_name("pyspdxtools");
    let mut c = std::process::Command::new(pyspdxtools);
    c.arg("-i").arg(out.join("deps-listing.spdx.json"));
    assert_eq!(
        run(c).status.code(),
        Some(0),
        "pyspdxtools refused the SBOM of a [[deps]] job"
    );

    // A second job on the same runner cache: every crate is a verified cache hit, even
    // with a mirror that now serves only tampered bytes.
    let downloads_before = mirror.requests().len();
    for path in mirror.paths().iter().filter(|p| p.starts_with("/cargo/")) {
        mirror.tamper(path);
    }
    let file2 = listing_job(home.path(), "deps-listing-2", "trusted");
    let out2 = home.path().join("out2");
    let o = airlock_run_with(&file2, home.path(), &out2, &mirror.flags());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert_eq!(
        mirror.requests().len(),
        downloads_before,
        "cached crates were fetched again"
    );
}

#[test]
#[ignore = "needs root, the base image and the deps fixtures: run scripts/test.sh"]
fn a_mirror_serving_tampered_bytes_fails_the_job_before_any_step_and_caches_nothing() {
    let mirror = Mirror::with_fixtures();
    let (name, version, checksum) = cargo_lock_packages()
        .into_iter()
        .find(|(n, _, _)| n == "itoa")
        .unwrap();
    let path = format!("/cargo/{name}/{version}/download");
    mirror.tamper(&path);
    let home = scratch();
    let file = listing_job(home.path(), "deps-tampered", "untrusted-pr");
    let out = home.path().join("out");
    let o = airlock_run_with(&file, home.path(), &out, &mirror.flags());
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("pkg:cargo/{name}@{version}")), "{t}");
    assert!(t.contains(&format!("expected sha256:{checksum}")), "{t}");
    assert!(t.contains("does not match the lockfile"), "{t}");
    assert!(!out.join("vendor.txt").exists(), "a step ran");
    // Nothing of the tampered download is in the cache, under any name.
    let blobs = home.path().join("runner/cache/blobs/sha256");
    assert!(!blobs.join(&checksum).exists());
    let tampered = sha2_hex(&mirror.body(&path));
    assert!(!blobs.join(tampered).exists(), "tampered bytes were cached");

    // The poisoned attempt left nothing a trusted job on the same runner cache could read:
    // with an honest mirror it gets the lockfile's bytes.
    let honest = Mirror::with_fixtures();
    let file = listing_job(home.path(), "deps-after-tamper", "trusted");
    let out = home.path().join("out-trusted");
    let o = airlock_run_with(&file, home.path(), &out, &honest.flags());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(blobs.join(&checksum).exists());
    assert_eq!(
        sha2_hex(&std::fs::read(blobs.join(&checksum)).unwrap()),
        checksum
    );
}

#[test]
#[ignore = "needs root, the base image and the deps fixtures: run scripts/test.sh"]
fn missing_mirror_and_a_lockfile_symlink_fail_with_what_to_do() {
    let home = scratch();
    let file = listing_job(home.path(), "deps-no-mirror", "untrusted-pr");
    let o = airlock_run_with(&file, home.path(), &home.path().join("out"), &[]);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("--mirror cargo=URL"), "{t}");

    // A lockfile that is a link to a host file is never read by the (root) runner.
    let file = listing_job(home.path(), "deps-symlink", "untrusted-pr");
    let lock = file.parent().unwrap().join("Cargo.lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &lock).unwrap();
    let mirror = Mirror::with_fixtures();
    let o = airlock_run_with(
        &file,
        home.path(),
        &home.path().join("out2"),
        &mirror.flags(),
    );
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("Cargo.lock") && t.contains("symlink"), "{t}");
    assert!(!t.contains("root:"), "{t}");
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Copies `examples/<name>` into `root` and points its image at the toolchains layout.
fn example(root: &Path, name: &str) -> PathBuf {
    let (layout, digest) = toolchains_image();
    let src = repo().join("examples").join(name);
    let dest = root.join(name);
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    for junk in ["target", "node_modules", "dist", ".venv", "build"] {
        let _ = std::fs::remove_dir_all(dest.join(junk));
    }
    let file = dest.join("airlock.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let pinned = with_image_ref(&text, &format!("oci-layout:{}@{digest}", layout.display()));
    std::fs::write(&file, pinned).unwrap();
    file
}

/// Runs an example against a fresh fixture mirror; returns its output dir and statement.
fn build_example(name: &str) -> (tempfile::TempDir, PathBuf, serde_json::Value, String) {
    let mirror = Mirror::with_fixtures();
    let home = scratch();
    let file = example(home.path(), name);
    let out = home.path().join("out");
    let o = airlock_run_with(&file, home.path(), &out, &mirror.flags());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let st = statement(&out, name);
    (home, out, st, t)
}

#[test]
#[ignore = "needs root, the toolchains image and the deps fixtures: run scripts/test.sh"]
fn the_rust_example_builds_offline_with_cargo_from_its_lockfile() {
    let (_home, out, st, _) = build_example("deps-rust");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        summary.contains("total downloads:") && summary.contains("\"packages\": 9"),
        "{summary}"
    );
    let recorded = packages_in(&st);
    for (name, version, checksum) in cargo_lock_packages() {
        assert!(
            recorded
                .iter()
                .any(|r| r.0 == format!("pkg:cargo/{name}@{version}")
                    && r.1 == "sha256"
                    && r.2 == checksum),
            "pkg:cargo/{name}@{version} not recorded: {recorded:?}"
        );
    }
}

#[test]
#[ignore = "needs root, the toolchains image and the deps fixtures: run scripts/test.sh"]
fn the_python_example_builds_a_wheel_offline_from_hashed_requirements() {
    let (_home, out, st, t) = build_example("deps-python");
    assert!(
        out.join("airlock_deps_python-0.1.0-py3-none-any.whl")
            .exists()
    );
    assert!(t.contains("Ran 4 tests") && t.contains("OK"), "{t}");
    let recorded = packages_in(&st);
    for purl in [
        "pkg:pypi/idna@3.10",
        "pkg:pypi/packaging@24.2",
        "pkg:pypi/six@1.17.0",
        "pkg:pypi/tomli@2.0.1",
        "pkg:pypi/setuptools@75.8.0",
        "pkg:pypi/wheel@0.45.1",
    ] {
        let entry = recorded
            .iter()
            .find(|r| r.0 == purl)
            .unwrap_or_else(|| panic!("{purl} not recorded: {recorded:?}"));
        assert_eq!(entry.1, "sha256");
        let pinned = std::fs::read_to_string(repo().join("examples/deps-python/requirements.txt"))
            .unwrap()
            + &std::fs::read_to_string(repo().join("examples/deps-python/build-requirements.txt"))
                .unwrap();
        assert!(
            pinned.contains(&format!("sha256:{}", entry.2)),
            "{purl}: digest not from the lockfile"
        );
    }
}

#[test]
#[ignore = "needs root, the toolchains image and the deps fixtures: run scripts/test.sh"]
fn the_node_example_installs_offline_with_npm_ci_from_its_lockfile() {
    let (_home, out, st, t) = build_example("deps-node");
    assert!(out.join("out.txt").exists());
    assert!(t.contains("# fail 0"), "{t}");
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("examples/deps-node/package-lock.json")).unwrap(),
    )
    .unwrap();
    let recorded = packages_in(&st);
    let mut count = 0;
    for (key, entry) in lock["packages"].as_object().unwrap() {
        let Some(i) = key.rfind("node_modules/") else {
            continue;
        };
        count += 1;
        let name = &key[i + "node_modules/".len()..];
        let purl = match name.split_once('/') {
            Some((scope, rest)) => format!(
                "pkg:npm/%40{}/{rest}@{}",
                &scope[1..],
                entry["version"].as_str().unwrap()
            ),
            None => format!("pkg:npm/{name}@{}", entry["version"].as_str().unwrap()),
        };
        let sri = entry["integrity"].as_str().unwrap();
        let hex = hex::encode(
            base64::engine::general_purpose::STANDARD
                .decode(sri.strip_prefix("sha512-").unwrap())
                .unwrap(),
        );
        assert!(
            recorded
                .iter()
                .any(|r| r.0 == purl && r.1 == "sha512" && r.2 == hex),
            "{purl} sha512:{hex} not recorded: {recorded:?}"
        );
    }
    assert_eq!(recorded.len(), count);
}
