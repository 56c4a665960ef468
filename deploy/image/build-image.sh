#!/usr/bin/env bash
# The build image of airlock's own images: Debian bookworm minbase with gcc, pkg-config,
# libseccomp-dev, git and ca-certificates, plus this checkout's pinned Rust toolchain (the
# one `rustc --print sysroot` names here: rustc, cargo and the x86_64 standard library, no
# docs or extra tools) under /usr/local, as an OCI image layout at DIR/oci/.
#
# Usage: deploy/image/build-image.sh DIR [--force]
#
# deploy/image/build.sh calls it with DIR = <work>/build-image; the job file names the
# layout as `oci-layout:../../../build-image/oci` (relative to the exported source).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${1:?usage: deploy/image/build-image.sh DIR [--force]}"
shift
mkdir -p "$dir"
sysroot="$(cd "$repo" && rustc --print sysroot)"
[[ -x "$sysroot/bin/rustc" && -x "$sysroot/bin/cargo" ]] || {
    echo "build-image.sh: no rustc/cargo in $sysroot" >&2
    exit 3
}
# Only what compiling needs; `cp -a` keeps the toolchain's own layout, so rustc finds its
# sysroot as /usr/local.
hook="set -e; s='$sysroot'; d=\"\$1/usr/local\"; mkdir -p \"\$d/bin\" \"\$d/lib/rustlib/x86_64-unknown-linux-gnu\";"
hook+=" cp -a \"\$s/bin/rustc\" \"\$s/bin/cargo\" \"\$s/bin/rustdoc\" \"\$d/bin/\";"
hook+=" cp -a \"\$s\"/lib/*.so* \"\$d/lib/\";"
hook+=" cp -a \"\$s/lib/rustlib/x86_64-unknown-linux-gnu/lib\" \"\$s/lib/rustlib/x86_64-unknown-linux-gnu/bin\" \"\$d/lib/rustlib/x86_64-unknown-linux-gnu/\""
exec "$repo/examples/debian-image.sh" --name "airlock build image (Debian + Rust $(rustc --version | cut -d' ' -f2))" \
    --dir "$dir" --help-from "${BASH_SOURCE[0]}" \
    --include "gcc,libc6-dev,pkg-config,libseccomp-dev,git,ca-certificates" --hook "$hook" "$@"
