#!/usr/bin/env bash
# The README's first command: build airlock and run examples/hello end to end on a
# fresh Debian machine (as root): install packages, build, make the base image (first
# use only), build hello in the sandbox, run it, and verify its signed provenance.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "system packages"
scripts/install-deps.sh

step "building airlock (first build: several minutes on 2 cores)"
cargo build --locked -p airlock
airlock="$PWD/target/debug/airlock"

step "example base image (Debian bookworm + gcc, as an OCI layout pinned by digest)"
examples/base-image/build.sh

step "airlock run examples/hello/airlock.toml --out out/hello"
"$airlock" run examples/hello/airlock.toml --out out/hello

step "running the binary that was built in the sandbox"
out/hello/hello

step "verifying the artifact against its signed provenance"
home="${AIRLOCK_HOME:-}"
if [ -z "$home" ]; then
    if [ "$(id -u)" -eq 0 ]; then home=/var/lib/airlock; else home="${XDG_DATA_HOME:-$HOME/.local/share}/airlock"; fi
fi
"$airlock" verify out/hello/hello --provenance out/hello/hello.intoto.jsonl \
    --key "$home/keys/local-provenance.pub"

step "done: outputs and provenance are in out/hello/"
