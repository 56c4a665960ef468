//! `airlock run examples/hello`: a real build, its provenance accepted by
//! `airlock verify` and by securesystemslib, tampering refused by both.

use std::process::Command;

use crate::common::*;

#[test]
#[ignore = "needs root, the base image and the venv: run scripts/test.sh"]
fn hello_builds_in_the_sandbox_runs_on_the_host_and_verifies() {
    let home = scratch();
    let out = home.path().join("out");
    let job = repo().join("examples/hello/airlock.toml");
    let (layout, digest) = base_image();
    // Run a copy of the example pinned to the locally built image digest.
    let example = home.path().join("hello");
    std::fs::create_dir_all(&example).unwrap();
    std::fs::copy(
        repo().join("examples/hello/hello.c"),
        example.join("hello.c"),
    )
    .unwrap();
    let toml = std::fs::read_to_string(&job).unwrap();
    let pinned = with_image_ref(&toml, &format!("oci-layout:{}@{digest}", layout.display()));
    std::fs::write(example.join("airlock.toml"), pinned).unwrap();

    let o = airlock_run(&example.join("airlock.toml"), home.path(), &out);
    assert_eq!(o.status.code(), Some(0), "airlock run failed");
    let t = text(&o);
    assert!(
        t.contains("builder id: https://localhost/builders/local/trusted"),
        "{t}"
    );
    assert!(t.contains("/builders/local/trusted"), "{t}");

    // The binary built inside the sandbox runs on the host.
    let hello = out.join("hello");
    let greeting = Command::new(&hello).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&greeting.stdout),
        "Hello from a hermetic airlock build!\n"
    );
    // The summary prints the sha256 of the output, equal to the file's.
    let sha = airlock_attest::hash_reader(std::fs::File::open(&hello).unwrap())
        .unwrap()
        .0;
    assert!(t.contains(&sha.hex()), "summary lacks sha256:{sha}");

    let prov = out.join("hello.intoto.jsonl");
    let bundle = out.join("hello.sigstore.json");
    let key = home.path().join("keys/local-provenance.pub");
    let verify = |artifact: &std::path::Path, provenance: &std::path::Path| {
        let mut c = airlock();
        c.arg("verify")
            .arg(artifact)
            .arg("--provenance")
            .arg(provenance)
            .arg("--key")
            .arg(&key);
        run(c)
    };
    // Accepted: by airlock (both formats) and by securesystemslib.
    assert_eq!(verify(&hello, &prov).status.code(), Some(0));
    assert_eq!(verify(&hello, &bundle).status.code(), Some(0));
    let mut c = airlock();
    c.arg("verify")
        .arg(&hello)
        .arg("--provenance")
        .arg(&prov)
        .arg("--key")
        .arg(&key)
        .arg("--builder-id")
        .arg("https://ci.example/builders/release");
    assert_eq!(
        run(c).status.code(),
        Some(1),
        "a wrong builder id must fail"
    );
    assert!(
        third_party_verify(&prov, &key, &hello).status.success(),
        "securesystemslib refused good provenance"
    );
    assert!(
        third_party_verify(&bundle, &key, &hello).status.success(),
        "securesystemslib refused the bundle"
    );

    // A tampered artifact is refused by both.
    let evil = home.path().join("hello-tampered");
    let mut bytes = std::fs::read(&hello).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&evil, &bytes).unwrap();
    let o = verify(&evil, &prov);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("subject"),
        "message should say the digest is not a subject"
    );
    assert!(!third_party_verify(&prov, &key, &evil).status.success());

    // A tampered payload (one subject digest changed) and a tampered signature are refused.
    let line = std::fs::read_to_string(&prov).unwrap();
    let mut env: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    let forged = payload.replace(&sha.hex(), &airlock_attest::Sha256Digest::of(&bytes).hex());
    assert_ne!(payload, forged);
    let mut bad_payload = env.clone();
    bad_payload["payload"] = serde_json::Value::String(b64.encode(forged));
    let bad_payload_file = home.path().join("payload.intoto.jsonl");
    std::fs::write(
        &bad_payload_file,
        serde_json::to_string(&bad_payload).unwrap(),
    )
    .unwrap();
    assert_eq!(
        verify(&evil, &bad_payload_file).status.code(),
        Some(1),
        "forged payload must not verify"
    );
    assert!(
        !third_party_verify(&bad_payload_file, &key, &evil)
            .status
            .success()
    );

    let mut sig = b64
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let n = sig.len() - 3;
    sig[n] ^= 0x40;
    env["signatures"][0]["sig"] = serde_json::Value::String(b64.encode(sig));
    let bad_sig_file = home.path().join("sig.intoto.jsonl");
    std::fs::write(&bad_sig_file, serde_json::to_string(&env).unwrap()).unwrap();
    assert_eq!(
        verify(&hello, &bad_sig_file).status.code(),
        Some(1),
        "bad signature must not verify"
    );
    assert!(
        !third_party_verify(&bad_sig_file, &key, &hello)
            .status
            .success()
    );
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn a_failing_step_exits_1_and_signs_nothing() {
    let home = scratch();
    let job = job_dir(
        home.path(),
        "fails",
        "[[steps]]\nrun = \"echo about to fail; exit 7\"",
        "\"never\"",
    );
    let out = home.path().join("out");
    let o = airlock_run(&job, home.path(), &out);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("exit code 7"), "{t}");
    assert!(t.contains("about to fail"), "step output is shown: {t}");
    assert!(
        !out.join("fails.intoto.jsonl").exists(),
        "no provenance for a failed build"
    );
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn the_sandbox_sees_the_planned_identity_and_environment() {
    let home = scratch();
    let steps = r#"[[steps]]
run = """
set -e
test "$(id -u):$(id -g)" = "1000:1000"
test "$(hostname)" = airlock
test "$TZ" = UTC && test "$LANG" = C.UTF-8 && test "$SOURCE_DATE_EPOCH" = 315532800
grep -q 'from the source tree' /work/input.txt
test "$(pwd)" = /work
cat /proc/self/uid_map > /out/uid_map
grep CapEff /proc/self/status > /out/caps
grep NoNewPrivs /proc/self/status >> /out/caps
grep Seccomp: /proc/self/status >> /out/caps
"""
"#;
    let job = job_dir(home.path(), "identity", steps, "\"uid_map\", \"caps\"");
    let out = home.path().join("out");
    let o = airlock_run(&job, home.path(), &out);
    assert_eq!(o.status.code(), Some(0));
    let uid_map = std::fs::read_to_string(out.join("uid_map")).unwrap();
    let fields: Vec<u64> = uid_map
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields[0], 0, "{uid_map}");
    assert!(
        fields[1] >= 100_000,
        "container ids map to unprivileged host ids: {uid_map}"
    );
    let caps = std::fs::read_to_string(out.join("caps")).unwrap();
    assert!(caps.contains("CapEff:\t0000000000000000"), "{caps}");
    assert!(caps.contains("NoNewPrivs:\t1"), "{caps}");
    assert!(
        caps.contains("Seccomp:\t2"),
        "a seccomp filter is active: {caps}"
    );
}

#[test]
#[ignore = "needs root and the example base image (scripts/test.sh)"]
fn the_example_names_its_layout_without_a_digest_and_is_pinned_at_submit() {
    let home = scratch();
    let out = home.path().join("out");
    let (_, digest) = base_image();
    let job = repo().join("examples/hello/airlock.toml");
    let before = std::fs::read(&job).unwrap();
    // The tracked example itself, as a new user runs it.
    let o = airlock_run(&job, home.path(), &out);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("pinned image layout"), "{t}");
    let st = statement(&out, "hello");
    let image = &st["predicate"]["buildDefinition"]["externalParameters"]["image"];
    assert_eq!(image["resolved_from"], "oci-layout:../base-image/oci");
    assert!(
        image["ref"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{digest}")),
        "{image}"
    );
    let dep = st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "image")
        .unwrap();
    assert_eq!(
        format!("sha256:{}", dep["digest"]["sha256"].as_str().unwrap()),
        digest
    );
    assert_eq!(
        std::fs::read(&job).unwrap(),
        before,
        "the job file was rewritten"
    );
    // A layout whose index names another manifest than its blobs hold is refused at submit.
    let broken = home.path().join("broken");
    std::fs::create_dir_all(broken.join("oci/blobs/sha256")).unwrap();
    std::fs::write(
        broken.join("oci/index.json"),
        format!(
            "{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:{}\",\"size\":2}}]}}",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let job_file = job_dir(&broken, "broken", "[[steps]]\nrun = \"true\"", "\"a\"");
    let toml = std::fs::read_to_string(&job_file).unwrap();
    std::fs::write(
        &job_file,
        with_image_ref(
            &toml,
            &format!("oci-layout:{}", broken.join("oci").display()),
        ),
    )
    .unwrap();
    let o = airlock_run(&job_file, home.path(), &home.path().join("out-broken"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("image.ref") && t.contains("no digest"), "{t}");
}
