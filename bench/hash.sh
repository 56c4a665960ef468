#!/usr/bin/env bash
# Hashing benchmark (BENCHMARKS.md, "Hashing"):
#  1. single-file sha256 throughput of airlock's digest code vs `openssl dgst -sha256` on the
#     same 1 GiB file (page cache warm);
#  2. source-tree hashing of a tree with many small files: airlock's canonical tree digest
#     (pack_dir) and per-file hashing vs `find DIR -type f -exec sha256sum {} +`.
# Each figure is the median of 5 runs. Usage: bench/hash.sh [WORKDIR] (default /var/tmp/airlock-bench)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="${1:-/var/tmp/airlock-bench}"
mkdir -p "$work"

# A separate target directory: release build with the workspace's release profile.
CARGO_TARGET_DIR=target/bench cargo build --quiet --release -p airlock-runner --example hash_bench
bin=target/bench/release/examples/hash_bench

big="$work/1GiB.bin"
[[ -f "$big" && "$(stat -c %s "$big")" -eq 1073741824 ]] ||
    head -c 1073741824 /dev/urandom >"$big"
tree="$work/tree"
if [[ ! -f "$tree/.done" ]]; then
    rm -rf "$tree"
    # 20,000 files of 1-8 KiB in 200 directories (about 90 MiB), deterministic content.
    python3 - "$tree" <<'PY'
import os, sys, hashlib
root = sys.argv[1]
for d in range(200):
    p = os.path.join(root, f"d{d:03}")
    os.makedirs(p)
    for f in range(100):
        n = 1024 * (1 + (d * 100 + f) % 8)
        seed = hashlib.sha256(f"{d}/{f}".encode()).digest()
        with open(os.path.join(p, f"f{f:03}.c"), "wb") as fh:
            fh.write((seed * (n // 32 + 1))[:n])
PY
    touch "$tree/.done"
fi
cat "$big" >/dev/null
find "$tree" -type f -exec cat {} + >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_of() { # seconds of one run of "$@", output discarded
    local s e
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    echo "$e - $s" | bc -l
}
runs() { for _ in 1 2 3 4 5; do time_of "$@"; done | median; }

t_openssl=$(runs openssl dgst -sha256 "$big")
t_airlock=$(runs "$bin" file "$big")
t_find=$(runs find "$tree" -type f -exec sha256sum {} +)
t_pack=$(runs "$bin" tree "$tree")
t_files=$(runs "$bin" files "$tree")

mib=1024
printf '| what | median s | MiB/s | vs anchor |\n|---|---|---|---|\n'
printf '| `openssl dgst -sha256` 1 GiB | %.3f | %.0f | anchor |\n' "$t_openssl" "$(echo "$mib / $t_openssl" | bc -l)"
printf '| airlock `hash_reader` 1 GiB | %.3f | %.0f | %.1f%% of openssl throughput |\n' "$t_airlock" \
    "$(echo "$mib / $t_airlock" | bc -l)" "$(echo "100 * $t_openssl / $t_airlock" | bc -l)"
printf '| `find -type f -exec sha256sum {} +`, 20,000 files | %.3f | | anchor |\n' "$t_find"
printf '| airlock tree digest (`pack_dir`), 20,000 files | %.3f | | %.2fx the time of find+sha256sum |\n' "$t_pack" \
    "$(echo "$t_pack / $t_find" | bc -l)"
printf '| airlock per-file sha256, 20,000 files | %.3f | | %.2fx the time of find+sha256sum |\n' "$t_files" \
    "$(echo "$t_files / $t_find" | bc -l)"
grep -q sha_ni /proc/cpuinfo && echo "CPU has SHA-NI (sha2 0.11 detects and uses it at run time)" ||
    echo "CPU lacks SHA-NI (sha2 uses its portable code)"
