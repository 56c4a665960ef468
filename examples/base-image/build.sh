#!/usr/bin/env bash
# Build the example base image (Debian bookworm minbase + gcc + libc6-dev) as an OCI image
# layout at examples/base-image/oci/, from Debian packages with mmdebstrap.
#
# Usage: examples/base-image/build.sh [--force]
#
#   --force   rebuild even if a verified layout already exists
#
# Output:
#   oci/oci-layout, oci/index.json, oci/blobs/sha256/<hex>  the image layout
#   oci/MANIFEST_DIGEST                                     "sha256:<hex>" of the manifest
# examples/hello/airlock.toml names it as `oci-layout:../base-image/oci` (no digest): each
# `airlock run` pins it to this manifest and records that in the provenance.
#
# The image has one uncompressed layer (the mmdebstrap rootfs tarball), an image config
# and a manifest, all written as deterministic JSON. SOURCE_DATE_EPOCH is fixed, so the
# same Debian package set gives the same digest; package updates in the archive change it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../debian-image.sh" --name "base image" --dir "$here" --help-from "${BASH_SOURCE[0]}" \
    --include "gcc,libc6-dev" "$@"
