//! `airlock push` against a real registry (Debian's `docker-registry` on loopback, from
//! `scripts/registry.sh`), checked with a third-party client (`skopeo`): the image arrives
//! byte for byte with the layout's digest, the provenance is an OCI referrer whose layer is
//! the envelope, listed in the referrers tag `sha256-<hex>` (the registry has no referrers
//! API), and pushing twice changes nothing. Provenance of another image, a bad signature
//! and a tampered layout are refused with nothing pushed; a registry behind a login takes the
//! push with `--registry-auth` and refuses it without.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlock_attest::{Sha256Digest, sign_envelope};

use crate::common::*;

/// `AIRLOCK_TEST_REGISTRY` from `scripts/registry.sh`: `127.0.0.1:PORT`.
fn registry() -> String {
    std::env::var("AIRLOCK_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!(
            "AIRLOCK_TEST_REGISTRY is unset: run `eval \"$(scripts/registry.sh)\"` (scripts/test.sh does)"
        )
    })
}

/// A repository no earlier run used: the registry keeps its storage between runs, and the
/// negative cases check that nothing arrived.
fn fresh_repo(what: &str) -> String {
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).unwrap();
    format!("{}/e2e-push/{what}-{}", registry(), hex::encode(id))
}

/// An OCI image layout `<out>/<name>/` of one gzip layer (a tar with one file) and its
/// config, as a job's image output would be. Returns the manifest digest.
fn write_layout(out: &Path, name: &str, file: &[u8]) -> Sha256Digest {
    let dir = out.join(name);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Sha256Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(file.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", file).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [Sha256Digest::of(&tar).prefixed()]},
    }))
    .unwrap();
    let config_digest = put(&config);
    // Pretty-printed with a trailing newline: the registry must keep these exact bytes.
    let mut manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.prefixed(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest.prefixed(),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    manifest.push(b'\n');
    let manifest_digest = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.prefixed(),
            "size": manifest.len(),
        }]})
        .to_string(),
    )
    .unwrap();
    manifest_digest
}

/// A SLSA v1 statement about `name` with `digest`, in the shape airlock signs.
fn statement(name: &str, digest: &Sha256Digest) -> serde_json::Value {
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.hex()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://airlock.example/build-type/v1",
                "externalParameters": {"job": {"name": name}},
            },
            "runDetails": {
                "builder": {"id": "https://airlock.example/builders/test"},
                "metadata": {
                    "invocationId": "job-1",
                    "startedOn": "2026-01-01T00:00:00Z",
                    "finishedOn": "2026-01-01T00:01:00Z",
                },
            },
        },
    })
}

/// A signing key made by `airlock keys generate`: (private key, public key).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let mut c = airlock();
    c.args(["keys", "generate", "--name", name, "--out"])
        .arg(dir);
    assert!(run(c).status.success(), "keys generate failed");
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Signs `statement` with `key` into `path` (`.intoto.jsonl`); returns the envelope line
/// without its newline.
fn write_provenance(path: &Path, statement: &serde_json::Value, key: &Path) -> Vec<u8> {
    let key = airlock_attest::load_signing_key(key).unwrap();
    let body = serde_json::to_vec(statement).unwrap();
    let envelope = sign_envelope(airlock_attest::IN_TOTO_PAYLOAD_TYPE, &body, &key).unwrap();
    let line = envelope.to_json_line().unwrap();
    std::fs::write(path, &line).unwrap();
    line.trim_end().as_bytes().to_vec()
}

fn push(layout: &Path, target: &str, extra: &[&str]) -> Output {
    let mut c = airlock();
    c.arg("push").arg(layout).arg(target).args(extra);
    // No login file of the machine's user is read.
    c.env("DOCKER_CONFIG", layout.join("no-docker-config"));
    run(c)
}

/// `skopeo inspect --raw` of `reference` (`HOST/REPO:TAG` or `HOST/REPO@sha256:...`).
fn skopeo_raw(reference: &str) -> Option<Vec<u8>> {
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"));
    let o = run(c);
    o.status.success().then_some(o.stdout)
}

/// The `HOST/REPO@sha256:<hex>` after `prefix` on a stdout line.
fn printed(o: &Output, prefix: &str) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in stdout"))
        .to_owned()
}

#[test]
#[ignore = "needs the loopback registry (scripts/registry.sh) and skopeo"]
fn push_keeps_the_digest_and_attaches_the_envelope_as_a_referrer_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = write_layout(&out, "web", b"hello from a pushed image\n");
    let (key, public) = keypair(tmp.path(), "builder");
    let envelope = write_provenance(
        &out.join("web.intoto.jsonl"),
        &statement("web", &digest),
        &key,
    );
    let repo = fresh_repo("web");
    let key_arg = public.to_str().unwrap();

    // The provenance is found next to the layout; its signature is checked with --key.
    let o = push(&out.join("web"), &format!("{repo}:v1"), &["--key", key_arg]);
    assert_eq!(o.status.code(), Some(0), "push failed");
    assert_eq!(
        printed(&o, "pushed "),
        format!("{repo}@{}", digest.prefixed())
    );
    let referrer = printed(&o, "attached provenance ");
    let (referrer_repo, referrer_digest) = referrer.split_once('@').unwrap();
    assert_eq!(referrer_repo, repo);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("signature verifies with trusted key"),
        "{stderr}"
    );
    assert!(stderr.contains("blob 2/2 layer 1"), "{stderr}");

    // The image: the layout's manifest, byte for byte, under the tag and by digest.
    let layout_manifest = std::fs::read(out.join("web/blobs/sha256").join(digest.hex())).unwrap();
    let by_tag = skopeo_raw(&format!("{repo}:v1")).expect("the tag is pushed");
    assert_eq!(Sha256Digest::of(&by_tag), digest);
    assert_eq!(by_tag, layout_manifest);
    assert_eq!(
        skopeo_raw(&format!("{repo}@{}", digest.prefixed())).unwrap(),
        layout_manifest
    );

    // The referrer: an artifact manifest with the image as its subject.
    let referrer_bytes = skopeo_raw(&referrer).expect("the referrer is pushed");
    assert_eq!(
        Sha256Digest::of(&referrer_bytes).prefixed(),
        referrer_digest
    );
    let m: serde_json::Value = serde_json::from_slice(&referrer_bytes).unwrap();
    assert_eq!(m["artifactType"], "application/vnd.dsse.envelope.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        m["config"]["digest"],
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(m["subject"]["digest"], digest.prefixed());
    assert_eq!(m["subject"]["size"], layout_manifest.len());
    assert_eq!(
        m["annotations"]["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v1"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.dsse.envelope.v1+json"
    );

    // Its one layer is the envelope, as skopeo downloads it.
    let copied = tmp.path().join("referrer-dir");
    let mut c = Command::new("skopeo");
    c.args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{referrer}"))
        .arg(format!("dir:{}", copied.display()));
    assert!(
        run(c).status.success(),
        "skopeo copy of the referrer failed"
    );
    let layer_hex = layers[0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    assert_eq!(std::fs::read(copied.join(layer_hex)).unwrap(), envelope);

    // What was fetched verifies as it did before the push (docs/images.md's recipe).
    let fetched = tmp.path().join("fetched");
    std::fs::create_dir_all(&fetched).unwrap();
    std::fs::write(fetched.join("web"), &by_tag).unwrap();
    std::fs::copy(copied.join(layer_hex), fetched.join("web.intoto.jsonl")).unwrap();
    let mut c = airlock();
    c.arg("verify")
        .arg(fetched.join("web"))
        .arg("--provenance")
        .arg(fetched.join("web.intoto.jsonl"))
        .arg("--key")
        .arg(&public);
    assert_eq!(
        run(c).status.code(),
        Some(0),
        "the fetched envelope does not verify"
    );

    // The referrers tag schema: an index at sha256-<hex> listing the referrer.
    let index_ref = format!("{repo}:sha256-{}", digest.hex());
    let index = |what: &str| -> serde_json::Value {
        serde_json::from_slice(&skopeo_raw(&index_ref).unwrap_or_else(|| panic!("{what}"))).unwrap()
    };
    let first = index("the referrers index is pushed");
    assert_eq!(
        first["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = first["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], referrer_digest);
    assert_eq!(entries[0]["size"], referrer_bytes.len());
    assert_eq!(
        entries[0]["artifactType"],
        "application/vnd.dsse.envelope.v1+json"
    );

    // Again, without --key (an unverified attach) and with --provenance named: the same
    // digests, every blob already there, and still one referrer listed.
    let o = push(
        &out.join("web"),
        &format!("{repo}:v1"),
        &[
            "--provenance",
            out.join("web.intoto.jsonl").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "second push failed");
    assert_eq!(
        printed(&o, "pushed "),
        format!("{repo}@{}", digest.prefixed())
    );
    assert_eq!(printed(&o, "attached provenance "), referrer);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("0 blob(s) uploaded"), "{stderr}");
    assert!(stderr.contains("lists the referrer already"), "{stderr}");
    assert_eq!(index("the index is still there"), first);

    // --no-attach pushes the image alone, by digest when no tag is given.
    let plain = fresh_repo("plain");
    let o = push(&out.join("web"), &plain, &["--no-attach"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        printed(&o, "pushed "),
        format!("{plain}@{}", digest.prefixed())
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("attached"));
    assert!(skopeo_raw(&format!("{plain}:sha256-{}", digest.hex())).is_none());
}

#[test]
#[ignore = "needs the loopback registry (scripts/registry.sh) and skopeo"]
fn provenance_of_another_image_or_with_a_bad_signature_pushes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = write_layout(&out, "web", b"the real image\n");
    let (key, public) = keypair(tmp.path(), "builder");
    let (_, stranger) = keypair(tmp.path(), "stranger");
    let repo = fresh_repo("refused");
    let target = format!("{repo}:v1");

    // A subject named "web" but with another digest: refused, naming both digests.
    let other = Sha256Digest::of(b"some other manifest");
    let provenance = out.join("web.intoto.jsonl");
    write_provenance(&provenance, &statement("web", &other), &key);
    let o = push(&out.join("web"), &target, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "another image's provenance was accepted"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&other.prefixed()) && stderr.contains(&digest.prefixed()),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was pushed"), "{stderr}");
    assert!(skopeo_raw(&target).is_none(), "the image was pushed anyway");

    // No subject of the layout's name.
    write_provenance(&provenance, &statement("api", &digest), &key);
    let o = push(&out.join("web"), &target, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no subject is named \"web\""));

    // The right subject, but --key names a key that did not sign it.
    write_provenance(&provenance, &statement("web", &digest), &key);
    let o = push(
        &out.join("web"),
        &target,
        &["--key", stranger.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "a foreign signature was accepted");
    assert!(String::from_utf8_lossy(&o.stderr).contains("none of them is trusted"));

    // The right key, but the payload was altered after signing.
    let mut envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&provenance).unwrap()).unwrap();
    let mut forged = statement("web", &digest);
    forged["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/".into();
    use base64::Engine as _;
    envelope["payload"] = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&forged).unwrap())
        .into();
    std::fs::write(&provenance, format!("{envelope}\n")).unwrap();
    let o = push(
        &out.join("web"),
        &target,
        &["--key", public.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "an altered payload was accepted");
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not verify"));

    // Two provenance files next to the layout: which one is meant is not guessed.
    write_provenance(&provenance, &statement("web", &digest), &key);
    std::fs::copy(&provenance, out.join("api.intoto.jsonl")).unwrap();
    let o = push(&out.join("web"), &target, &[]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("api.intoto.jsonl") && stderr.contains("web.intoto.jsonl"),
        "{stderr}"
    );

    // A digest in the target is refused.
    let o = push(
        &out.join("web"),
        &format!("{repo}@{}", digest.prefixed()),
        &["--provenance", provenance.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));

    assert!(skopeo_raw(&target).is_none(), "something was pushed");
    assert!(skopeo_raw(&format!("{repo}@{}", digest.prefixed())).is_none());
    assert!(skopeo_raw(&format!("{repo}:sha256-{}", digest.hex())).is_none());
}

#[test]
#[ignore = "needs the loopback registry (scripts/registry.sh) and skopeo"]
fn a_tampered_layout_is_refused_before_anything_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = write_layout(&out, "web", b"an image about to be tampered with\n");
    let (key, _) = keypair(tmp.path(), "builder");
    write_provenance(
        &out.join("web.intoto.jsonl"),
        &statement("web", &digest),
        &key,
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("web/blobs/sha256").join(digest.hex())).unwrap(),
    )
    .unwrap();
    let layer_hex = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let layer = out.join("web/blobs/sha256").join(&layer_hex);
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&layer, &bytes).unwrap();

    let repo = fresh_repo("tampered");
    let o = push(&out.join("web"), &format!("{repo}:v1"), &[]);
    assert_eq!(o.status.code(), Some(1), "a tampered layout was pushed");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("layer 1") && stderr.contains("tampered"),
        "{stderr}"
    );
    assert!(skopeo_raw(&format!("{repo}:v1")).is_none());
    // Not even the blob: the registry never saw it.
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{repo}@{}", digest.prefixed()));
    assert!(!run(c).status.success());
    let blob = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I"])
        .arg(format!(
            "http://{}/v2/{}/blobs/sha256:{layer_hex}",
            registry(),
            repo.split_once('/').unwrap().1
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&blob.stdout), "404");
}

/// The test login of runner/tests/fetch_cache.rs: `tester` / `s3cret-test-pw`, bcrypt cost 4.
const HTPASSWD: &str = "tester:$2b$04$S1pIkEP2DQPXP4l3m3DbAevw3HbCKjyY4ljAfZ21MUeL3C5Rl0opO\n";

#[test]
#[ignore = "needs docker-registry and skopeo (scripts/registry.sh installs them)"]
fn a_registry_with_a_login_takes_the_push_from_registry_auth_and_refuses_it_without() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(tmp.path().join("htpasswd"), HTPASSWD).unwrap();
    std::fs::write(
        tmp.path().join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             auth:\n  htpasswd:\n    realm: airlock-test\n    path: {}\nhttp:\n  addr: {addr}\n",
            tmp.path().join("storage").display(),
            tmp.path().join("htpasswd").display()
        ),
    )
    .unwrap();
    let _registry = Kill(
        Command::new("docker-registry")
            .arg("serve")
            .arg(tmp.path().join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);

    let out = tmp.path().join("out");
    let digest = write_layout(&out, "web", b"behind a login\n");
    let (key, _) = keypair(tmp.path(), "builder");
    write_provenance(
        &out.join("web.intoto.jsonl"),
        &statement("web", &digest),
        &key,
    );
    let target = format!("{addr}/team/web:v1");

    let o = push(&out.join("web"), &target, &[]);
    assert_eq!(o.status.code(), Some(2), "an anonymous push was accepted");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("requires authentication"), "{stderr}");

    let auth = tmp.path().join("config.json");
    let login = base64::engine::general_purpose::STANDARD.encode("tester:s3cret-test-pw");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{addr}":{{"auth":"{login}"}}}}}}"#),
    )
    .unwrap();
    let o = push(
        &out.join("web"),
        &target,
        &["--registry-auth", auth.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "the push with a login failed");
    assert!(!text(&o).contains("s3cret"), "the password was printed");
    let referrer = printed(&o, "attached provenance ");
    let mut c = Command::new("skopeo");
    c.args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "tester:s3cret-test-pw",
    ])
    .arg(format!("docker://{target}"));
    let o = run(c);
    assert!(o.status.success());
    assert_eq!(Sha256Digest::of(&o.stdout), digest);
    let mut c = Command::new("skopeo");
    c.args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "tester:s3cret-test-pw",
    ])
    .arg(format!("docker://{addr}/team/web:sha256-{}", digest.hex()));
    let o = run(c);
    assert!(o.status.success(), "no referrers index");
    let index: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        format!(
            "{addr}/team/web@{}",
            index["manifests"][0]["digest"].as_str().unwrap()
        ),
        referrer
    );
}
