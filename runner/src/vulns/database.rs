//! Loading an OSV directory tree into memory, indexed by (ecosystem, package name).
//!
//! Files are read one at a time into one reused buffer and kept only as the typed,
//! trimmed records the matcher needs. Entries whose name starts with `.` are skipped
//! (`.git`, editor files), as are files not ending in `.json`; a symlink inside the
//! tree is an error, so what is read is the tree the operator gave (the root itself
//! may be a symlink, e.g. `current -> 2024-05-01`). Each file holds one record, as in
//! osv.dev's `all.zip` exports. A record id seen in several files is kept once, in
//! its latest `modified` version (a withdrawn latest version drops it).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::ecosystem::Family;
use super::error::OsvError;
use super::query;
use super::record::{OsvRecord, Range};
use super::severity::{Severity, affected_severity, record_severity};

/// Largest record file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// One indexed `affected[]` entry.
#[derive(Debug)]
pub(super) struct StoredAffected {
    pub family: Family,
    pub release: Option<String>,
    pub name: String,
    pub ranges: Vec<Range>,
    pub versions: Vec<String>,
    pub severity: Severity,
    pub score: Option<f64>,
}

/// A record, trimmed to what a finding reports.
#[derive(Debug)]
pub(super) struct StoredRecord {
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    pub modified: Option<String>,
    pub severity: Severity,
    pub score: Option<f64>,
    pub affected: Vec<StoredAffected>,
}

/// The loaded records and their index.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub records: Vec<StoredRecord>,
    /// (family, normalized name) → (record, affected entry), in record order.
    pub index: HashMap<(Family, String), Vec<(usize, usize)>>,
}

/// Loads every record under `dir` (see the module doc for what is read).
pub(super) fn load(dir: &Path) -> Result<Loaded, OsvError> {
    let io = |source| OsvError::Io {
        path: dir.to_owned(),
        source,
    };
    if !fs::metadata(dir).map_err(io)?.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    let mut latest: HashMap<String, (Option<String>, Option<StoredRecord>)> = HashMap::new();
    let mut buf = Vec::new();
    walk(dir, &mut |path| {
        let record = read_record(path, &mut buf)?;
        let modified = record.modified.clone();
        if let Some((seen, _)) = latest.get(&record.id)
            && *seen >= modified
        {
            return Ok(());
        }
        let id = record.id.clone();
        let stored = if record.withdrawn.is_some() {
            None
        } else {
            Some(store(record, path)?)
        };
        latest.insert(id, (modified, stored));
        Ok(())
    })?;
    let mut records: Vec<StoredRecord> = latest.into_values().filter_map(|(_, r)| r).collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let mut index: HashMap<(Family, String), Vec<(usize, usize)>> = HashMap::new();
    for (r, record) in records.iter().enumerate() {
        for (a, affected) in record.affected.iter().enumerate() {
            let key = (affected.family, affected.name.clone());
            index.entry(key).or_default().push((r, a));
        }
    }
    Ok(Loaded { records, index })
}

/// Calls `visit` on every `*.json` file under `dir`, in name order.
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path) -> Result<(), OsvError>) -> Result<(), OsvError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OsvError::Io { path, source }
    };
    let mut entries = fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_symlink() {
            return Err(OsvError::Symlink { path });
        } else if kind.is_dir() {
            walk(&path, visit)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "json") {
            visit(&path)?;
        }
    }
    Ok(())
}

/// Reads and parses one record file into `buf` (reused across files).
fn read_record(path: &Path, buf: &mut Vec<u8>) -> Result<OsvRecord, OsvError> {
    let io = |source| OsvError::Io {
        path: path.to_owned(),
        source,
    };
    let too_large = |size| OsvError::TooLarge {
        path: path.to_owned(),
        size,
        limit: MAX_FILE_BYTES,
    };
    let file = fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    buf.clear();
    // Bounded even if the file grows after the size check.
    file.take(MAX_FILE_BYTES + 1).read_to_end(buf).map_err(io)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(buf.len() as u64));
    }
    let parse_error = |field: String, message: String| OsvError::Parse {
        path: path.to_owned(),
        field,
        message,
    };
    let mut de = serde_json::Deserializer::from_slice(buf);
    let record: OsvRecord = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| parse_error(e.path().to_string(), e.inner().to_string()))?;
    de.end()
        .map_err(|e| parse_error(".".to_owned(), e.to_string()))?;
    Ok(record)
}

/// Trims a record to its indexed `affected[]` entries and what a finding reports.
fn store(record: OsvRecord, path: &Path) -> Result<StoredRecord, OsvError> {
    let (severity, score) = record_severity(&record);
    let summary = record.summary.filter(|s| !s.trim().is_empty()).or_else(|| {
        let details = record.details?;
        let first = details.lines().map(str::trim).find(|l| !l.is_empty())?;
        Some(first.to_owned())
    });
    let mut affected = Vec::new();
    for (i, entry) in record.affected.into_iter().enumerate() {
        let Some(package) = &entry.package else {
            continue;
        };
        let key = match (&package.ecosystem, &package.name, &package.purl) {
            (Some(eco), Some(name), _) => {
                Family::from_osv(eco).map(|(f, release)| (f, release, f.normalize_name(name)))
            }
            (_, _, Some(purl)) => query::package(purl)
                .map_err(|e| OsvError::Parse {
                    path: path.to_owned(),
                    field: format!("affected[{i}].package.purl"),
                    message: e.to_string(),
                })?
                .map(|q| (q.family, None, q.name)),
            _ => None,
        };
        let Some((family, release, name)) = key else {
            continue;
        };
        let (entry_severity, entry_score) = affected_severity(&entry);
        affected.push(StoredAffected {
            family,
            release,
            name,
            ranges: entry.ranges,
            versions: entry.versions,
            severity: entry_severity,
            score: entry_score,
        });
    }
    Ok(StoredRecord {
        id: record.id,
        aliases: record.aliases,
        summary,
        modified: record.modified,
        severity,
        score,
        affected,
    })
}

/// Where the shipped test records are.
#[cfg(test)]
pub(super) fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv")
}
