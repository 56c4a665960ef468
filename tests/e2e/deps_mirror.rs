//! A package mirror on loopback for the `[[deps]]` tests: the crates.io download layout
//! (`/cargo/NAME/VERSION/download`), an npm registry's tarball layout
//! (`/npm/NAME/-/NAME-VERSION.tgz`) and a PEP 503 simple index (`/pypi/PROJECT/`, files
//! under `/files/`), filled from the fixtures `scripts/fetch-deps-fixtures.sh` downloaded.
//! Every request is logged, and a file can be swapped for tampered bytes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::Digest;

/// The fixtures directory (`AIRLOCK_TEST_DEPS_FIXTURES`, default `target/deps-fixtures`).
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("AIRLOCK_TEST_DEPS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::common::repo().join("target/deps-fixtures"));
    assert!(
        dir.join("cargo").is_dir(),
        "{} has no fixtures: run scripts/fetch-deps-fixtures.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// A running mirror.
pub struct Mirror {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Mirror {
    /// Serves `files` (path -> bytes).
    pub fn start(files: BTreeMap<String, Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files = Arc::new(Mutex::new(files));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (f, l) = (Arc::clone(&files), Arc::clone(&log));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (f, l) = (Arc::clone(&f), Arc::clone(&l));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request = String::new();
                    let _ = reader.read_line(&mut request);
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 2 {
                        line.clear();
                    }
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let path = path.replace("%40", "@");
                    l.lock().unwrap().push(path.clone());
                    let body = f.lock().unwrap().get(&path).cloned();
                    let _ = match body {
                        Some(body) => {
                            let ct = if path.ends_with('/') {
                                "text/html"
                            } else {
                                "application/octet-stream"
                            };
                            write!(
                                stream,
                                "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .and_then(|()| stream.write_all(&body))
                        }
                        None => write!(
                            stream,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        ),
                    };
                });
            }
        });
        Self { url, files, log }
    }

    /// The mirror filled with every fixture: cargo, npm and PyPI.
    pub fn with_fixtures() -> Self {
        let dir = fixtures();
        let mut files = BTreeMap::new();
        add_cargo(&dir, &mut files);
        add_npm(&dir, &mut files);
        add_pypi(&dir, &mut files);
        Self::start(files)
    }

    /// `--mirror` flags for every ecosystem.
    pub fn flags(&self) -> Vec<String> {
        ["cargo", "npm", "pypi"]
            .iter()
            .flat_map(|e| ["--mirror".to_owned(), format!("{e}={}/{e}", self.url)])
            .collect()
    }

    /// Flips one byte in the middle of the file at `path`.
    pub fn tamper(&self, path: &str) {
        let mut files = self.files.lock().unwrap();
        let body = files
            .get_mut(path)
            .unwrap_or_else(|| panic!("no {path} on the mirror"));
        let mid = body.len() / 2;
        body[mid] ^= 0x55;
    }

    /// The bytes served at `path`.
    pub fn body(&self, path: &str) -> Vec<u8> {
        self.files
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Every path requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The paths served.
    pub fn paths(&self) -> Vec<String> {
        self.files.lock().unwrap().keys().cloned().collect()
    }
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `NAME-VERSION.crate` -> `/cargo/NAME/VERSION/download` (the version is what follows the
/// last `-` that is followed by a digit).
fn add_cargo(dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for path in read_dir(&dir.join("cargo")) {
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".crate"))
        else {
            continue;
        };
        let split = stem
            .char_indices()
            .filter(|(i, c)| *c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
            .map(|(i, _)| i)
            .next()
            .unwrap();
        let (name, version) = (&stem[..split], &stem[split + 1..]);
        files.insert(
            format!("/cargo/{name}/{version}/download"),
            std::fs::read(&path).unwrap(),
        );
    }
}

/// Every package of the npm example's lockfile -> `/npm/NAME/-/UNSCOPED-VERSION.tgz`, from
/// the fixture file whose sha512 matches the lockfile's integrity.
fn add_npm(dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let by_sha512: BTreeMap<String, Vec<u8>> = read_dir(&dir.join("npm"))
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let sri = format!(
                "sha512-{}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    sha2::Sha512::digest(&bytes)
                )
            );
            (sri, bytes)
        })
        .collect();
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::common::repo().join("examples/deps-node/package-lock.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for (key, entry) in lock["packages"].as_object().unwrap() {
        let Some(i) = key.rfind("node_modules/") else {
            continue;
        };
        let name = entry["name"]
            .as_str()
            .unwrap_or(&key[i + "node_modules/".len()..]);
        let version = entry["version"].as_str().unwrap();
        let integrity = entry["integrity"].as_str().unwrap();
        let bytes = by_sha512.get(integrity).unwrap_or_else(|| {
            panic!("no npm fixture for {name}@{version}: rerun scripts/fetch-deps-fixtures.sh")
        });
        let unscoped = name.rsplit('/').next().unwrap();
        files.insert(
            format!("/npm/{name}/-/{unscoped}-{version}.tgz"),
            bytes.clone(),
        );
    }
}

/// Every file under `pypi/` -> `/files/FILE` and a line in `/pypi/PROJECT/` (PEP 503 HTML,
/// relative links with `#sha256=`).
fn add_pypi(dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let mut pages: BTreeMap<String, String> = BTreeMap::new();
    for path in read_dir(&dir.join("pypi")) {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let project = name
            .split('-')
            .next()
            .unwrap()
            .to_ascii_lowercase()
            .replace(['_', '.'], "-");
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        pages.entry(project).or_default().push_str(&format!(
            "<a href=\"../../files/{name}#sha256={hex}\">{name}</a><br/>\n"
        ));
        files.insert(format!("/files/{name}"), bytes);
    }
    for (project, links) in pages {
        files.insert(
            format!("/pypi/{project}/"),
            format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n").into_bytes(),
        );
    }
}
