//! SBOMs of a real sandboxed build (issue 20): `airlock run` of the hello example writes
//! `hello.spdx.json`, `hello.cdx.json` and `hello.sbom.intoto.jsonl`. Third-party tools judge
//! them: spdx-tools' `pyspdxtools` validates the SPDX 2.3 document, cyclonedx-python-lib's
//! strict validator the CycloneDX 1.6 BOM, securesystemslib the signed statement. The image's
//! package list is checked against Debian's own `dpkg-query` reading the image's dpkg status,
//! and the validators are shown to refuse broken documents.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::*;
use crate::provenance_fixtures::*;

/// `pyspdxtools -i FILE` from the venv (spdx-tools).
fn pyspdxtools(file: &Path) -> std::process::Output {
    let bin = venv_python().with_file_name("pyspdxtools");
    let mut c = Command::new(bin);
    c.arg("-i").arg(file);
    run(c)
}

/// tests/interop/validate_sbom.py cyclonedx FILE (cyclonedx-python-lib, strict, 1.6).
fn cyclonedx_validate(file: &Path) -> std::process::Output {
    let mut c = Command::new(venv_python());
    c.arg(repo().join("tests/interop/validate_sbom.py"))
        .arg("cyclonedx")
        .arg(file);
    run(c)
}

/// tests/interop/verify_dsse.py --sbom: securesystemslib checks the signature, in-toto the
/// Statement, spdx-tools the predicate, and `artifact` must be a subject.
fn third_party_verify_sbom(envelope: &Path, key: &Path, artifact: &Path) -> std::process::Output {
    let mut c = Command::new(venv_python());
    c.arg(repo().join("tests/interop/verify_dsse.py"))
        .arg(envelope)
        .arg(key)
        .arg("--artifact")
        .arg(artifact)
        .arg("--sbom");
    run(c)
}

/// (package, version) of every installed package in the base image, as Debian's dpkg-query
/// reads the image's own `var/lib/dpkg/status` (extracted with tar from the layer blob).
fn dpkg_query_of_base_image(scratch: &Path) -> BTreeSet<(String, String)> {
    let (layout, digest) = base_image();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let admin = scratch.join("dpkg-admin");
    std::fs::create_dir_all(&admin).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = layout.join("blobs/sha256").join(
            layer["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:"),
        );
        let o = Command::new("tar")
            .arg("-xf")
            .arg(&blob)
            .arg("-C")
            .arg(&admin)
            .args(["--strip-components=4", "./var/lib/dpkg/status"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.display()))
        .args(["-W", "-f", "${db:Status-Status} ${Package} ${Version}\\n"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dpkg-query: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let status = parts.next()?;
            let (name, version) = (parts.next()?, parts.next()?);
            (status == "installed").then(|| (name.to_owned(), version.to_owned()))
        })
        .collect()
}

#[test]
#[ignore = "needs root, the base image and the venv: run scripts/test.sh"]
fn sboms_of_a_real_build_validate_list_every_image_package_and_verify() {
    let b = build_hello(None);
    let out = b.artifact.parent().unwrap().to_path_buf();
    let spdx_file = out.join("hello.spdx.json");
    let cdx_file = out.join("hello.cdx.json");
    let envelope_file = out.join("hello.sbom.intoto.jsonl");
    let artifact_sha = airlock_attest::Sha256Digest::of(&std::fs::read(&b.artifact).unwrap()).hex();

    // 1. The formats' own validators accept both documents.
    let o = pyspdxtools(&spdx_file);
    assert_eq!(
        o.status.code(),
        Some(0),
        "pyspdxtools refused the SPDX document:\n{}",
        text(&o)
    );
    let o = cyclonedx_validate(&cdx_file);
    assert_eq!(
        o.status.code(),
        Some(0),
        "cyclonedx-python-lib refused the BOM:\n{}",
        text(&o)
    );
    assert!(text(&o).contains("valid"));

    // 2. Every installed package of the image's dpkg status, with its exact version, is in
    //    both documents, with a Debian purl.
    let installed = dpkg_query_of_base_image(b.home.path());
    assert!(installed.len() > 50, "dpkg-query found only {installed:?}");
    assert!(
        installed.iter().any(|(p, _)| p == "gcc-12"),
        "{installed:?}"
    );
    let spdx: Value = serde_json::from_slice(&std::fs::read(&spdx_file).unwrap()).unwrap();
    let cdx: Value = serde_json::from_slice(&std::fs::read(&cdx_file).unwrap()).unwrap();
    let spdx_packages: BTreeSet<(String, String)> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["SPDXID"]
                .as_str()
                .unwrap()
                .starts_with("SPDXRef-OsPackage-")
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["versionInfo"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        spdx_packages, installed,
        "the SPDX document's OS packages are not dpkg's"
    );
    let cdx_packages: BTreeSet<(String, String)> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:deb/debian/"))
        })
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        cdx_packages, installed,
        "the CycloneDX BOM's OS packages are not dpkg's"
    );
    let libc = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "libc6")
        .unwrap();
    let purl = libc["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap();
    assert!(
        purl.starts_with("pkg:deb/debian/libc6@")
            && purl.contains("distro=debian-12")
            && purl.contains("upstream=glibc"),
        "{purl}"
    );

    // 3. The output's sha256 is in both, and the image's manifest digest.
    let (_, image_digest) = base_image();
    let spdx_text = std::fs::read_to_string(&spdx_file).unwrap();
    let cdx_text = std::fs::read_to_string(&cdx_file).unwrap();
    for doc in [&spdx_text, &cdx_text] {
        assert!(doc.contains(&artifact_sha), "output digest missing");
        assert!(
            doc.contains(image_digest.trim_start_matches("sha256:")),
            "image digest missing"
        );
    }
    let output = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hello")
        .unwrap();
    assert_eq!(
        output["checksums"][0]["checksumValue"],
        artifact_sha.as_str()
    );

    // 4. The signed statement: securesystemslib verifies it with the provenance key, its
    //    predicate is the SPDX document, and its subjects are the provenance's.
    let o = third_party_verify_sbom(&envelope_file, &b.public_key, &b.artifact);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("securesystemslib verified"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("spdx-tools the SPDX 2.3 predicate"),
        "{}",
        text(&o)
    );
    let sbom_statement = statement_json(&read_envelope(&envelope_file));
    assert_eq!(
        sbom_statement["predicateType"],
        "https://spdx.dev/Document/v2.3"
    );
    assert_eq!(sbom_statement["predicate"], spdx);
    let provenance = statement_json(&read_envelope(&b.envelope));
    assert_eq!(sbom_statement["subject"], provenance["subject"]);

    // 5. Negative: a tampered statement and broken documents are refused by the same tools.
    let tampered = with_payload(
        &read_envelope(&envelope_file),
        serde_json::to_string(&{
            let mut s = sbom_statement.clone();
            s["predicate"]["packages"]
                .as_array_mut()
                .unwrap()
                .retain(|p| p["name"] != "libc6");
            s
        })
        .unwrap()
        .as_bytes(),
    );
    let tampered_file = b.home.path().join("tampered.sbom.intoto.jsonl");
    std::fs::write(&tampered_file, tampered.to_json_line().unwrap()).unwrap();
    let o = third_party_verify_sbom(&tampered_file, &b.public_key, &b.artifact);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a tampered SBOM statement verified:\n{}",
        text(&o)
    );
    assert!(text(&o).contains("does not verify"), "{}", text(&o));

    let mut broken = spdx.clone();
    broken["packages"][0]["checksums"][0]["checksumValue"] = "not-hex".into();
    let broken_file = b.home.path().join("broken.spdx.json");
    std::fs::write(&broken_file, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert_ne!(
        pyspdxtools(&broken_file).status.code(),
        Some(0),
        "pyspdxtools accepted a bad checksum"
    );
    let mut broken = cdx.clone();
    broken["components"][0]["hashes"][0]["alg"] = "SHA-257".into();
    let broken_file = b.home.path().join("broken.cdx.json");
    std::fs::write(&broken_file, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert_eq!(
        cyclonedx_validate(&broken_file).status.code(),
        Some(1),
        "the strict validator accepted a bad hash alg"
    );
}

/// A copy of the built-in profiles whose `trusted` profile gates at `threshold`.
fn gated_profiles(root: &Path, threshold: &str) -> std::path::PathBuf {
    profiles_copy(
        &root.join(format!("profiles-{threshold}")),
        "trusted",
        &format!("\n[sbom]\ndeny_vulnerable = \"{threshold}\"\n"),
    )
}

/// An OSV database with a HIGH advisory (CVSS 7.5) for the image's glibc and a MEDIUM one
/// (an unrated record's database severity) for its gcc-12, in osv.dev's Debian shapes.
fn osv_db(root: &Path) -> std::path::PathBuf {
    let dir = root.join("osv/Debian");
    std::fs::create_dir_all(&dir).unwrap();
    let record = |id: &str, source: &str, severity: Value| {
        serde_json::json!({
            "schema_version": "1.6.0",
            "id": id,
            "modified": "2026-11-01T00:00:00Z",
            "aliases": [id.trim_start_matches("DEBIAN-")],
            "summary": format!("a test advisory for {source}"),
            "severity": severity,
            "affected": [{
                "package": {"ecosystem": "Debian:12", "name": source},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99.0-1"}]}],
            }],
        })
    };
    let high = record(
        "DEBIAN-CVE-2026-0001",
        "glibc",
        serde_json::json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}]),
    );
    let mut medium = record("DEBIAN-CVE-2026-0002", "gcc-12", serde_json::json!([]));
    medium["database_specific"] = serde_json::json!({"severity": "MEDIUM"});
    // Not affected: fixed before the image's version.
    let mut fixed = record("DEBIAN-CVE-2020-0003", "glibc", serde_json::json!([]));
    fixed["affected"][0]["ranges"][0]["events"][1] = serde_json::json!({"fixed": "2.0-1"});
    for (name, r) in [("high", high), ("medium", medium), ("fixed", fixed)] {
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
    }
    root.join("osv")
}

#[test]
#[ignore = "needs root, the base image and the venv: run scripts/test.sh"]
fn the_vulnerability_gate_fails_the_build_and_keeps_its_signed_sbom() {
    let home = scratch();
    let job = pinned_hello(home.path());
    let db = osv_db(home.path());
    let db_flag = ["--osv-db".to_owned(), db.display().to_string()];

    // 1. HIGH gate: the build fails after its steps, naming the finding; only the SBOM
    //    files are written, signed, with both findings in the BOM; no provenance.
    let out = home.path().join("out-high");
    let profiles = gated_profiles(home.path(), "HIGH");
    let mut flags = vec!["--profiles-dir".to_owned(), profiles.display().to_string()];
    flags.extend(db_flag.clone());
    let o = airlock_run_with(&job, home.path(), &out, &flags);
    assert_eq!(o.status.code(), Some(1), "the gate did not fail the build");
    let log = text(&o);
    // One advisory of the glibc source package, in each of its binary packages.
    assert!(log.contains("vulnerability gate of profile `trusted` (HIGH): 1 advisory in 4 packages: DEBIAN-CVE-2026-0001 (HIGH 7.5) in pkg:deb/debian/libc-bin@"), "{log}");
    assert!(log.contains("pkg:deb/debian/libc6@"), "{log}");
    assert!(
        !log.contains("DEBIAN-CVE-2020-0003"),
        "a fixed advisory was reported:\n{log}"
    );
    assert!(log.contains("fixed in 99.0-1"), "{log}");
    assert!(log.contains("OSV database: 3 records"), "{log}");
    assert!(
        !out.join("hello.intoto.jsonl").exists(),
        "a gated build got provenance"
    );
    assert!(
        !out.join("hello").exists(),
        "a gated build's output was handed out"
    );
    let cdx: Value =
        serde_json::from_slice(&std::fs::read(out.join("hello.cdx.json")).unwrap()).unwrap();
    // Every finding is in the BOM, the MEDIUM ones below the gate too (one per binary
    // package of glibc and gcc-12).
    let ids: BTreeSet<&str> = cdx["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["DEBIAN-CVE-2026-0001", "DEBIAN-CVE-2026-0002"])
    );
    let o = cyclonedx_validate(&out.join("hello.cdx.json"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = pyspdxtools(&out.join("hello.spdx.json"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let key = home.path().join("keys/local-provenance.pub");
    let mut c = Command::new(venv_python());
    c.arg(repo().join("tests/interop/verify_dsse.py"))
        .arg(out.join("hello.sbom.intoto.jsonl"))
        .arg(&key)
        .arg("--sbom");
    let o = run(c);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // 2. CRITICAL gate: the same findings pass, and the BOM still lists them.
    let out = home.path().join("out-critical");
    let profiles = gated_profiles(home.path(), "CRITICAL");
    let mut flags = vec!["--profiles-dir".to_owned(), profiles.display().to_string()];
    flags.extend(db_flag.clone());
    let o = airlock_run_with(&job, home.path(), &out, &flags);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.join("hello.intoto.jsonl").exists());
    let cdx: Value =
        serde_json::from_slice(&std::fs::read(out.join("hello.cdx.json")).unwrap()).unwrap();
    assert!(
        cdx["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "DEBIAN-CVE-2026-0001")
    );

    // 3. A gate on a runner without a database fails closed, before any step.
    let out = home.path().join("out-no-db");
    let profiles = gated_profiles(home.path(), "LOW");
    let o = airlock_run_with(
        &job,
        home.path(),
        &out,
        &["--profiles-dir".to_owned(), profiles.display().to_string()],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("has no OSV database: start it with --osv-db DIR"),
        "{}",
        text(&o)
    );
    assert!(
        !text(&o).contains("step 1"),
        "a step ran without its gate:\n{}",
        text(&o)
    );

    // 4. A database record that does not parse stops the run, naming the file.
    std::fs::write(
        db.join("Debian/broken.json"),
        br#"{"id": "X", "affected": 7}"#,
    )
    .unwrap();
    let o = airlock_run_with(&job, home.path(), &home.path().join("out-broken"), &db_flag);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("broken.json"), "{}", text(&o));
}
