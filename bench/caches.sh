#!/usr/bin/env bash
# [[caches]] benchmark (BENCHMARKS.md, "Build caches"): a release build of
# examples/deps-rust (19 crates) in airlock with its `target/` cached by Cargo.lock, cold
# and warm, each paired with the same build on the host (the toolchains image's rustc and
# cargo by chroot, the same vendored crates) with a fresh and with its own warm `target/`.
#
#   A (warm): `airlock run` of a trusted one-step job (`cargo build --release --offline
#             --locked`) whose `target/` cache is restored before the step and saved again
#             after it (both inside the measurement).
#   A (cold): the same after removing airlock's caches: `target/` starts empty.
#   B (warm): chroot IMAGE_ROOTFS cargo build ... in a tree whose target/ holds the last
#             build, after `touch src/main.rs` (the project's crate is rebuilt, as in A,
#             where restored files are older than the source).
#   B (cold): the same with `rm -rf target` first.
#
# Usage: bench/caches.sh [RUNS] (default 3 pairs each). Needs root, the toolchains image and
# the fixtures (examples/toolchains-image/build.sh, scripts/fetch-deps-fixtures.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
BENCH_WORK=/var/tmp/airlock-bench-caches
. bench/deps-rust-common.sh

write_job deps-rust-caches-bench trusted '[[caches]]
name = "target"
path = "/work/target"
key = ["Cargo.lock"]'

# Warm everything once (image, crates, and the first target/ cache); keep the rootfs for B.
"${job[@]}" >&2
rootfs=$(ls -d "$AIRLOCK_HOME"/runner/images/rootfs/* | head -n1)

host_work="$work/host-work"
cp -r "$src" "$host_work"
host_build_script "$work/host-warm.sh" "$host_work" "touch src/main.rs"
host_build_script "$work/host-cold.sh" "$host_work" "rm -rf target"
host_warm=(unshare --mount --propagation private "$work/host-warm.sh")
host_cold=(unshare --mount --propagation private "$work/host-cold.sh")
"${host_warm[@]}" >&2

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r)"
echo "## warm target/ cache (A) vs host build with its warm target/ (B)"
farm-bench -n "$runs" --warmup 0 --timeout 3000 --vs "${host_warm[*]}" -- "${job[@]}"
echo "## cold: no cache (A) vs host build with a fresh target/ (B)"
farm-bench -n "$runs" --warmup 0 --timeout 3000 --vs "${host_cold[*]}" -- \
    sh -c "rm -rf '$AIRLOCK_HOME/caches' && exec ${job[*]}"
