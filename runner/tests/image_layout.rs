//! `ImageCache::prepare_from_layout` against small synthetic OCI layouts, good and hostile.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use airlock_attest::Sha256Digest;
use airlock_runner::fetch::image::{ImageCache, ImageError, ImageProgress, PreparedImage};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use tar::{EntryType, Header};

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Builds one layer tar in memory, including entries the `tar` crate's safe setters refuse.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    /// Appends an entry whose name bytes are written raw (so `..` can be expressed).
    fn raw(
        mut self,
        kind: EntryType,
        path: &str,
        link: Option<&str>,
        mode: u32,
        data: &[u8],
    ) -> Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let name = &mut h.as_old_mut().name;
        assert!(path.len() < name.len(), "test path too long");
        name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            let linkname = &mut h.as_old_mut().linkname;
            assert!(link.len() < linkname.len(), "test link too long");
            linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_704_067_200);
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }

    fn dir(self, path: &str) -> Self {
        self.raw(EntryType::Directory, path, None, 0o755, b"")
    }

    fn file(self, path: &str, data: &[u8]) -> Self {
        self.raw(EntryType::Regular, path, None, 0o644, data)
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.raw(EntryType::Symlink, path, Some(target), 0o777, b"")
    }

    fn hardlink(self, path: &str, target: &str) -> Self {
        self.raw(EntryType::Link, path, Some(target), 0o644, b"")
    }

    fn tar(self) -> Vec<u8> {
        self.0.into_inner().expect("finish tar")
    }
}

/// Writes an OCI image layout into a temp dir.
struct LayoutBuilder {
    dir: tempfile::TempDir,
    layers: Vec<(String, Vec<u8>, Vec<u8>)>, // media type, blob, uncompressed tar
}

impl LayoutBuilder {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("blobs/sha256")).expect("mkdir blobs");
        fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        Self {
            dir,
            layers: Vec::new(),
        }
    }

    fn layer(mut self, tar: Vec<u8>) -> Self {
        self.layers.push((OCI_LAYER.to_owned(), tar.clone(), tar));
        self
    }

    fn gzip_layer(mut self, tar: Vec<u8>) -> Self {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&tar).expect("gzip");
        let blob = enc.finish().expect("gzip");
        self.layers.push((OCI_LAYER_GZIP.to_owned(), blob, tar));
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn put(&self, data: &[u8]) -> Sha256Digest {
        let digest = Sha256Digest::of(data);
        fs::write(self.blob(&digest), data).expect("write blob");
        digest
    }

    fn blob(&self, digest: &Sha256Digest) -> PathBuf {
        self.path().join("blobs/sha256").join(digest.hex())
    }

    /// Writes blobs, config, manifest and index; returns the manifest digest and layer digests.
    fn write(&self) -> (Sha256Digest, Vec<Sha256Digest>) {
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut digests = Vec::new();
        for (media_type, blob, tar) in &self.layers {
            let digest = self.put(blob);
            digests.push(digest);
            layer_descs.push(json!({
                "mediaType": media_type,
                "digest": digest.prefixed(),
                "size": blob.len(),
            }));
            diff_ids.push(Sha256Digest::of(tar).prefixed());
        }
        let config = serde_json::to_vec(&json!({
            "architecture": host_arch(),
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "WorkingDir": "/src"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("config json");
        let config_digest = self.put(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.prefixed(),
                "size": config.len(),
            },
            "layers": layer_descs,
        }))
        .expect("manifest json");
        let manifest_digest = self.put(&manifest);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest.prefixed(),
                "size": manifest.len(),
            }],
        }))
        .expect("index json");
        fs::write(self.path().join("index.json"), index).expect("index.json");
        (manifest_digest, digests)
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Prepares into a fresh cache; returns the cache dir, the events and the result.
fn prepare(
    layout: &Path,
    digest: &Sha256Digest,
) -> (
    tempfile::TempDir,
    Vec<ImageProgress>,
    Result<PreparedImage, ImageError>,
) {
    let cache_dir = tempfile::tempdir().expect("tempdir");
    let cache = ImageCache::new(cache_dir.path().join("images"));
    let mut events = Vec::new();
    let result = cache.prepare_from_layout(layout, digest, &mut |p| events.push(p));
    (cache_dir, events, result)
}

/// Nothing was published and no staging directory was left behind.
fn assert_cache_empty(cache_dir: &Path) {
    for sub in ["images/rootfs", "images/tmp"] {
        let dir = cache_dir.join(sub);
        if dir.exists() {
            let left: Vec<_> = fs::read_dir(&dir).expect("read_dir").collect();
            assert!(left.is_empty(), "{} not empty: {left:?}", dir.display());
        }
    }
}

fn refused_entry(result: Result<PreparedImage, ImageError>) -> String {
    match result {
        Err(ImageError::UnsafeEntry { path, reason, .. }) => format!("{path}: {reason}"),
        other => panic!("expected UnsafeEntry, got {other:?}"),
    }
}

#[test]
fn image_good_layout_unpacks_and_is_cached() {
    let base = Layer::new()
        .dir("./usr/")
        .dir("./usr/bin/")
        .file("./usr/bin/tool", b"#!/bin/sh\necho hi\n")
        .raw(EntryType::Regular, "./usr/bin/su", None, 0o4755, b"su")
        .symlink("./bin", "usr/bin")
        .symlink("./etc-link", "/etc")
        .hardlink("./usr/bin/tool2", "./usr/bin/tool")
        .tar();
    let top = Layer::new()
        .file("usr/share/doc/readme", b"layer two")
        .tar();
    let layout = LayoutBuilder::new().layer(base).gzip_layer(top);
    let (digest, layer_digests) = layout.write();

    let cache_dir = tempfile::tempdir().expect("tempdir");
    let cache = ImageCache::new(cache_dir.path().join("images"));
    let mut events = Vec::new();
    let image = cache
        .prepare_from_layout(layout.path(), &digest, &mut |p| events.push(p))
        .expect("prepare");

    assert_eq!(
        image.rootfs,
        cache_dir.path().join("images/rootfs").join(digest.hex())
    );
    assert_eq!(image.manifest_digest, digest);
    assert_eq!(image.layers, layer_digests);
    assert_eq!(image.env, vec!["PATH=/usr/bin:/bin", "LANG=C.UTF-8"]);
    assert_eq!(image.working_dir.as_deref(), Some("/src"));
    assert_eq!(
        events,
        vec![
            ImageProgress::Verifying {
                blob: layer_digests[0],
                bytes: fs::metadata(layout.blob(&layer_digests[0]))
                    .expect("blob")
                    .len(),
            },
            ImageProgress::Unpacking { layer: 1, of: 2 },
            ImageProgress::Verifying {
                blob: layer_digests[1],
                bytes: fs::metadata(layout.blob(&layer_digests[1]))
                    .expect("blob")
                    .len(),
            },
            ImageProgress::Unpacking { layer: 2, of: 2 },
        ]
    );

    let root = &image.rootfs;
    assert_eq!(
        fs::read(root.join("usr/bin/tool")).expect("tool"),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(
        fs::read(root.join("usr/share/doc/readme")).expect("readme"),
        b"layer two"
    );
    assert_eq!(
        fs::read_link(root.join("bin")).expect("bin"),
        Path::new("usr/bin")
    );
    assert_eq!(
        fs::read_link(root.join("etc-link")).expect("link"),
        Path::new("/etc")
    );
    let tool = fs::metadata(root.join("usr/bin/tool")).expect("tool");
    let tool2 = fs::metadata(root.join("usr/bin/tool2")).expect("tool2");
    assert_eq!(tool.ino(), tool2.ino());
    let su = fs::metadata(root.join("usr/bin/su")).expect("su");
    assert_eq!(
        su.permissions().mode() & 0o7777,
        0o755,
        "setuid must be dropped"
    );
    for dir in [
        "work", "out", "inputs", "tmp", "proc", "dev", "sys", "run", "etc",
    ] {
        let meta = fs::symlink_metadata(root.join(dir)).expect(dir);
        assert!(meta.is_dir(), "/{dir} must be a directory");
    }
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).expect("hostname"),
        "airlock\n"
    );
    assert!(
        fs::read_to_string(root.join("etc/hosts"))
            .expect("hosts")
            .contains("localhost")
    );
    assert_eq!(
        fs::metadata(root).expect("root").permissions().mode() & 0o777,
        0o755
    );
    assert_cache_tmp_empty(cache_dir.path());

    // Second time: a cache hit, same answer, nothing unpacked.
    let mut events = Vec::new();
    let again = cache
        .prepare_from_layout(layout.path(), &digest, &mut |p| events.push(p))
        .expect("prepare again");
    assert_eq!(again, image);
    assert_eq!(events, vec![ImageProgress::Cached]);
}

fn assert_cache_tmp_empty(cache_dir: &Path) {
    let tmp = cache_dir.join("images/tmp");
    let left: Vec<_> = fs::read_dir(&tmp).expect("read_dir").collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[test]
fn image_corrupted_layer_blob_is_detected_and_nothing_is_cached() {
    let tar = Layer::new()
        .file("a", &[b'x'; 4096])
        .file("b", b"bee")
        .tar();
    let layout = LayoutBuilder::new().layer(tar);
    let (digest, layers) = layout.write();
    // Flip one byte inside the first file's data: the tar still parses, only the hash tells.
    let blob = layout.blob(&layers[0]);
    let mut bytes = fs::read(&blob).expect("blob");
    bytes[1000] ^= 0xff;
    fs::write(&blob, bytes).expect("corrupt");

    let (cache_dir, _, result) = prepare(layout.path(), &digest);
    match result {
        Err(ImageError::DigestMismatch { expected, what, .. }) => {
            assert_eq!(expected, layers[0]);
            assert_eq!(what, "layer 1");
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_cache_empty(cache_dir.path());
}

#[test]
fn image_corrupted_gzip_layer_is_detected_and_nothing_is_cached() {
    let tar = Layer::new().file("a", &[b'y'; 100_000]).tar();
    let layout = LayoutBuilder::new().gzip_layer(tar);
    let (digest, layers) = layout.write();
    let blob = layout.blob(&layers[0]);
    let mut bytes = fs::read(&blob).expect("blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&blob, bytes).expect("corrupt");

    let (cache_dir, _, result) = prepare(layout.path(), &digest);
    assert!(
        matches!(result, Err(ImageError::DigestMismatch { .. })),
        "got {result:?}"
    );
    assert_cache_empty(cache_dir.path());
}

#[test]
fn image_dotdot_entry_is_refused() {
    let tar = Layer::new().dir("a/").file("a/../../escape", b"x").tar();
    let layout = LayoutBuilder::new().layer(tar);
    let (digest, _) = layout.write();
    let (cache_dir, _, result) = prepare(layout.path(), &digest);
    let msg = refused_entry(result);
    assert!(msg.contains(".."), "{msg}");
    assert!(!cache_dir.path().join("escape").exists());
    assert!(!cache_dir.path().join("images/escape").exists());
    assert_cache_empty(cache_dir.path());
}

#[test]
fn image_absolute_symlink_then_write_through_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().to_str().expect("utf-8 path");

    // Same layer: `a -> <outside>`, then `a/passwd`.
    let tar = Layer::new()
        .symlink("a", target)
        .file("a/passwd", b"pwned")
        .tar();
    let layout = LayoutBuilder::new().layer(tar);
    let (digest, _) = layout.write();
    let (cache_dir, _, result) = prepare(layout.path(), &digest);
    let msg = refused_entry(result);
    assert!(msg.contains("symlink"), "{msg}");
    assert!(
        !outside.path().join("passwd").exists(),
        "wrote outside the rootfs"
    );
    assert_cache_empty(cache_dir.path());

    // Across layers, and through a relative symlink climbing out.
    let lower = Layer::new()
        .symlink("etc", target)
        .symlink("up", "../../../../..")
        .tar();
    let upper = Layer::new().file("etc/passwd", b"pwned").tar();
    let layout = LayoutBuilder::new().layer(lower).layer(upper);
    let (digest, _) = layout.write();
    let (cache_dir, _, result) = prepare(layout.path(), &digest);
    refused_entry(result);
    assert!(
        !outside.path().join("passwd").exists(),
        "wrote outside the rootfs"
    );
    assert_cache_empty(cache_dir.path());

    let tar = Layer::new()
        .symlink("up", "../../../../../../..")
        .file("up/tmp/x", b"x")
        .tar();
    let layout = LayoutBuilder::new().layer(tar);
    let (digest, _) = layout.write();
    let (_cache_dir, _, result) = prepare(layout.path(), &digest);
    refused_entry(result);
}

#[test]
fn image_hardlink_to_outside_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret");
    fs::write(&secret, b"secret").expect("secret");
    let secret_str = secret.to_str().expect("utf-8 path");
    let outside_str = outside.path().to_str().expect("utf-8 path");

    // An absolute target is taken relative to the rootfs, where it does not exist.
    let cases = vec![
        Layer::new().hardlink("h", secret_str).tar(),
        Layer::new()
            .hardlink("h", "../../../../../../etc/passwd")
            .tar(),
        Layer::new()
            .symlink("d", outside_str)
            .hardlink("h", "d/secret")
            .tar(),
        Layer::new().dir("dir/").hardlink("h", "dir").tar(),
    ];
    for tar in cases {
        let layout = LayoutBuilder::new().layer(tar);
        let (digest, _) = layout.write();
        let (cache_dir, _, result) = prepare(layout.path(), &digest);
        refused_entry(result);
        assert_cache_empty(cache_dir.path());
    }
    assert_eq!(fs::metadata(&secret).expect("secret").nlink(), 1);
}

#[test]
fn image_whiteouts_and_opaque_dirs_are_applied() {
    let lower = Layer::new()
        .file("f", b"gone")
        .dir("d/")
        .file("d/x", b"gone")
        .file("d/y", b"kept")
        .dir("o/")
        .file("o/p", b"gone")
        .dir("o/sub/")
        .file("o/sub/q", b"gone")
        .dir("o2/")
        .file("o2/old", b"gone")
        .tar();
    let upper = Layer::new()
        .file(".wh.f", b"")
        .file("d/.wh.x", b"")
        .file("d/.wh.missing", b"")
        .file("o/.wh..wh..opq", b"")
        .file("o/new", b"new")
        // Same-layer entries before the marker survive it.
        .file("o2/early", b"early")
        .dir("o2/sub/")
        .file("o2/sub/z", b"z")
        .file("o2/.wh..wh..opq", b"")
        .tar();
    let layout = LayoutBuilder::new().layer(lower).layer(upper);
    let (digest, _) = layout.write();
    let (_cache_dir, _, result) = prepare(layout.path(), &digest);
    let root = result.expect("prepare").rootfs;

    assert!(!root.join("f").exists());
    assert!(!root.join("d/x").exists());
    assert_eq!(fs::read(root.join("d/y")).expect("d/y"), b"kept");
    assert!(!root.join("o/p").exists());
    assert!(!root.join("o/sub").exists());
    assert_eq!(fs::read(root.join("o/new")).expect("o/new"), b"new");
    assert!(!root.join("o2/old").exists());
    assert_eq!(fs::read(root.join("o2/early")).expect("early"), b"early");
    assert_eq!(fs::read(root.join("o2/sub/z")).expect("z"), b"z");
    for wh in [".wh.f", "d/.wh.x", "o/.wh..wh..opq", "o2/.wh..wh..opq"] {
        assert!(
            fs::symlink_metadata(root.join(wh)).is_err(),
            "{wh} materialised"
        );
    }
}

#[test]
fn image_whiteout_through_symlink_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    fs::write(outside.path().join("victim"), b"v").expect("victim");
    let lower = Layer::new()
        .symlink("s", outside.path().to_str().expect("utf-8"))
        .tar();
    let upper = Layer::new().file("s/.wh.victim", b"").tar();
    let layout = LayoutBuilder::new().layer(lower).layer(upper);
    let (digest, _) = layout.write();
    let (_cache_dir, _, result) = prepare(layout.path(), &digest);
    refused_entry(result);
    assert!(outside.path().join("victim").exists());
}

#[test]
fn image_manifest_digest_mismatch_is_refused() {
    let layout = LayoutBuilder::new().layer(Layer::new().file("a", b"a").tar());
    let (digest, _) = layout.write();

    // The blob stored under the pinned digest has other content.
    let manifest = layout.blob(&digest);
    let mut bytes = fs::read(&manifest).expect("manifest");
    bytes.push(b' ');
    fs::write(&manifest, bytes).expect("tamper");
    let (cache_dir, _, result) = prepare(layout.path(), &digest);
    assert!(
        matches!(result, Err(ImageError::DigestMismatch { ref what, .. }) if what == "manifest"),
        "got {result:?}"
    );
    assert_cache_empty(cache_dir.path());

    // A digest with no blob at all.
    let other = Sha256Digest::of(b"no such manifest");
    let (_cache_dir, _, result) = prepare(layout.path(), &other);
    assert!(
        matches!(result, Err(ImageError::BlobMissing { .. })),
        "got {result:?}"
    );
}

#[test]
fn image_index_or_unknown_media_type_is_refused_as_manifest() {
    let layout = LayoutBuilder::new().layer(Layer::new().file("a", b"a").tar());
    layout.write();
    // index.json is a valid blob-shaped document, but not a manifest.
    let index = fs::read(layout.path().join("index.json")).expect("index");
    let digest = layout.put(&index);
    let (_c, _, result) = prepare(layout.path(), &digest);
    assert!(result.is_err(), "an index was accepted as a manifest");

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Sha256Digest::of(b"{}").prefixed(),
            "size": 2,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
            "digest": Sha256Digest::of(b"").prefixed(),
            "size": 0,
        }],
    }))
    .expect("json");
    layout.put(b"{}");
    let digest = layout.put(&manifest);
    let (_c, _, result) = prepare(layout.path(), &digest);
    assert!(
        matches!(
            result,
            Err(ImageError::UnsupportedMediaType { .. }) | Err(ImageError::Parse { .. })
        ),
        "got {result:?}"
    );
}

#[test]
fn image_uppercase_or_foreign_digest_in_manifest_is_refused() {
    let tar = Layer::new().file("a", b"a").tar();
    let layout = LayoutBuilder::new().layer(tar.clone());
    layout.write();
    let layer = layout.put(&tar);
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.prefixed()]},
    }))
    .expect("json");
    let config_digest = layout.put(&config);
    for bad in [
        format!("sha256:{}", layer.hex().to_uppercase()),
        format!("sha512:{}{}", layer.hex(), layer.hex()),
    ] {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.prefixed(),
                "size": config.len(),
            },
            "layers": [{"mediaType": OCI_LAYER, "digest": bad, "size": tar.len()}],
        }))
        .expect("json");
        let digest = layout.put(&manifest);
        let (_c, _, result) = prepare(layout.path(), &digest);
        assert!(
            matches!(
                result,
                Err(ImageError::InvalidDigest { .. }) | Err(ImageError::Parse { .. })
            ),
            "{bad}: got {result:?}"
        );
    }
}

/// The real example image, if `examples/base-image/build.sh` has been run.
#[test]
fn image_real_base_image_has_gcc() {
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/base-image/oci");
    let Ok(recorded) = fs::read_to_string(layout.join("MANIFEST_DIGEST")) else {
        eprintln!(
            "skipped: {} not built (run examples/base-image/build.sh)",
            layout.display()
        );
        return;
    };
    let digest = Sha256Digest::parse_prefixed(recorded.trim()).expect("MANIFEST_DIGEST");
    let cache_dir = tempfile::tempdir().expect("tempdir");
    let cache = ImageCache::new(cache_dir.path());
    let mut events = Vec::new();
    let image = cache
        .prepare_from_layout(&layout, &digest, &mut |p| events.push(p))
        .expect("prepare the example base image");
    let gcc = fs::symlink_metadata(image.rootfs.join("usr/bin/gcc")).expect("usr/bin/gcc");
    assert!(gcc.file_type().is_symlink() || gcc.is_file());
    assert!(image.rootfs.join("usr/include/stdio.h").is_file());
    assert!(image.env.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(image.layers.len(), 1);
    // Device nodes in the tarball were skipped; /dev is an empty mount point.
    assert!(image.rootfs.join("dev").is_dir());
    assert!(!image.rootfs.join("dev/null").exists());
    let _ = io::stderr().flush();
}
