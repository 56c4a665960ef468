#!/usr/bin/env bash
# [[deps]] benchmark (BENCHMARKS.md, "Lockfile dependencies"): a release build of
# examples/deps-rust (19 crates) in airlock, with a warm and a cold dependency cache, each
# paired with the same build run directly on the host: the same compiler (the toolchains
# image's rustc 1.63 / cargo 1.65, by chroot into its unpacked root), the same vendored
# crates and config, no sandbox, no controller, no provenance.
#
#   A (warm): `airlock run` of a one-step job (`cargo build --release --offline --locked`),
#             crates and image already in the runner's caches.
#   A (cold): the same after removing the runner's blob cache: every crate is downloaded
#             from the loopback mirror, verified and unpacked again.
#   B:        chroot IMAGE_ROOTFS cargo build --release --offline --locked, fresh target/.
#
# Usage: bench/deps.sh [RUNS] (default 3 pairs each). Needs root, the toolchains image and
# the fixtures (examples/toolchains-image/build.sh, scripts/fetch-deps-fixtures.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
repo=$PWD
airlock=${AIRLOCK_BIN:-$repo/target/release/airlock}
[[ -x "$airlock" ]] || cargo build --release --locked -p airlock --bin airlock >&2
examples/toolchains-image/build.sh >&2
fixtures=$(scripts/fetch-deps-fixtures.sh)

work=/var/tmp/airlock-bench-deps
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
export AIRLOCK_HOME="$work/home"

# The loopback mirror.
python3 scripts/serve-deps-mirror.py "$fixtures" >"$work/mirror.flags" 2>"$work/mirror.log" &
mirror_pid=$!
trap 'kill $mirror_pid 2>/dev/null || true' EXIT
until [[ -s "$work/mirror.flags" ]]; do sleep 0.1; done
read -r -a mirror <"$work/mirror.flags"

# The job: the example with one build step.
src="$work/src"
cp -r examples/deps-rust "$src"
rm -rf "$src/target"
digest=$(cat examples/toolchains-image/oci/MANIFEST_DIGEST)
cat >"$src/airlock.toml" <<TOML
[job]
name = "deps-rust-bench"
profile = "untrusted-pr"
timeout = "20m"
[source]
path = "."
[image]
ref = "oci-layout:$repo/examples/toolchains-image/oci@$digest"
[[deps]]
ecosystem = "cargo"
lockfile = "Cargo.lock"
[[steps]]
run = "cargo build --release --offline --locked && cp target/release/deps-rust /out/"
[outputs]
paths = ["deps-rust"]
[resources]
memory = "3GiB"
pids = 1024
tmp = "1GiB"
TOML
job=(env RUST_LOG=warn "$airlock" run "$src/airlock.toml" --quiet --out "$work/out" "${mirror[@]}")

# Warm the caches once (image unpacked, crates cached) and keep the rootfs for B.
"${job[@]}" >&2
rootfs=$(ls -d "$AIRLOCK_HOME"/runner/images/rootfs/* | head -n1)

# B's inputs: the same vendored crates and config the runner lays out, built here from the
# fixtures (unpacked .crate files with the lockfile's checksum).
deps="$work/deps"
python3 - "$fixtures/cargo" "$deps/cargo" <<'PY'
import hashlib, json, os, sys, tarfile
src, dest = sys.argv[1:3]
vendor = os.path.join(dest, "vendor")
os.makedirs(vendor)
for name in sorted(os.listdir(src)):
    path = os.path.join(src, name)
    with tarfile.open(path) as t:
        t.extractall(vendor)
    top = name[: -len(".crate")]
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with open(os.path.join(vendor, top, ".cargo-checksum.json"), "w") as f:
        json.dump({"files": {}, "package": digest}, f)
with open(os.path.join(dest, "config.toml"), "w") as f:
    f.write('[source.crates-io]\nreplace-with = "airlock-vendored"\n\n'
            '[source.airlock-vendored]\ndirectory = "/deps/cargo/vendor"\n\n[net]\noffline = true\n')
PY
host_work="$work/host-work"
cp -r "$src" "$host_work"
cat >"$work/host-build.sh" <<SH
#!/bin/sh
set -e
mount --bind "$host_work" "$rootfs/work"
mount --bind "$deps" "$rootfs/deps"
mount --rbind /dev "$rootfs/dev"
mount -t proc proc "$rootfs/proc"
mount -t tmpfs tmpfs "$rootfs/tmp"
exec chroot "$rootfs" /bin/sh -c 'cd /work && rm -rf target && CARGO_HOME=/deps/cargo HOME=/tmp cargo build --release --offline --locked --quiet'
SH
chmod +x "$work/host-build.sh"
host=(unshare --mount --propagation private "$work/host-build.sh")
"${host[@]}" >&2

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r)"
echo "## warm dependency cache (A) vs host build (B)"
farm-bench -n "$runs" --warmup 0 --timeout 3000 --vs "${host[*]}" -- "${job[@]}"
echo "## cold dependency cache (A) vs host build (B)"
farm-bench -n "$runs" --warmup 0 --timeout 3000 --vs "${host[*]}" -- \
    sh -c "rm -rf '$AIRLOCK_HOME/runner/cache' && exec ${job[*]}"
