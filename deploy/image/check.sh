#!/usr/bin/env bash
# Builds airlock's own images with airlock (deploy/image/build.sh) and checks them:
#   1. both layouts verify against the job's signed provenance (airlock verify, and
#      securesystemslib on the envelope with each manifest as the artifact);
#   2. the images run: as the `[image]` of airlock jobs, the runner image's airlock and git
#      answer, and the controller image's `controller install-keys` (its init step, no shell)
#      copies a key at mode 0600;
#   3. `airlock push` sends the runner image to the loopback docker-registry
#      ($AIRLOCK_TEST_REGISTRY) with its provenance as a referrer, and skopeo reads back the
#      manifest with the digest the provenance names.
#
# Usage: deploy/image/check.sh   (scripts/test.sh runs it; needs root and the test registry)
# AIRLOCK_BIN: the airlock binary (default target/debug/airlock, built if missing).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
work="${AIRLOCK_IMAGE_WORK:-/var/tmp/airlock-images}"
mkdir -p "$work"
airlock="${AIRLOCK_BIN:-$repo/target/debug/airlock}"
[[ -x "$airlock" ]] || cargo build --locked -p airlock --bin airlock
: "${AIRLOCK_TEST_REGISTRY:?run eval \"\$(scripts/registry.sh)\" first}"
step() { printf '\n== %s\n' "$*" >&2; }

AIRLOCK_BIN="$airlock" deploy/image/build.sh --out "$work/out" >"$work/check-build.log" 2>&1 || {
    tail -40 "$work/check-build.log" >&2
    exit 1
}
out="$work/out"
prov="$out/airlock-images.intoto.jsonl"
home="${AIRLOCK_HOME:-/var/lib/airlock}"
key="$home/keys/local-provenance.pub"

step "1. provenance: airlock verify and securesystemslib"
for image in airlock-controller airlock-runner; do
    "$airlock" verify "$out/$image" --provenance "$prov" --key "$key" | tail -1
    digest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$out/$image/index.json")"
    "${AIRLOCK_VENV_PYTHON:-.venv/bin/python}" tests/interop/verify_dsse.py "$prov" "$key" \
        --artifact "$out/$image/blobs/sha256/$digest" >/dev/null
    echo "securesystemslib: $image sha256:$digest is a subject of the signed statement"
done

step "2. the images run (as airlock jobs' images)"
jobs="$work/check-jobs"
rm -rf "$jobs"
mkdir -p "$jobs/runner" "$jobs/controller/keys"
chmod -R 755 "$jobs"
cat >"$jobs/runner/airlock.toml" <<TOML
[job]
name = "runner-image"
profile = "trusted"
[source]
path = "."
[image]
ref = "oci-layout:$out/airlock-runner"
[[steps]]
argv = ["/usr/local/bin/airlock", "--version"]
[[steps]]
argv = ["/usr/bin/git", "--version"]
[[steps]]
name = "git-writes"
argv = ["/usr/bin/git", "init", "--quiet", "--bare", "/out/repo.git"]
[outputs]
paths = ["repo.git/HEAD"]
TOML
"$airlock" run "$jobs/runner/airlock.toml" --out "$jobs/runner/out" >"$jobs/runner.log" 2>&1 || {
    cat "$jobs/runner.log" >&2
    exit 1
}
grep -q '^airlock ' "$jobs/runner.log" && grep -q '^git version ' "$jobs/runner.log"
echo "runner image: $(grep '^airlock ' "$jobs/runner.log"), $(grep '^git version ' "$jobs/runner.log")"

printf -- '-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----\n' >"$jobs/controller/keys/release.key"
chmod 644 "$jobs/controller/keys/release.key"
cat >"$jobs/controller/airlock.toml" <<TOML
[job]
name = "controller-image"
profile = "trusted"
[source]
path = "."
[image]
ref = "oci-layout:$out/airlock-controller"
[[steps]]
argv = ["/usr/local/bin/airlock", "controller", "install-keys", "--from", "/work/keys", "--to", "/out"]
[outputs]
paths = ["release.key"]
TOML
"$airlock" run "$jobs/controller/airlock.toml" --out "$jobs/controller/out" >"$jobs/controller.log" 2>&1 || {
    cat "$jobs/controller.log" >&2
    exit 1
}
grep -q 'installed /out/release.key (0600)' "$jobs/controller.log"
cmp "$jobs/controller/keys/release.key" "$jobs/controller/out/release.key"
echo "controller image: install-keys copied a key at 0600 without a shell"

step "3. airlock push to $AIRLOCK_TEST_REGISTRY, provenance attached; skopeo reads it back"
ref="$AIRLOCK_TEST_REGISTRY/airlock/runner:check"
pushed="$("$airlock" push "$out/airlock-runner" "$ref" --provenance "$prov" --key "$key" 2>/dev/null)"
echo "$pushed"
attached="$(sed -n 's/^attached provenance .*@//p' <<<"$pushed")"
[[ "$attached" == sha256:* ]] || { echo "airlock push named no attached provenance" >&2; exit 1; }
want="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$out/airlock-runner/index.json")"
got="sha256:$(skopeo inspect --raw --tls-verify=false "docker://$ref" | sha256sum | cut -d' ' -f1)"
[[ "$got" == "$want" ]] || { echo "the registry serves $got, the provenance names $want" >&2; exit 1; }
skopeo inspect --raw --tls-verify=false "docker://$AIRLOCK_TEST_REGISTRY/airlock/runner:sha256-${want#sha256:}" |
    python3 -c '
import json, sys
# The registry keeps earlier runs referrers of the same (reproducible) image: the one this
# run attached must be among them, as a DSSE envelope of SLSA provenance.
index = json.load(sys.stdin)
mine = [m for m in index["manifests"] if m["digest"] == sys.argv[1]]
assert len(mine) == 1, (sys.argv[1], index)
assert mine[0]["artifactType"] == "application/vnd.dsse.envelope.v1+json", mine[0]
assert mine[0]["annotations"]["in-toto.io/predicate-type"] == "https://slsa.dev/provenance/v1", mine[0]
print("referrer:", mine[0]["artifactType"], mine[0]["digest"])
' "$attached"
echo "pushed $ref with the digest its provenance names: $want"
