#!/usr/bin/env bash
# Build the example toolchains image (Debian bookworm minbase + gcc, cargo/rustc, nodejs/npm,
# python3/pip/venv) as an OCI image layout at examples/toolchains-image/oci/, from Debian
# packages with mmdebstrap.
#
# Usage: examples/toolchains-image/build.sh [--force]
#
#   --force   rebuild even if a verified layout already exists
#
# Output:
#   oci/oci-layout, oci/index.json, oci/blobs/sha256/<hex>  the image layout
#   oci/MANIFEST_DIGEST                                     "sha256:<hex>" of the manifest
# examples/deps-*/airlock.toml name it as `oci-layout:../toolchains-image/oci` (no digest):
# each `airlock run` pins it to this manifest at submit time.
#
# The image has one uncompressed layer (the mmdebstrap rootfs tarball), an image config
# and a manifest, all written as deterministic JSON. SOURCE_DATE_EPOCH is fixed, so the
# same Debian package set gives the same digest; package updates in the archive change it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# python3-setuptools and python3-wheel come with python3-pip anyway; listed so that
# `pip wheel --no-build-isolation` in the sandbox does not depend on that.
exec "$here/../debian-image.sh" --name "toolchains image" --dir "$here" \
    --help-from "${BASH_SOURCE[0]}" \
    --include "gcc,libc6-dev,cargo,rustc,nodejs,npm,python3,python3-pip,python3-venv,python3-setuptools,python3-wheel" \
    "$@"
