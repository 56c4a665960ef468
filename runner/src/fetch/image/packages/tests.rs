//! End-to-end tests on temporary rootfs directories: symlinks that try to leave the rootfs,
//! special files, size caps, and all three package managers together.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::*;

/// A dpkg stanza naming `name`, installed.
fn stanza(name: &str) -> String {
    format!("Package: {name}\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n")
}

/// Writes `content` at `rel` under `root`, creating parents.
fn write(root: &Path, rel: &str, content: &[u8]) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(&path, content).expect("write");
    path
}

/// Makes `rel` under `root` a symlink to `target`, creating parents.
fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    symlink(target, &path).expect("symlink");
}

/// Runs `read_image_contents` on another thread, failing the test if it hangs.
fn read_with_timeout(rootfs: &Path) -> Result<ImageContents, PackagesError> {
    let (tx, rx) = mpsc::channel();
    let rootfs = rootfs.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(read_image_contents(&rootfs));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("read_image_contents hung")
}

#[test]
fn empty_rootfs_has_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let contents = read_with_timeout(root.path()).expect("read");
    assert_eq!(
        contents,
        ImageContents {
            os: None,
            packages: Vec::new(),
            databases: Vec::new(),
            unsupported: Vec::new(),
        }
    );
}

#[test]
fn relative_os_release_symlink_is_followed_inside() {
    let root = tempfile::tempdir().expect("tempdir");
    write(
        root.path(),
        "usr/lib/os-release",
        b"ID=debian\nVERSION_ID=\"12\"\n",
    );
    link(root.path(), "etc/os-release", "../usr/lib/os-release");
    let os = read_with_timeout(root.path())
        .expect("read")
        .os
        .expect("os");
    assert_eq!(os.id, "debian");
    assert_eq!(os.version_id.as_deref(), Some("12"));
}

#[test]
fn absolute_symlink_resolves_inside_the_rootfs() {
    let host = tempfile::tempdir().expect("host dir");
    let host_status = write(host.path(), "status", stanza("host-secret").as_bytes());
    let target = host_status.to_str().expect("utf-8 temp path");
    let root = tempfile::tempdir().expect("tempdir");
    link(root.path(), "var/lib/dpkg/status", target);

    // Nothing at that path inside the rootfs: no database, and never the host's file.
    let contents = read_with_timeout(root.path()).expect("read");
    assert!(contents.packages.is_empty(), "{contents:?}");
    assert!(contents.databases.is_empty());

    // The same absolute path inside the rootfs is what gets read.
    write(
        root.path(),
        target.trim_start_matches('/'),
        stanza("inside").as_bytes(),
    );
    let contents = read_with_timeout(root.path()).expect("read");
    let names: Vec<&str> = contents.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["inside"]);
    assert_eq!(contents.databases, ["/var/lib/dpkg/status"]);
}

#[test]
fn dotdot_symlink_cannot_escape() {
    let host = tempfile::tempdir().expect("host dir");
    let host_os = write(host.path(), "os-release", b"ID=host-secret\n");
    let root = tempfile::tempdir().expect("tempdir");
    let escape = format!("../../../../../../../../../..{}", host_os.display());
    link(root.path(), "etc/os-release", &escape);
    write(root.path(), "usr/lib/os-release", b"ID=fallback\n");
    let os = read_with_timeout(root.path()).expect("read").os;
    // The escape resolves to a missing in-root path, so the fallback is used.
    assert_eq!(os.map(|o| o.id).as_deref(), Some("fallback"));
}

#[test]
fn fifo_database_is_refused_without_blocking() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("var/lib/dpkg");
    fs::create_dir_all(&dir).expect("mkdir");
    nix::unistd::mkfifo(&dir.join("status"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let err = read_with_timeout(root.path()).expect_err("a FIFO is not a database");
    assert!(
        matches!(&err, PackagesError::NotRegular { file, kind: "a FIFO" } if file == "/var/lib/dpkg/status"),
        "{err}"
    );
}

#[test]
fn oversized_files_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let status = write(root.path(), "var/lib/dpkg/status", b"");
    // Sparse: the size check comes before any read.
    fs::File::options()
        .write(true)
        .open(&status)
        .expect("open")
        .set_len(MAX_DATABASE_BYTES + 1)
        .expect("set_len");
    let err = read_with_timeout(root.path()).expect_err("too large");
    assert!(matches!(err, PackagesError::TooLarge { .. }), "{err}");

    let root = tempfile::tempdir().expect("tempdir");
    write(root.path(), "etc/os-release", &vec![b'#'; (64 << 10) + 1]);
    let err = read_with_timeout(root.path()).expect_err("too large");
    assert_eq!(
        err.to_string(),
        "/etc/os-release is larger than the limit of 65536"
    );
}

#[test]
fn invalid_utf8_names_the_file() {
    let root = tempfile::tempdir().expect("tempdir");
    write(root.path(), "lib/apk/db/installed", b"P:a\xff\nV:1\n");
    let err = read_with_timeout(root.path()).expect_err("not utf-8");
    assert_eq!(err.to_string(), "/lib/apk/db/installed is not valid UTF-8");
}

#[test]
fn distroless_status_d_with_licenses() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    write(
        r,
        "var/lib/dpkg/status.d/libc6",
        b"Package: libc6\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\nSource: glibc\n",
    );
    write(
        r,
        "var/lib/dpkg/status.d/libc6.md5sums",
        b"0123  lib/x86_64-linux-gnu/libc.so.6\n",
    );
    write(
        r,
        "var/lib/dpkg/status.d/tzdata",
        b"Package: tzdata\nVersion: 2024a-0+deb12u1\n",
    );
    fs::create_dir_all(r.join("var/lib/dpkg/status.d/subdir")).expect("mkdir");
    nix::unistd::mkfifo(
        &r.join("var/lib/dpkg/status.d/fifo"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .expect("mkfifo");
    write(
        r,
        "usr/share/doc/libc6/copyright",
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: LGPL-2.1+\n\nFiles: debian/*\nLicense: GPL-2+\n",
    );
    // tzdata's copyright is libc6's through an absolute symlink (resolved in the rootfs).
    link(
        r,
        "usr/share/doc/tzdata/copyright",
        "/usr/share/doc/libc6/copyright",
    );
    let contents = read_with_timeout(r).expect("read");
    assert_eq!(
        contents.databases,
        [
            "/var/lib/dpkg/status.d/libc6",
            "/var/lib/dpkg/status.d/tzdata"
        ]
    );
    let libc = &contents.packages[0];
    assert_eq!(libc.name, "libc6");
    assert_eq!(libc.source_name.as_deref(), Some("glibc"));
    assert_eq!(libc.licenses, ["GPL-2+", "LGPL-2.1+"]);
    assert_eq!(contents.packages[1].licenses, ["GPL-2+", "LGPL-2.1+"]);
}

#[test]
fn all_managers_sorted_with_unsupported_noted() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    write(
        r,
        "var/lib/dpkg/status",
        format!("{}\n{}", stanza("zlib1g"), stanza("bash")).as_bytes(),
    );
    write(
        r,
        "lib/apk/db/installed",
        b"P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n",
    );
    write(r, "var/lib/rpm/Packages", b"\0\x06\x15\x61 BerkeleyDB hash");
    fs::create_dir_all(r.join("usr/lib/sysimage/rpm")).expect("mkdir");
    let db = r.join("usr/lib/sysimage/rpm/rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("create");
    conn.execute_batch(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
    )
    .expect("schema");
    conn.execute(
        "INSERT INTO Packages (blob) VALUES (?1)",
        [rpm_header::tests::glibc(None)],
    )
    .expect("insert");
    drop(conn);

    // var/lib/rpm has a database (BerkeleyDB), so the sysimage directory is not consulted.
    let contents = read_with_timeout(r).expect("read");
    let listed: Vec<(&str, &str)> = contents
        .packages
        .iter()
        .map(|p| (p.manager.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(
        listed,
        [("apk", "musl"), ("dpkg", "bash"), ("dpkg", "zlib1g")]
    );
    assert_eq!(
        contents.unsupported,
        ["/var/lib/rpm/Packages: BerkeleyDB rpm databases are not supported"]
    );

    // Fedora ≥ 36 layout: var/lib/rpm links to usr/lib/sysimage/rpm, read once.
    fs::remove_dir_all(r.join("var/lib/rpm")).expect("rm");
    link(r, "var/lib/rpm", "../../usr/lib/sysimage/rpm");
    let contents = read_with_timeout(r).expect("read");
    let rpm: Vec<&OsPackage> = contents
        .packages
        .iter()
        .filter(|p| p.manager == PackageManager::Rpm)
        .collect();
    assert_eq!(rpm.len(), 1);
    assert_eq!(rpm[0].version, "2.38-16.fc39");
    assert_eq!(
        contents.databases,
        [
            "/var/lib/dpkg/status",
            "/lib/apk/db/installed",
            "/var/lib/rpm/rpmdb.sqlite"
        ]
    );
    assert!(contents.unsupported.is_empty());
}

/// The example Debian base image, unpacked with the runner's own layer applier.
#[test]
#[ignore = "needs examples/base-image/oci (built by examples/base-image/build.sh)"]
fn example_base_image() {
    let layout = Path::new("/work/main/examples/base-image/oci");
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index")).expect("json");
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .expect("manifest digest");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(manifest)).expect("manifest")).expect("json");
    let root = tempfile::tempdir().expect("tempdir");
    for (i, layer) in manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .enumerate()
    {
        assert!(
            layer["mediaType"].as_str().expect("type").ends_with(".tar"),
            "uncompressed"
        );
        let file = fs::File::open(blob(layer["digest"].as_str().expect("digest"))).expect("layer");
        super::super::unpack::LayerApplier::new(root.path(), i + 1)
            .apply(&mut tar::Archive::new(file))
            .expect("unpack");
    }
    let contents = read_with_timeout(root.path()).expect("read");
    let os = contents.os.as_ref().expect("os-release");
    assert_eq!(os.id, "debian");
    assert_eq!(contents.databases, ["/var/lib/dpkg/status"]);
    let libc = contents
        .packages
        .iter()
        .find(|p| p.name == "libc6")
        .expect("libc6");
    assert_eq!(libc.source_name.as_deref(), Some("glibc"));
    assert!(
        contents.packages.iter().any(|p| !p.licenses.is_empty()),
        "some DEP-5 licenses"
    );
    let licensed = contents.packages.iter().filter(|p| !p.licenses.is_empty());
    let (licensed, first) = (
        licensed.clone().count(),
        licensed.take(3).collect::<Vec<_>>(),
    );
    eprintln!(
        "{} packages ({licensed} with DEP-5 licenses), os {:?}, e.g. {libc:?} and {first:?}",
        contents.packages.len(),
        os.pretty_name
    );
}
