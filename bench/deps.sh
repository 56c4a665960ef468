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
BENCH_WORK=/var/tmp/airlock-bench-deps
. bench/deps-rust-common.sh

write_job deps-rust-bench untrusted-pr

# Warm the caches once (image unpacked, crates cached) and keep the rootfs for B.
"${job[@]}" >&2
rootfs=$(ls -d "$AIRLOCK_HOME"/runner/images/rootfs/* | head -n1)

host_work="$work/host-work"
cp -r "$src" "$host_work"
host_build_script "$work/host-build.sh" "$host_work" "rm -rf target"
host=(unshare --mount --propagation private "$work/host-build.sh")
"${host[@]}" >&2

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r)"
echo "## warm dependency cache (A) vs host build (B)"
farm-bench -n "$runs" --warmup 0 --timeout 3000 --vs "${host[*]}" -- "${job[@]}"
echo "## cold dependency cache (A) vs host build (B)"
farm-bench -n "$runs" --warmup 0 --timeout 3000 --vs "${host[*]}" -- \
    sh -c "rm -rf '$AIRLOCK_HOME/runner/cache' && exec ${job[*]}"
