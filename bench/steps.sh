#!/usr/bin/env bash
# Per-step cost of the sandbox on the runner's real path (`airlock run` of an N-step job
# minus a 1-step job, divided by N-1), side by side with `unshare -Urnpm --mount-proc -f
# /bin/true` and bubblewrap in the same run (issue 22). Needs root.
#
# Usage: bench/steps.sh [STEPS] [RUNS]      (defaults: 51 steps, 7 runs each)
# Writes the Markdown table to stdout and to target/bench/steps.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-51}"
runs="${2:-7}"

if [ "$(id -u)" != 0 ]; then echo "bench/steps.sh: run as root" >&2; exit 2; fi
if ! command -v bwrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi
scripts/install-deps.sh >/dev/null
examples/base-image/build.sh >/dev/null
cargo build --release --locked -p airlock --bin airlock >&2

scratch=/var/tmp/airlock-bench-steps
rm -rf "$scratch"
mkdir -p "$scratch"
chmod 755 /var/tmp "$scratch"
# The rootfs bwrap runs on: the one airlock's image cache unpacks for the first job.
home="$scratch/home"
AIRLOCK_HOME="$home" target/release/airlock run -q examples/hello/airlock.toml --out "$scratch/hello-out" >&2
rootfs=$(ls -d "$home"/runner/images/rootfs/*/ | head -n1)
chmod 755 "$home" "$home/runner" "$home/runner/images" "$home/runner/images/rootfs"

mkdir -p target/bench
python3 bench/steps.py --airlock "$PWD/target/release/airlock" \
    --image "$PWD/examples/base-image/oci" --rootfs "${rootfs%/}" --scratch "$scratch" \
    --steps "$steps" --runs "$runs" | tee target/bench/steps.md
rm -rf "$scratch"
