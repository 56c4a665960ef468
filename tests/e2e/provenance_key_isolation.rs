//! The signing key is out of reach of build steps (SLSA Build L3): a job step scans the
//! sandbox's whole file system (`/` but /proc and /sys; device nodes are not read) and its
//! environment for any private-key PEM block (`-----BEGIN ... PRIVATE KEY-----`; the image
//! legitimately ships public PGP keys for apt)
//! and for files whose bytes are the key's (its PEM file or its DER), and the job's outcome
//! is the verdict. The job is given only hashes of the key, never the key. A positive control
//! plants a decoy key in the source tree and shows the same scan finds it.

use std::path::Path;

use base64::Engine as _;

use crate::common::*;

/// The scan. `$KEY_SHA256` and `$KEY_DER_SHA256` are the sha256 of the key file and of its
/// DER. The PEM pattern is assembled at run time so that this script, which is itself part
/// of the source tree in /work (airlock.toml), does not match it.
const SCAN: &str = r#"[[steps]]
name = "scan"
run = '''
set -u
export LC_ALL=C
d=-----
# A PEM block's header is a line of its own; libraries (e.g. libgnutls) contain the same
# words inside binary strings, which are not key material.
pem="^${d}BEGIN [A-Z0-9 ]*PRIVATE KEY${d}[[:space:]]*"'$'

hits=0
find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -type f -print0 > /tmp/files 2>/dev/null
# /dev holds device nodes bind-mounted over placeholder files, which find's -type (from
# readdir) reports as regular: ask stat instead, so /dev/zero is not read forever.
find /dev -print > /tmp/dev 2>/dev/null
while IFS= read -r f; do
  if [ -f "$f" ] && [ ! -c "$f" ] && [ ! -b "$f" ]; then printf '%s\0' "$f" >> /tmp/files; fi
done < /tmp/dev
scanned=$(tr -cd '\0' < /tmp/files | wc -c)
xargs -0 sh -c 'for f; do [ -r "$f" ] || echo "$f"; done' sh < /tmp/files > /tmp/unreadable
unreadable=$(wc -l < /tmp/unreadable)
# Intermediate results go to files, not pipes: a fixed-string pass first (fast over 400 MB
# of binaries), then the exact pattern on the candidates.
xargs -0 -n 200 grep -lF -e "PRIVATE KEY${d}" < /tmp/files > /tmp/candidates 2>/dev/null
: > /tmp/pem-hits
while IFS= read -r f; do
  if grep -qaE -e "$pem" "$f" 2>/dev/null; then echo "$f" >> /tmp/pem-hits; fi
done < /tmp/candidates
while IFS= read -r f; do echo "PEM: $f"; hits=$((hits+1)); done < /tmp/pem-hits
xargs -0 -n 200 sha256sum < /tmp/files > /tmp/sums 2>/dev/null
grep -E "^($KEY_SHA256|$KEY_DER_SHA256) " /tmp/sums > /tmp/key-hits
while read -r sum f; do echo "KEY BYTES: $f"; hits=$((hits+1)); done < /tmp/key-hits
env > /tmp/env
if grep -qaE -e "${d}BEGIN [A-Z0-9 ]*PRIVATE KEY${d}" /tmp/env; then echo "PEM in the environment"; hits=$((hits+1)); fi
hashed=$(wc -l < /tmp/sums)
echo "scanned=$scanned hashed=$hashed unreadable=$unreadable hits=$hits" | tee /out/scan.txt
test "$hits" -eq 0
'''
env = { KEY_SHA256 = "@KEY@", KEY_DER_SHA256 = "@DER@" }
"#;

/// (sha256 of the PEM file, sha256 of the DER inside it), as hex.
fn key_hashes(pem_file: &Path) -> (String, String) {
    let pem = std::fs::read_to_string(pem_file).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    (
        airlock_attest::Sha256Digest::of(pem.as_bytes()).hex(),
        airlock_attest::Sha256Digest::of(&der).hex(),
    )
}

fn scan_job(root: &Path, name: &str, key: &Path) -> std::path::PathBuf {
    let (sha, der) = key_hashes(key);
    let steps = SCAN.replace("@KEY@", &sha).replace("@DER@", &der);
    job_dir(root, name, &steps, "\"scan.txt\"")
}

fn generate_key(dir: &Path, name: &str) {
    let mut c = airlock();
    c.args(["keys", "generate", "--name", name, "--out"])
        .arg(dir);
    assert!(run(c).status.success());
}

fn count(report: &str, what: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|f| f.strip_prefix(what)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn the_signing_key_is_not_reachable_from_the_sandbox() {
    let home = scratch();
    // The key this very build is signed with.
    generate_key(&home.path().join("keys"), "local-provenance");
    let key = home.path().join("keys/local-provenance.key");
    let job = scan_job(home.path(), "keyscan", &key);
    let out = home.path().join("out");
    let o = airlock_run(&job, home.path(), &out);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "the scan found key material: {t}");
    let report = std::fs::read_to_string(out.join("scan.txt")).unwrap();
    assert!(report.contains("hits=0"), "{report}");
    // The scan covered the whole image (thousands of files), not an empty directory.
    assert!(count(&report, "scanned") > 5000, "{report}");
    // Every readable file was hashed (the few unreadable ones are root's, e.g. /root).
    assert_eq!(
        count(&report, "hashed") + count(&report, "unreadable"),
        count(&report, "scanned"),
        "{report}"
    );
    // And the build it ran in was signed with that key, outside the sandbox.
    let verify = {
        let mut c = airlock();
        c.arg("verify")
            .arg(out.join("scan.txt"))
            .arg("--provenance")
            .arg(out.join("keyscan.intoto.jsonl"))
            .arg("--key")
            .arg(home.path().join("keys/local-provenance.pub"));
        run(c)
    };
    assert_eq!(verify.status.code(), Some(0));
}

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn positive_control_the_scan_finds_a_key_planted_in_work() {
    let home = scratch();
    let decoys = home.path().join("decoys");
    generate_key(&decoys, "decoy");
    let decoy = decoys.join("decoy.key");
    let job = scan_job(home.path(), "plantscan", &decoy);
    // Plant the decoy in the source tree, which the sandbox sees as /work.
    let planted = job.parent().unwrap().join("decoy.key");
    std::fs::copy(&decoy, &planted).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = airlock_run(&job, home.path(), &home.path().join("out"));
    let t = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the scan missed a planted key: {t}"
    );
    assert!(t.contains("PEM: /work/decoy.key"), "{t}");
    assert!(t.contains("KEY BYTES: /work/decoy.key"), "{t}");
    assert!(
        t.contains("hits=2"),
        "exactly the planted copy, found both ways: {t}"
    );
}
