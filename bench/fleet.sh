#!/usr/bin/env bash
# Fleet benchmarks for BENCHMARKS.md (issue 5):
#   (a) submit -> signed provenance latency, p50/p99 over $JOBS trivial jobs on loopback:
#       with a lightweight runner client, and with a real `airlock runner` (sandbox);
#   (b) lease+complete throughput with lightweight runner clients, SQLite and PostgreSQL.
# Usage: bench/fleet.sh [JOBS] (default 200; throughput uses 10x JOBS jobs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs=${1:-200}

cargo build --release --locked -p airlock --bin airlock --example fleet_bench >&2
bench=target/release/examples/fleet_bench
airlock=$PWD/target/release/airlock
eval "$(scripts/postgres.sh)"
export AIRLOCK_TEST_POSTGRES_URL

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r)"
for backend in sqlite postgres; do
    for cycle in bare full; do
        "$bench" throughput --backend "$backend" --cycle "$cycle" --jobs $((jobs * 10)) --runners 8
    done
done
"$bench" latency --jobs "$jobs"

# A controller and a sandboxed runner as processes; a trivial job.
examples/base-image/build.sh >&2
work=$(mktemp -d /var/tmp/airlock-bench.XXXXXX)
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$airlock" controller init --dir "$work/ctl" --listen "127.0.0.1:$port" >/dev/null
RUST_LOG=warn "$airlock" controller --config "$work/ctl/controller.toml" 2>"$work/controller.log" &
layout=$PWD/examples/base-image/oci
RUST_LOG=warn "$airlock" runner --controller "http://127.0.0.1:$port" \
    --registration-secret-file "$work/ctl/runner.secret" --state-dir "$work/runner" \
    --allow-oci-layout "$layout" 2>"$work/runner.log" &
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.05; done
mkdir -p "$work/job"
cat >"$work/job/airlock.toml" <<TOML
[job]
name = "trivial"
profile = "trusted"
timeout = "1m"

[source]
path = "."

[image]
ref = "oci-layout:$layout@$(tr -d "[:space:]" <"$layout/MANIFEST_DIGEST")"

[[steps]]
run = "echo ok > /out/result.txt"

[outputs]
paths = ["result.txt"]
TOML
echo "input" >"$work/job/input.txt"
"$bench" latency --jobs "$jobs" --controller "http://127.0.0.1:$port" \
    --token-file "$work/ctl/admin.token" --job "$work/job/airlock.toml"
