#!/usr/bin/env bash
# Container start + teardown of /bin/true: airlock's sandbox vs crun, runc, bubblewrap and the
# `unshare` floor on the same rootfs (median, p95 over RUNS runs), and the wall time of
# building examples/hello in the sandbox vs on the host. Needs root.
#
# Usage: bench/sandbox.sh [RUNS] [BUILDS]      (defaults: 100 runs, 10 builds)
# Writes the Markdown tables to stdout and to target/bench/sandbox.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-100}"
builds="${2:-10}"

if [ "$(id -u)" != 0 ]; then echo "bench/sandbox.sh: run as root" >&2; exit 2; fi

# The other runtimes, from Debian (only here, not in test.sh).
need=()
for pkg_bin in crun:crun runc:runc bubblewrap:bwrap; do
    command -v "${pkg_bin#*:}" >/dev/null || need+=("${pkg_bin%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/install-deps.sh >/dev/null
examples/base-image/build.sh >/dev/null

# Two invocations: with `--example`, cargo builds only the example, not the binary.
cargo build --release --locked -p airlock --bin airlock >&2
cargo build --release --locked -p airlock-runner --example sandbox_bench >&2
bin="$PWD/target/release"

# One rootfs, unpacked by airlock's own image cache (verified, with the mount points).
scratch=/var/tmp/airlock-bench
rm -rf "$scratch"
mkdir -p "$scratch"
chmod 755 /var/tmp "$scratch"
home="$scratch/home"
AIRLOCK_HOME="$home" "$bin/airlock" run -q examples/hello/airlock.toml --out "$scratch/hello-out" >&2
rootfs=$(ls -d "$home"/runner/images/rootfs/*/ | head -n1)
chmod 755 "$home" "$home/runner" "$home/runner/images" "$home/runner/images/rootfs"

mkdir -p target/bench
"$bin/examples/sandbox_bench" --airlock "$bin/airlock" --rootfs "${rootfs%/}" \
    --scratch "$scratch/run" --hello examples/hello --runs "$runs" --builds "$builds" |
    tee target/bench/sandbox.md
rm -rf "$scratch"
