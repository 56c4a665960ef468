#!/usr/bin/env bash
# Runtime trace benchmark (BENCHMARKS.md, "Runtime trace"): a release build of
# examples/deps-rust (19 crates, a real rustc/cargo compile, thousands of opens and execs) in
# airlock with its steps traced (seccomp user notification of every exec, open and network
# call) against the same job untraced, in turn, same binary, same caches.
#
#   A: `airlock run --profiles-dir P_ON`  (trusted with [trace] enabled = true)
#   B: `airlock run --profiles-dir P_OFF` (the built-in profiles copied, no [trace])
#
# Usage: bench/trace.sh [RUNS] (default 3 pairs). Needs root, the toolchains image and the
# fixtures (examples/toolchains-image/build.sh, scripts/fetch-deps-fixtures.sh).
# AIRLOCK_BIN picks the binary (default target/release/airlock).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
BENCH_WORK=/var/tmp/airlock-bench-trace
. bench/deps-rust-common.sh

write_job deps-rust-trace-bench trusted ''
on="$work/profiles-on"
off="$work/profiles-off"
cp -r sandbox-profiles "$on"
cp -r sandbox-profiles "$off"
printf '\n[trace]\nenabled = true\n' >>"$on/trusted.toml"
traced=("${job[@]}" --profiles-dir "$on")
plain=("${job[@]}" --profiles-dir "$off")

# Warm the image and the crates once; show what one traced build observed.
"${traced[@]}" 2>&1 | grep -E "trace:" >&2 || true

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r), $("$airlock" --version)"
echo "## traced (A) vs untraced (B)"
farm-bench -n "$runs" --warmup 1 --timeout 3000 --vs "${plain[*]}" -- "${traced[@]}"
