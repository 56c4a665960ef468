#!/usr/bin/env bash
# Builds airlock's controller and runner images with airlock itself (deploy/image/airlock.toml)
# and prints the digests that deploy/kubernetes pins.
#
# Usage: deploy/image/build.sh [--out DIR] [--pin]
#
#   --pin   write the two manifest digests into deploy/kubernetes/kustomization.yaml (a release
#           step: commit the change with the commit the images were built from in the message)
#
#   1. exports HEAD's tracked files (`git archive`) to WORK/src: the build's source;
#   2. builds the build image (deploy/image/build-image.sh) at WORK/build-image, once;
#   3. fetches Cargo.lock's crates on this host (`cargo fetch --locked`) and serves them as a
#      cargo mirror on loopback; the runner checks each against the lockfile's checksum;
#   4. `airlock run WORK/src/deploy/image/airlock.toml --out DIR` (default WORK/out): a release
#      build of `airlock` in the sandbox (no network), then two image outputs:
#      DIR/airlock-controller/ and DIR/airlock-runner/ (OCI layouts) with
#      DIR/airlock-images.intoto.jsonl, their signed provenance.
#
# WORK is $AIRLOCK_IMAGE_WORK (default /var/tmp/airlock-images). Needs root (the build image
# and the sandbox); the first run takes a while (a release build on this machine's cores).
# Push with `airlock push DIR/airlock-runner REGISTRY/REPO:TAG` (provenance attached) or
# `skopeo copy oci:DIR/airlock-runner docker://REGISTRY/REPO:TAG`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${AIRLOCK_IMAGE_WORK:-/var/tmp/airlock-images}"
out="" pin=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --pin) pin=1; shift ;;
        -h | --help) sed -n '2,/^[^#]/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (expected --out DIR, --pin or --help)" >&2; exit 2 ;;
    esac
done
out="${out:-$work/out}"
step() { printf '\n==> %s\n' "$*" >&2; }
mkdir -p "$work"
chmod 755 "$work"

commit="$(git -C "$repo" rev-parse HEAD)"
step "[1/4] source: HEAD $commit (tracked files only)"
rm -rf "$work/src"
mkdir -p "$work/src"
git -C "$repo" archive --format=tar HEAD | tar -x -C "$work/src"

step "[2/4] build image (Debian bookworm + gcc + Rust $(cd "$repo" && rustc --version | cut -d' ' -f2))"
"$repo/deploy/image/build-image.sh" "$work/build-image"

step "[3/4] Cargo.lock's crates, served as a cargo mirror on loopback"
(cd "$repo" && cargo fetch --locked --quiet)
fixtures="$work/fixtures"
rm -rf "$fixtures"
mkdir -p "$fixtures/cargo"
cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
python3 - "$repo/Cargo.lock" "$cache" "$fixtures/cargo" <<'PY'
import glob, os, sys, tomllib
lock, cache, dest = sys.argv[1:4]
missing = []
for pkg in tomllib.load(open(lock, "rb"))["package"]:
    if "checksum" not in pkg:
        continue  # a workspace member
    name = f"{pkg['name']}-{pkg['version']}.crate"
    found = glob.glob(os.path.join(cache, "*", name))
    if not found:
        missing.append(name)
        continue
    os.symlink(found[0], os.path.join(dest, name))
if missing:
    sys.exit("not in the cargo cache after `cargo fetch`: " + ", ".join(missing))
PY
rm -f "$work/mirror.flags"
python3 "$repo/scripts/serve-deps-mirror.py" "$fixtures" >"$work/mirror.flags" 2>"$work/mirror.log" &
mirror_pid=$!
trap 'kill $mirror_pid 2>/dev/null || true' EXIT
until [[ -s "$work/mirror.flags" ]]; do
    kill -0 $mirror_pid 2>/dev/null || { cat "$work/mirror.log" >&2; exit 3; }
    sleep 0.1
done
read -r -a mirror <"$work/mirror.flags"

step "[4/4] airlock run deploy/image/airlock.toml --out $out"
if [[ -n "${AIRLOCK_BIN:-}" ]]; then
    airlock="$AIRLOCK_BIN"
else
    (cd "$repo" && cargo build --release --locked -p airlock --bin airlock)
    airlock="$repo/target/release/airlock"
fi
rm -rf "$out"
"$airlock" run "$work/src/deploy/image/airlock.toml" --out "$out" \
    --allow-source-dir "$work/src" "${mirror[@]}"

step "images built from $commit"
digest_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$out/$1/index.json"; }
for image in airlock-controller airlock-runner; do
    printf '%s@%s\n' "$image" "$(digest_of "$image")"
done
if [[ $pin -eq 1 ]]; then
    python3 - "$repo/deploy/kubernetes/kustomization.yaml" "$(digest_of airlock-controller)" \
        "$(digest_of airlock-runner)" "$commit" <<'PY'
import re, sys
path, controller, runner, commit = sys.argv[1:5]
text = open(path).read()
for name, digest in (("controller", controller), ("runner", runner)):
    text, n = re.subn(
        r"(- name: registry\.invalid/airlock/%s\n    digest: )sha256:[0-9a-f]{64}" % name,
        r"\g<1>" + digest, text)
    if n != 1:
        sys.exit(f"{path}: no images entry for registry.invalid/airlock/{name}")
text = re.sub(r"# Built from commit [0-9a-f]{40}\.", f"# Built from commit {commit}.", text)
open(path, "w").write(text)
print(f"pinned {path} to the images built from {commit}")
PY
fi
