//! Fetching a lockfile's packages from the mirror into the blob cache, several at a time,
//! each verified against the lockfile's digest before it gets a name in the cache.

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use airlock_attest::Sha256Digest;
use airlock_job::Ecosystem;
use sha2::Digest as _;

use super::pypi::{IndexFile, files_from_html, files_from_json, select_files};
use super::{DepsError, MirrorUrl, Package, PackageDigest, npm};
use crate::fetch::cache::{BlobCache, BlobPin, CacheError, Fetched};
use crate::fetch::http::{HttpClient, HttpUrl};

/// Largest package file accepted.
pub const MAX_PACKAGE_BYTES: u64 = 4 << 30;

/// Largest file that is hashed in memory (npm tarballs, whose pin is sha512, and index
/// files without a stated sha256) and largest index page.
const MAX_IN_MEMORY_BYTES: u64 = 512 << 20;

/// Downloads at once.
const PARALLEL: usize = 8;

/// One verified file of a package, in the cache.
#[derive(Debug)]
pub struct FetchedFile {
    /// Index of the package in the list given to [`fetch_all`].
    pub package: usize,
    /// The file's name (`serde-1.0.0.crate`, `ms-2.1.3.tgz`, the wheel's name).
    pub file_name: String,
    /// Where it was fetched from (or would have been, on a cache hit).
    pub url: String,
    /// The lockfile's digest it matched.
    pub digest: PackageDigest,
    /// Its sha256: its name in the cache.
    pub blob: Sha256Digest,
    /// Keeps it from eviction while it is laid out.
    pub pin: BlobPin,
}

/// What fetching reports, for the job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepsProgress {
    /// A file was downloaded and verified.
    Downloaded {
        /// The package's purl.
        purl: String,
        /// Its size.
        bytes: u64,
        /// Files done so far, and in all.
        done: usize,
        /// Files in all (packages, for cargo and npm).
        of: usize,
    },
}

/// Fetches every package of `packages` from `mirror` (cache hits are not fetched), up to
/// [`PARALLEL`] at a time; the first failure stops the rest and is returned. Returns the
/// files in package order and how many were cache hits.
pub fn fetch_all(
    cache: &BlobCache,
    http: &HttpClient,
    mirror: &MirrorUrl,
    packages: &[Package],
    progress: &(dyn Fn(DepsProgress) + Sync),
) -> Result<(Vec<FetchedFile>, usize), DepsError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let hits = AtomicUsize::new(0);
    let results: Mutex<Vec<FetchedFile>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<DepsError>> = Mutex::new(None);
    let failed = || failure.lock().map(|f| f.is_some()).unwrap_or(true);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(packages.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= packages.len() || failed() {
                        return;
                    }
                    match fetch_package(cache, http, mirror, i, &packages[i]) {
                        Ok(files) => {
                            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                            for (file, fetched) in files {
                                match fetched {
                                    Fetched::Hit => {
                                        hits.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Fetched::Downloaded(bytes) => {
                                        progress(DepsProgress::Downloaded {
                                            purl: packages[i].purl(),
                                            bytes,
                                            done: n,
                                            of: packages.len(),
                                        })
                                    }
                                }
                                if let Ok(mut r) = results.lock() {
                                    r.push(file);
                                }
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut files = results.into_inner().unwrap_or_default();
    files.sort_by(|a, b| (a.package, &a.file_name).cmp(&(b.package, &b.file_name)));
    Ok((files, hits.into_inner()))
}

/// The files of one package: cargo and npm have one archive; a PyPI release's files come
/// from its index page.
fn fetch_package(
    cache: &BlobCache,
    http: &HttpClient,
    mirror: &MirrorUrl,
    index: usize,
    package: &Package,
) -> Result<Vec<(FetchedFile, Fetched)>, DepsError> {
    let one = |file_name: String, url: String| -> Result<Vec<(FetchedFile, Fetched)>, DepsError> {
        let digest = package.pins[0].clone();
        let (blob, pin, fetched) = fetch_file(cache, http, package, &url, &digest)?;
        Ok(vec![(
            FetchedFile {
                package: index,
                file_name,
                url,
                digest,
                blob,
                pin,
            },
            fetched,
        )])
    };
    match package.ecosystem {
        Ecosystem::Cargo => one(
            format!("{}-{}.crate", package.name, package.version),
            mirror.join(&format!("{}/{}/download", package.name, package.version)),
        ),
        Ecosystem::Npm => {
            let path = npm::tarball_path(&package.name, &package.version);
            let file_name = path.rsplit('/').next().unwrap_or(&path).to_owned();
            one(file_name, mirror.join(&path))
        }
        Ecosystem::Pypi => {
            let page_url = mirror.join(&format!("{}/", package.name));
            let files = index_files(http, package, &page_url)?;
            let chosen = select_files(package, &files);
            if chosen.is_empty() {
                return Err(DepsError::Download {
                    package: package.purl(),
                    url: page_url,
                    message: format!(
                        "the index lists no file of {} whose sha256 the lockfile pins (for this \
                         platform: a pure-Python wheel, a Linux {} wheel or a source \
                         distribution)",
                        package.label(),
                        std::env::consts::ARCH
                    ),
                });
            }
            let mut out = Vec::new();
            for file in chosen {
                let url = resolve(&page_url, &file.url);
                let (digest, blob, pin, fetched) = match &file.sha256 {
                    Some(stated) => {
                        let digest = PackageDigest::Sha256(*stated);
                        let (blob, pin, fetched) = fetch_file(cache, http, package, &url, &digest)?;
                        (digest, blob, pin, fetched)
                    }
                    None => fetch_any_of(cache, http, package, &url)?,
                };
                out.push((
                    FetchedFile {
                        package: index,
                        file_name: file.filename.clone(),
                        url,
                        digest,
                        blob,
                        pin,
                    },
                    fetched,
                ));
            }
            Ok(out)
        }
    }
}

/// Fetches `url`, which must hash to `digest`, into the cache.
fn fetch_file(
    cache: &BlobCache,
    http: &HttpClient,
    package: &Package,
    url: &str,
    digest: &PackageDigest,
) -> Result<(Sha256Digest, BlobPin, Fetched), DepsError> {
    let purl = package.purl();
    match digest {
        PackageDigest::Sha256(d) => {
            let mut failed: Option<DepsError> = None;
            let result = cache.get_or_fetch(d, &purl, &mut |sink| {
                let parsed = HttpUrl::parse(url).map_err(|e| CacheError::Fetch {
                    what: purl.clone(),
                    message: e.to_string(),
                })?;
                http.download(&parsed, &[], sink, MAX_PACKAGE_BYTES, &mut |_| {})
                    .map(drop)
                    .map_err(|e| {
                        failed = Some(DepsError::Download {
                            package: purl.clone(),
                            url: url.to_owned(),
                            message: e.to_string(),
                        });
                        CacheError::Fetch {
                            what: purl.clone(),
                            message: e.to_string(),
                        }
                    })
            });
            match result {
                Ok((fetched, pin)) => Ok((*d, pin, fetched)),
                Err(CacheError::DigestMismatch {
                    expected,
                    actual,
                    bytes,
                    ..
                }) => Err(DepsError::Mismatch {
                    package: purl,
                    url: url.to_owned(),
                    expected: format!("sha256:{}", expected.hex()),
                    actual: format!("sha256:{}", actual.hex()),
                    bytes,
                }),
                Err(e) => Err(failed.unwrap_or(DepsError::Cache(e))),
            }
        }
        PackageDigest::Sha512(want) => {
            if let Some((blob, pin)) = alias_hit(cache, want)? {
                return Ok((blob, pin, Fetched::Hit));
            }
            let bytes = download_in_memory(http, &purl, url)?;
            let got: [u8; 64] = sha2::Sha512::digest(&bytes).into();
            if &got != want.as_ref() {
                return Err(DepsError::Mismatch {
                    package: purl,
                    url: url.to_owned(),
                    expected: digest.prefixed(),
                    actual: PackageDigest::Sha512(Box::new(got)).prefixed(),
                    bytes: bytes.len() as u64,
                });
            }
            let (blob, pin, fetched) = insert_verified(cache, &purl, &bytes)?;
            write_alias(cache, want, &blob)?;
            Ok((blob, pin, fetched))
        }
    }
}

/// Fetches a file whose sha256 the index does not state; it must hash to one of the pins.
fn fetch_any_of(
    cache: &BlobCache,
    http: &HttpClient,
    package: &Package,
    url: &str,
) -> Result<(PackageDigest, Sha256Digest, BlobPin, Fetched), DepsError> {
    let purl = package.purl();
    let bytes = download_in_memory(http, &purl, url)?;
    let got = Sha256Digest::of(&bytes);
    let digest = PackageDigest::Sha256(got);
    if !package.pins.contains(&digest) {
        return Err(DepsError::Mismatch {
            package: purl,
            url: url.to_owned(),
            expected: package
                .pins
                .iter()
                .map(PackageDigest::prefixed)
                .collect::<Vec<_>>()
                .join(" or "),
            actual: digest.prefixed(),
            bytes: bytes.len() as u64,
        });
    }
    let (blob, pin, fetched) = insert_verified(cache, &purl, &bytes)?;
    Ok((digest, blob, pin, fetched))
}

fn download_in_memory(http: &HttpClient, purl: &str, url: &str) -> Result<Vec<u8>, DepsError> {
    let fail = |message: String| DepsError::Download {
        package: purl.to_owned(),
        url: url.to_owned(),
        message,
    };
    let parsed = HttpUrl::parse(url).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    http.download(&parsed, &[], &mut bytes, MAX_IN_MEMORY_BYTES, &mut |_| {})
        .map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// Puts bytes already verified into the cache under their sha256.
fn insert_verified(
    cache: &BlobCache,
    purl: &str,
    bytes: &[u8],
) -> Result<(Sha256Digest, BlobPin, Fetched), DepsError> {
    let blob = Sha256Digest::of(bytes);
    let (fetched, pin) = cache
        .get_or_fetch(&blob, purl, &mut |sink| {
            sink.write_all(bytes).map_err(|e| CacheError::Fetch {
                what: purl.to_owned(),
                message: e.to_string(),
            })
        })
        .map_err(DepsError::Cache)?;
    Ok((blob, pin, fetched))
}

/// `aliases/sha512/<hex>` holds the sha256 of the blob whose sha512 is `<hex>`.
fn alias_path(cache: &BlobCache, sha512: &[u8; 64]) -> std::path::PathBuf {
    cache
        .root()
        .join("aliases")
        .join("sha512")
        .join(hex::encode(sha512))
}

/// The cached blob an alias names, if its bytes (hashed again now) still match the sha512:
/// an alias is a hint, never trusted on its own.
fn alias_hit(
    cache: &BlobCache,
    sha512: &[u8; 64],
) -> Result<Option<(Sha256Digest, BlobPin)>, DepsError> {
    let path = alias_path(cache, sha512);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let Ok(blob) = Sha256Digest::from_hex(text.trim()) else {
        return Ok(None);
    };
    let Some(pin) = cache.pin(&blob).map_err(DepsError::Cache)? else {
        return Ok(None);
    };
    let bytes = match std::fs::read(cache.path(&blob)) {
        Ok(b) => b,
        Err(_) => return Ok(None),
    };
    let got: [u8; 64] = sha2::Sha512::digest(&bytes).into();
    Ok((&got == sha512).then_some((blob, pin)))
}

fn write_alias(cache: &BlobCache, sha512: &[u8; 64], blob: &Sha256Digest) -> Result<(), DepsError> {
    let path = alias_path(cache, sha512);
    let dir = path.parent().unwrap_or(cache.root());
    std::fs::create_dir_all(dir).map_err(|e| DepsError::io("creating", dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| DepsError::io("creating a file in", dir, e))?;
    tmp.write_all(blob.hex().as_bytes())
        .map_err(|e| DepsError::io("writing", tmp.path().to_owned(), e))?;
    tmp.persist(&path)
        .map_err(|e| DepsError::io("renaming into", path.clone(), e.error))?;
    Ok(())
}

/// The files of a release's index page (PEP 691 JSON when the mirror offers it, else the
/// PEP 503 HTML page).
fn index_files(
    http: &HttpClient,
    package: &Package,
    page_url: &str,
) -> Result<Vec<IndexFile>, DepsError> {
    let purl = package.purl();
    let fail = |message: String| DepsError::Download {
        package: purl.clone(),
        url: page_url.to_owned(),
        message,
    };
    let parsed = HttpUrl::parse(page_url).map_err(|e| fail(e.to_string()))?;
    let resp = http
        .get(
            &parsed,
            &[(
                "Accept",
                "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
            )],
        )
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(fail(format!(
            "the index answered HTTP {status}; does the mirror serve a PEP 503 simple index at {}?",
            page_url
        )));
    }
    let json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    let mut body = Vec::new();
    crate::fetch::http::stream_body(
        &parsed,
        resp.into_body(),
        &mut body,
        MAX_IN_MEMORY_BYTES,
        &mut |_| {},
    )
    .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8(body).map_err(|_| fail("the index page is not UTF-8".into()))?;
    if json {
        files_from_json(&text).map_err(fail)
    } else {
        Ok(files_from_html(&text))
    }
}

/// `href` resolved against the page it is on.
fn resolve(page: &str, href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        return href.to_owned();
    }
    let scheme_end = page.find("://").map_or(0, |i| i + 3);
    let origin_end = page[scheme_end..]
        .find('/')
        .map_or(page.len(), |i| scheme_end + i);
    let origin = &page[..origin_end];
    if href.starts_with('/') {
        return format!("{origin}{href}");
    }
    let base_dir = &page[origin_end..page.rfind('/').map_or(origin_end, |i| i.max(origin_end))];
    let mut segments: Vec<&str> = base_dir.split('/').filter(|s| !s.is_empty()).collect();
    for part in href.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                segments.pop();
            }
            p => segments.push(p),
        }
    }
    format!("{origin}/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_index_links_resolve_against_the_page() {
        let page = "http://127.0.0.1:9/simple/six/";
        assert_eq!(
            resolve(page, "../../files/six.whl"),
            "http://127.0.0.1:9/files/six.whl"
        );
        assert_eq!(resolve(page, "/f/six.whl"), "http://127.0.0.1:9/f/six.whl");
        assert_eq!(
            resolve(page, "six.whl"),
            "http://127.0.0.1:9/simple/six/six.whl"
        );
        assert_eq!(resolve(page, "https://x.invalid/a"), "https://x.invalid/a");
    }
}
