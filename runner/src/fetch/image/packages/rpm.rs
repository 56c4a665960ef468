//! rpm: the SQLite rpmdb (`rpmdb.sqlite`, Fedora ≥ 33, RHEL 9), and noting the formats we
//! do not read (BerkeleyDB `Packages`, ndb `Packages.db`).
//!
//! SQLite needs a path, and a path into the rootfs could be redirected by a symlink at open
//! time, so the database is first copied, through [`ImageRoot`], into a private temporary
//! file, which is then opened read-only and immutable (no locks, no journal or WAL files
//! created or read next to it). Schema-defined functions and views are not trusted.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::root::ImageRoot;
use super::{Found, PackagesError, rpm_header};

/// Where rpm keeps its database: the classic place first; Fedora ≥ 36 moved it to
/// `usr/lib/sysimage/rpm` (and usually links the old path there).
const DIRS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];
/// The largest rpmdb.sqlite copied (a full Fedora workstation's is ~100 MiB).
const MAX_SQLITE_BYTES: u64 = 256 << 20;

/// Reads the first rpm database directory that has any database into `found`.
pub(super) fn read(root: &ImageRoot, found: &mut Found) -> Result<(), PackagesError> {
    for dir in DIRS {
        let mut any = false;
        for (name, why) in [
            ("Packages", "BerkeleyDB rpm databases are not supported"),
            ("Packages.db", "ndb rpm databases are not supported"),
        ] {
            let path = format!("{dir}/{name}");
            if root.is_regular(&path)? {
                found.unsupported.push(format!("{path}: {why}"));
                any = true;
            }
        }
        let path = format!("{dir}/rpmdb.sqlite");
        if read_sqlite(root, &path, found)? {
            any = true;
            let wal = format!("{path}-wal");
            if root.open_regular(&wal)?.is_some_and(|f| f.size > 0) {
                found.unsupported.push(format!(
                    "{wal}: un-checkpointed rpm WAL is not read; packages may be missing"
                ));
            }
        }
        if any {
            break;
        }
    }
    Ok(())
}

/// Reads `path` if it exists; `false` if it does not.
fn read_sqlite(root: &ImageRoot, path: &str, found: &mut Found) -> Result<bool, PackagesError> {
    let Some(opened) = root.open_regular(path)? else {
        return Ok(false);
    };
    if opened.size > MAX_SQLITE_BYTES {
        return Err(PackagesError::TooLarge {
            file: path.to_owned(),
            limit: MAX_SQLITE_BYTES,
        });
    }
    let io_err = |source: io::Error| PackagesError::Io {
        file: path.to_owned(),
        source,
    };
    let mut copy = tempfile::Builder::new()
        .prefix("airlock-rpmdb-")
        .tempfile()
        .map_err(io_err)?;
    let copied = io::copy(
        &mut io::Read::take(opened.file, MAX_SQLITE_BYTES.saturating_add(1)),
        copy.as_file_mut(),
    )
    .map_err(io_err)?;
    if copied > MAX_SQLITE_BYTES {
        return Err(PackagesError::TooLarge {
            file: path.to_owned(),
            limit: MAX_SQLITE_BYTES,
        });
    }
    found.databases.push(path.to_owned());
    let blobs = blobs(path, copy.path())?;
    for (hnum, blob) in blobs {
        let package = rpm_header::package(&blob).map_err(|reason| PackagesError::RpmHeader {
            file: path.to_owned(),
            hnum,
            reason,
        })?;
        if let Some(package) = package {
            found.push(path, package)?;
        }
    }
    Ok(true)
}

/// Every `(hnum, blob)` of the `Packages` table of the database copied to `copy`.
fn blobs(path: &str, copy: &Path) -> Result<Vec<(i64, Vec<u8>)>, PackagesError> {
    let sqlite = |source: rusqlite::Error| PackagesError::Sqlite {
        file: path.to_owned(),
        source,
    };
    let uri = format!("file:{}?mode=ro&immutable=1", uri_escape(copy));
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    // The schema is image content: no functions, views or triggers of its choosing, and
    // b-tree cells are checked as they are read.
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON;")
        .map_err(sqlite)?;
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |row| row.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(sqlite)?;
    if kind.as_deref() != Some("table") {
        return Err(PackagesError::RpmDatabase {
            file: path.to_owned(),
            reason: "the database has no Packages table".to_owned(),
        });
    }
    let mut statement = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sqlite)?;
    let mut rows = statement.query([]).map_err(sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let hnum: i64 = row.get(0).map_err(sqlite)?;
        let blob =
            row.get_ref(1)
                .map_err(sqlite)?
                .as_blob()
                .map_err(|_| PackagesError::RpmHeader {
                    file: path.to_owned(),
                    hnum,
                    reason: "blob column is not a BLOB".to_owned(),
                })?;
        if out.len() >= super::MAX_PACKAGES {
            return Err(PackagesError::TooManyPackages {
                file: path.to_owned(),
            });
        }
        out.push((hnum, blob.to_vec()));
    }
    Ok(out)
}

/// Percent-encodes a path for an SQLite `file:` URI (everything but unreserved bytes and `/`).
fn uri_escape(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escaping() {
        assert_eq!(
            uri_escape(Path::new("/tmp/a b?c#d%e")),
            "/tmp/a%20b%3Fc%23d%25e"
        );
    }

    #[test]
    fn sqlite_packages_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("rpmdb.sqlite");
        let conn = Connection::open(&db).expect("create");
        conn.execute_batch(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .expect("schema");
        let glibc = rpm_header::tests::glibc(None);
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [&glibc])
            .expect("insert");
        drop(conn);
        let rows = blobs("/var/lib/rpm/rpmdb.sqlite", &db).expect("read");
        assert_eq!(rows, [(1, glibc)]);
    }
}
