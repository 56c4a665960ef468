//! The blob cache with real transfers: a loopback HTTP server that counts requests, and the
//! loopback registry from `scripts/registry.sh` (tests that need it are ignored unless run
//! by `scripts/test.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use airlock_attest::Sha256Digest;
use airlock_job::InputSpec;
use airlock_runner::fetch::cache::{BlobCache, Fetched};
use airlock_runner::fetch::http::HttpClient;
use airlock_runner::fetch::image::registry::{RegistryAuth, RegistryClient, RegistryRepo, pull};
use airlock_runner::fetch::inputs::{InputError, provide_inputs};

/// Serves `body` for every GET on 127.0.0.1; returns the base URL and the request counter.
fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            });
        }
    });
    (url, hits)
}

#[test]
fn concurrent_fetches_of_one_digest_download_once() {
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Sha256Digest::of(&body);
    let (url, hits) = serve(body);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path().join("cache"), 1 << 30);
    let http = HttpClient::new();
    let n = 4;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (cache, http, barrier) = (cache.clone(), http.clone(), barrier.clone());
            let url = format!("{url}/data.bin");
            let out = dir.path().join(format!("job{i}"));
            std::thread::spawn(move || {
                let input = InputSpec {
                    name: "data.bin".into(),
                    url,
                    sha256: digest,
                };
                barrier.wait();
                provide_inputs(&cache, &http, &[input], &out, &mut |_| {}).unwrap();
                std::fs::read(out.join("data.bin")).unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(Sha256Digest::of(&h.join().unwrap()), digest);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one download for four jobs");
    assert!(cache.contains(&digest));
}

#[test]
fn a_wrong_sha256_fails_and_leaves_the_cache_untouched() {
    let (url, _) = serve(b"not what was pinned".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path().join("cache"), 1 << 30);
    let pinned = Sha256Digest::of(b"what was pinned");
    let input = InputSpec {
        name: "x".into(),
        url: format!("{url}/x"),
        sha256: pinned,
    };
    let err = provide_inputs(
        &cache,
        &HttpClient::new(),
        &[input],
        &dir.path().join("job"),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.is_job_error(), "{err}");
    assert!(matches!(err, InputError::Cache(_)));
    assert!(err.to_string().contains("nothing was cached"), "{err}");
    let blobs = dir.path().join("cache/blobs/sha256");
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(!dir.path().join("job/x").exists());
}

fn registry_image() -> (RegistryRepo, Sha256Digest) {
    let image = std::env::var("AIRLOCK_TEST_REGISTRY_IMAGE").unwrap_or_else(|_| {
        panic!("AIRLOCK_TEST_REGISTRY_IMAGE is unset: run `eval \"$(scripts/registry.sh)\"` first")
    });
    let (name, digest) = image.split_once('@').unwrap();
    (
        RegistryRepo::parse(name).unwrap(),
        Sha256Digest::parse_prefixed(digest).unwrap(),
    )
}

#[test]
#[ignore = "needs the loopback registry: run scripts/test.sh"]
fn concurrent_pulls_of_one_image_download_each_blob_once() {
    let (repo, digest) = registry_image();
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path().join("cache"), 4 << 30);
    let client = Arc::new(RegistryClient::new(
        HttpClient::new(),
        RegistryAuth::anonymous(),
    ));
    let barrier = Arc::new(Barrier::new(2));
    let downloads = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (cache, client, barrier, repo) =
                (cache.clone(), client.clone(), barrier.clone(), repo.clone());
            let downloads = downloads.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let pulled = pull(&client, &cache, &repo, &digest, &mut |p| {
                    if let airlock_runner::fetch::image::registry::PullProgress::Downloading {
                        transfer,
                        ..
                    } = p
                        && transfer.finished
                    {
                        downloads.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .unwrap();
                pulled.layers.clone()
            })
        })
        .collect();
    let layers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(layers[0], layers[1]);
    // Config + each layer, downloaded by exactly one of the two pulls.
    assert_eq!(downloads.load(Ordering::SeqCst), 1 + layers[0].len());
    for l in &layers[0] {
        assert!(cache.contains(l));
    }
    // A third pull is served from the cache.
    let (_, pin) = cache
        .get_or_fetch(&layers[0][0], "layer", &mut |_| panic!("must not fetch"))
        .unwrap();
    drop(pin);
    assert!(matches!(
        cache.get_or_fetch(&layers[0][0], "layer", &mut |_| panic!("must not fetch")),
        Ok((Fetched::Hit, _))
    ));
}

/// A tar layer built entry by entry (paths are written raw, so `../` survives).
fn layer(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, link, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes an OCI layout with these (uncompressed) layers and pushes it to the loopback
/// registry as `<registry>/airlock/<name>`; returns the repository and manifest digest.
fn push_image(
    root: &std::path::Path,
    name: &str,
    layers: &[Vec<u8>],
) -> (RegistryRepo, Sha256Digest) {
    let (base, _) = registry_image();
    let layout = root.join(name);
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = Sha256Digest::of(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        d
    };
    let digests: Vec<_> = layers.iter().map(|l| put(l)).collect();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": digests.iter().map(|d| d.prefixed()).collect::<Vec<_>>()}
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.prefixed(), "size": config.len()},
        "layers": digests.iter().zip(layers).map(|(d, l)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d.prefixed(), "size": l.len()})).collect::<Vec<_>>()
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.prefixed(), "size": manifest.len()}]}))
        .unwrap(),
    )
    .unwrap();
    let repo = RegistryRepo::parse(&format!("{}/airlock/{name}", base.registry)).unwrap();
    let ok = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{repo}:t"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "skopeo push of {name}");
    (repo, manifest_digest)
}

#[test]
#[ignore = "needs the loopback registry and skopeo: run scripts/test.sh"]
fn registry_layers_are_unpacked_safely_whiteouts_applied_escapes_refused() {
    use airlock_runner::fetch::image::ImageCache;
    use tar::EntryType::{Directory, Regular, Symlink};
    let dir = tempfile::tempdir().unwrap();
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let cache = BlobCache::new(dir.path().join("cache"), 1 << 30);
    let images = ImageCache::new(dir.path().join("images"));
    let client = RegistryClient::new(HttpClient::new(), RegistryAuth::anonymous());

    // Whiteouts apply across layers; an absolute symlink stays a symlink inside the rootfs.
    let lower = layer(&[
        ("etc/", Directory, None, b""),
        ("etc/gone", Regular, None, b"x"),
        ("etc/kept", Regular, None, nonce.as_bytes()),
    ]);
    let upper = layer(&[
        ("etc/.wh.gone", Regular, None, b""),
        ("abs", Symlink, Some("/etc"), b""),
    ]);
    let (repo, digest) = push_image(dir.path(), "whiteouts", &[lower, upper]);
    let pulled = pull(&client, &cache, &repo, &digest, &mut |_| {}).unwrap();
    let prepared = images
        .prepare_from_layout(cache.root(), &pulled.manifest, &mut |_| {})
        .unwrap();
    assert!(
        !prepared.rootfs.join("etc/gone").exists(),
        "whiteout applied"
    );
    assert!(!prepared.rootfs.join("etc/.wh.gone").exists());
    assert_eq!(
        std::fs::read_to_string(prepared.rootfs.join("etc/kept")).unwrap(),
        nonce
    );
    assert_eq!(
        std::fs::read_link(prepared.rootfs.join("abs")).unwrap(),
        std::path::Path::new("/etc")
    );

    // `../` and writing through an absolute symlink are refused; nothing lands outside and
    // no rootfs is cached.
    for (name, evil) in [
        (
            "dotdot",
            layer(&[("../escape", Regular, None, nonce.as_bytes())]),
        ),
        (
            "symlink-escape",
            layer(&[
                ("abs", Symlink, Some("/tmp"), b""),
                ("abs/escape", Regular, None, nonce.as_bytes()),
            ]),
        ),
    ] {
        let (repo, digest) = push_image(dir.path(), name, &[evil]);
        let pulled = pull(&client, &cache, &repo, &digest, &mut |_| {}).unwrap();
        let err = images
            .prepare_from_layout(cache.root(), &pulled.manifest, &mut |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{name}: {err}");
        assert!(!images.rootfs_path(&pulled.manifest).exists(), "{name}");
    }
    assert!(!dir.path().join("escape").exists());
    assert!(!std::path::Path::new("/tmp/escape").exists());
}

#[test]
fn archive_sources_unpack_verified_and_refuse_escapes() {
    use airlock_runner::fetch::archive_source::provide_archive_source;
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path().join("cache"), 1 << 30);
    let http = HttpClient::new();
    let tar = layer(&[
        ("src/", tar::EntryType::Directory, None, b""),
        (
            "src/main.c",
            tar::EntryType::Regular,
            None,
            b"int main(){return 0;}",
        ),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let sha = Sha256Digest::of(&gz);
    let (url, _) = serve(gz);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    provide_archive_source(
        &cache,
        &http,
        &format!("{url}/src.tar.gz"),
        &sha,
        &work,
        dir.path(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(work.join("src/main.c")).unwrap(),
        "int main(){return 0;}"
    );

    let evil = layer(&[("../outside", tar::EntryType::Regular, None, b"x")]);
    let sha = Sha256Digest::of(&evil);
    let (url, _) = serve(evil);
    let work2 = dir.path().join("work2");
    std::fs::create_dir(&work2).unwrap();
    let err = provide_archive_source(
        &cache,
        &http,
        &format!("{url}/e.tar"),
        &sha,
        &work2,
        dir.path(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.is_job_error(), "{err}");
    assert!(!dir.path().join("outside").exists());
}

/// Kills a spawned process on drop.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// bcrypt of `s3cret-test-pw` (cost 4), for the registry's htpasswd file.
const HTPASSWD: &str = "tester:$2b$04$S1pIkEP2DQPXP4l3m3DbAevw3HbCKjyY4ljAfZ21MUeL3C5Rl0opO\n";

#[test]
#[ignore = "needs docker-registry and skopeo (scripts/registry.sh installs them): run scripts/test.sh"]
fn registry_logins_come_from_a_docker_config_and_never_leak() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
         auth:\n  htpasswd:\n    realm: airlock-test\n    path: {}\nhttp:\n  addr: {addr}\n",
        dir.path().join("storage").display(),
        dir.path().join("htpasswd").display()
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let _registry = Kill(
        std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ready when the API answers (401 without credentials); polled, bounded.
    let http = HttpClient::new();
    let v2 = airlock_runner::fetch::http::HttpUrl::parse(&format!("http://{addr}/v2/")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http.get(&v2, &[]).map(|r| r.status().as_u16()).ok() != Some(401) {
        assert!(
            std::time::Instant::now() < deadline,
            "registry did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Push a tiny image with skopeo, logged in.
    let layer_tar = layer(&[("hello", tar::EntryType::Regular, None, b"hi")]);
    // Builds the layout (and pushes it to the open test registry too).
    let (_, digest) = push_image(dir.path(), "authed", &[layer_tar]);
    let layout = dir.path().join("authed");
    let repo = RegistryRepo::parse(&format!("{addr}/airlock/authed")).unwrap();
    let ok = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            "tester:s3cret-test-pw",
        ])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{repo}:t"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "skopeo push with credentials");

    // Anonymous: refused, with advice and without anything secret.
    let cache = BlobCache::new(dir.path().join("cache"), 1 << 30);
    let anon = RegistryClient::new(http.clone(), RegistryAuth::anonymous());
    let err = pull(&anon, &cache, &repo, &digest, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("requires authentication"), "{err}");

    // With a docker-style config.json: pulled. Neither Debug nor errors show the password.
    let docker_config = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode("tester:s3cret-test-pw");
    std::fs::write(
        &docker_config,
        format!(r#"{{"auths":{{"{addr}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let client = RegistryClient::new(http, RegistryAuth::from_file(&docker_config).unwrap());
    assert!(!format!("{client:?}").contains("s3cret"));
    let pulled = pull(&client, &cache, &repo, &digest, &mut |_| {}).unwrap();
    assert_eq!(pulled.layers.len(), 1);
    let missing = Sha256Digest::of(b"no such manifest");
    let err = pull(&client, &cache, &repo, &missing, &mut |_| {}).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains(&auth),
        "{shown}"
    );
}
