//! Loading the fixture database and matching purls against it; load errors.

use std::fs;

use super::database::fixtures;
use super::*;

fn db() -> OsvDatabase {
    OsvDatabase::load(&fixtures()).unwrap()
}

fn ids(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn loads_fixtures_skipping_withdrawn_hidden_and_duplicates() {
    let db = db();
    // 11 record files (+ a hidden one): one withdrawn, one an older copy of a DSA.
    assert_eq!(db.len(), 10);
    assert!(!db.is_empty());
    assert!(db.affecting("pkg:cargo/smallvec@0.1.0").unwrap().is_empty());
}

#[test]
fn debian_binary_package_matches_its_source_record() {
    let db = db();
    let purl =
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl";
    let found = db.affecting(purl).unwrap();
    assert_eq!(ids(&found), ["DSA-5532-1"]);
    let f = &found[0];
    assert_eq!(f.purl, purl);
    assert_eq!(f.aliases, ["CVE-2023-5363"]);
    assert_eq!(f.fixed_version.as_deref(), Some("3.0.11-1~deb12u2"));
    assert_eq!(
        f.summary.as_deref(),
        Some("openssl - security update"),
        "the newer copy"
    );
    assert_eq!(f.severity, Severity::Unknown);
    assert_eq!(f.modified.as_deref(), Some("2024-01-10T05:22:51Z"));

    let fixed = "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?distro=debian-12&upstream=openssl";
    assert!(db.affecting(fixed).unwrap().is_empty());
    // Without `upstream` the binary name is looked up, and no record names it.
    assert!(
        db.affecting("pkg:deb/debian/libssl3@3.0.9-1?distro=debian-12")
            .unwrap()
            .is_empty()
    );
    // `upstream=SRC@VERSION`: the source version is compared, not the binNMU's.
    let src = "pkg:deb/debian/libssl3@3.0.11-1~deb12u2+b1?distro=bookworm&upstream=openssl%403.0.11-1~deb12u1";
    assert_eq!(ids(&db.affecting(src).unwrap()), ["DSA-5532-1"]);
}

#[test]
fn debian_releases_are_kept_apart() {
    let db = db();
    let bullseye = "pkg:deb/debian/openssl@1.1.1n-0+deb11u5?distro=debian-11";
    let found = db.affecting(bullseye).unwrap();
    assert_eq!(found[0].fixed_version.as_deref(), Some("1.1.1w-0+deb11u1"));
    // Bookworm's fixed version is above 1.1.1n, but the Debian:11 entry is the one.
    let bookworm_fixed = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=debian-11";
    assert!(db.affecting(bookworm_fixed).unwrap().is_empty());
    // No distro: every release's entries apply.
    let any = db
        .affecting("pkg:deb/debian/openssl@1.1.1n-0+deb11u5")
        .unwrap();
    assert_eq!(ids(&any), ["DSA-5532-1"]);
    assert_eq!(any[0].fixed_version.as_deref(), Some("1.1.1w-0+deb11u1"));
}

#[test]
fn crates_severity_from_cvss_and_database_specific() {
    let db = db();
    let found = db.affecting("pkg:cargo/smallvec@1.6.0").unwrap();
    assert_eq!(
        ids(&found),
        ["GHSA-43w2-9j62-hq99"],
        "the withdrawn record is gone"
    );
    assert_eq!(found[0].severity, Severity::Critical);
    assert_eq!(found[0].score, Some(9.8));
    assert_eq!(found[0].fixed_version.as_deref(), Some("1.6.1"));
    let old = db.affecting("pkg:cargo/smallvec@0.6.10").unwrap();
    assert_eq!(old[0].fixed_version.as_deref(), Some("0.6.14"));
    assert!(db.affecting("pkg:cargo/smallvec@1.6.1").unwrap().is_empty());
    assert!(db.affecting("pkg:cargo/smallvec@0.6.2").unwrap().is_empty());

    let time = db.affecting("pkg:cargo/time@0.1.45").unwrap();
    assert_eq!(
        (time[0].severity, time[0].score),
        (Severity::Medium, Some(5.9))
    );
    // Matched by `affected[].package.purl`; summary from the first line of details.
    let by_purl = db.affecting("pkg:cargo/openssl-src@300.1.5+3.1.3").unwrap();
    assert_eq!(ids(&by_purl), ["RUSTSEC-2099-0002"]);
    assert_eq!(by_purl[0].severity, Severity::Low);
    assert_eq!(
        by_purl[0].summary.as_deref(),
        Some("openssl-src: a record naming its package by purl only.")
    );
}

#[test]
fn pypi_explicit_versions_and_normalized_names() {
    let db = db();
    let found = db.affecting("pkg:pypi/pyyaml@5.3.1").unwrap();
    assert_eq!(ids(&found), ["PYSEC-2021-142"]);
    assert_eq!(found[0].fixed_version, None, "GIT ranges are not evaluated");
    assert_eq!(
        ids(&db.affecting("pkg:pypi/PyYAML@5.1.0").unwrap()),
        ["PYSEC-2021-142"]
    );
    assert!(db.affecting("pkg:pypi/pyyaml@5.4").unwrap().is_empty());
}

#[test]
fn npm_last_affected_and_scoped_names() {
    let db = db();
    let found = db.affecting("pkg:npm/lodash.template@4.5.0").unwrap();
    assert_eq!(
        (found[0].severity, found[0].fixed_version.as_deref()),
        (Severity::High, None)
    );
    assert!(
        db.affecting("pkg:npm/lodash.template@4.5.1")
            .unwrap()
            .is_empty()
    );
    let babel = db.affecting("pkg:npm/%40babel/traverse@7.23.0").unwrap();
    assert_eq!(
        (babel[0].severity, babel[0].score),
        (Severity::Critical, Some(9.3))
    );
    assert_eq!(babel[0].fixed_version.as_deref(), Some("7.23.2"));
    let alpha = db
        .affecting("pkg:npm/%40babel/traverse@8.0.0-alpha.3")
        .unwrap();
    assert_eq!(alpha[0].fixed_version.as_deref(), Some("8.0.0-alpha.4"));
    assert!(
        db.affecting("pkg:npm/%40babel/traverse@7.23.2")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn alpine_and_ubuntu() {
    let db = db();
    let apk =
        "pkg:apk/alpine/libcrypto3@3.1.4-r0?arch=x86_64&distro=alpine-3.19.1&upstream=openssl";
    let found = db.affecting(apk).unwrap();
    assert_eq!(ids(&found), ["ALPINE-CVE-2023-5678"]);
    assert_eq!(found[0].fixed_version.as_deref(), Some("3.1.4-r1"));
    let fixed = "pkg:apk/alpine/libcrypto3@3.1.4-r1?distro=alpine-3.19.1&upstream=openssl";
    assert!(db.affecting(fixed).unwrap().is_empty());
    let other = "pkg:apk/alpine/libcrypto3@3.1.4-r0?distro=alpine-3.18.5&upstream=openssl";
    assert!(db.affecting(other).unwrap().is_empty());

    let curl = db
        .affecting("pkg:deb/ubuntu/curl@7.81.0-1ubuntu1.13?distro=ubuntu-22.04")
        .unwrap();
    assert_eq!(
        (curl[0].id.as_str(), curl[0].severity),
        ("UBUNTU-CVE-2023-38545", Severity::High)
    );
    // The record's only 18.04 entry is an ESM (Pro) one, which is not indexed.
    assert!(
        db.affecting("pkg:deb/ubuntu/curl@7.58.0-2ubuntu3.23?distro=bionic")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn unindexed_and_bad_purls() {
    let db = db();
    assert!(
        db.affecting("pkg:golang/golang.org/x/net@0.16.0")
            .unwrap()
            .is_empty()
    );
    assert!(
        db.affecting("pkg:rpm/fedora/openssl@3.0.9-1.fc38")
            .unwrap()
            .is_empty()
    );
    let err = db.affecting("pkg:").unwrap_err();
    assert!(
        matches!(&err, OsvError::Purl { purl, .. } if purl == "pkg:"),
        "{err}"
    );
    let err = db.affecting("pkg:cargo/smallvec").unwrap_err();
    assert!(err.to_string().contains("no version"), "{err}");
}

fn finding(id: &str, severity: Severity) -> Finding {
    Finding {
        id: id.into(),
        aliases: Vec::new(),
        purl: "pkg:cargo/x@1.0.0".into(),
        summary: None,
        severity,
        score: None,
        fixed_version: None,
        modified: None,
    }
}

#[test]
fn gate_threshold_and_unknown() {
    let all = [
        finding("low", Severity::Low),
        finding("high", Severity::High),
        finding("crit", Severity::Critical),
        finding("unknown", Severity::Unknown),
    ];
    let names = |v: Vec<&Finding>| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(names(gate(&all, Severity::High, false)), ["high", "crit"]);
    assert_eq!(
        names(gate(&all, Severity::High, true)),
        ["high", "crit", "unknown"]
    );
    assert_eq!(names(gate(&all, Severity::Critical, false)), ["crit"]);
    assert_eq!(gate(&all, Severity::Low, false).len(), 3);
    assert!(gate(&[], Severity::Low, true).is_empty());
}

#[test]
fn malformed_record_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("crates.io");
    fs::create_dir(&sub).unwrap();
    let bad = sub.join("BAD-1.json");
    fs::write(
        &bad,
        r#"{"id": "BAD-1", "affected": [{"ranges": [{"type": "SEMVER", "events": [{"introduced": 5}]}]}]}"#,
    )
    .unwrap();
    let err = OsvDatabase::load(dir.path()).unwrap_err();
    let OsvError::Parse { path, field, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(path, &bad);
    assert!(
        field.starts_with("affected[0].ranges[0].events[0]"),
        "{field}"
    );
    assert!(err.to_string().contains("BAD-1.json"), "{err}");

    fs::write(&bad, r#"{"id": "BAD-1"} trailing"#).unwrap();
    let err = OsvDatabase::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, OsvError::Parse { path, .. } if path == &bad),
        "{err}"
    );

    fs::write(&bad, r#"{"summary": "no id"}"#).unwrap();
    let err = OsvDatabase::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");

    let purl = r#"{"id": "BAD-1", "affected": [{"package": {"purl": "cargo/x"}}]}"#;
    fs::write(&bad, purl).unwrap();
    let err = OsvDatabase::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, OsvError::Parse { field, .. } if field == "affected[0].package.purl"),
        "{err}"
    );
}

#[test]
fn oversized_files_symlinks_and_missing_dirs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    fs::File::create(&big)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    let err = OsvDatabase::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, OsvError::TooLarge { path, .. } if path == &big),
        "{err}"
    );
    fs::remove_file(&big).unwrap();

    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(fixtures().join("go/GO-2023-2102.json"), &link).unwrap();
    let err = OsvDatabase::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, OsvError::Symlink { path } if path == &link),
        "{err}"
    );
    fs::remove_file(&link).unwrap();

    assert!(OsvDatabase::load(dir.path()).unwrap().is_empty());
    let missing = dir.path().join("missing");
    assert!(matches!(
        OsvDatabase::load(&missing),
        Err(OsvError::Io { .. })
    ));
    let file = fixtures().join("README.txt");
    assert!(matches!(OsvDatabase::load(&file), Err(OsvError::Io { .. })));
}
