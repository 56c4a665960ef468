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
# and every examples/deps-*/airlock.toml that exists has its
# `ref = "oci-layout:../toolchains-image/oci@sha256:<hex>"` line re-pinned to the new digest.
#
# The image has one uncompressed layer (the mmdebstrap rootfs tarball), an image config
# and a manifest, all written as deterministic JSON. SOURCE_DATE_EPOCH is fixed, so the
# same Debian package set gives the same digest; package updates in the archive change it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/oci"
work="$here/work"
examples="$(cd "$here/.." && pwd)"

suite="bookworm"
variant="minbase"
# python3-setuptools and python3-wheel come with python3-pip anyway; listed so that
# `pip wheel --no-build-isolation` in the sandbox does not depend on that.
include="gcc,libc6-dev,cargo,rustc,nodejs,npm,python3,python3-pip,python3-venv,python3-setuptools,python3-wheel"
# Fixed for reproducibility (2024-01-01T00:00:00Z); deliberately not taken from the caller.
export SOURCE_DATE_EPOCH=1704067200
export LC_ALL=C.UTF-8

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h | --help)
            sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build.sh: unknown argument '$arg' (expected --force or --help)" >&2
            exit 2
            ;;
    esac
done

t_start=$SECONDS
step() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }
elapsed() { echo "$((SECONDS - $1))s"; }

mkdir -p "$work"
# One build at a time per checkout.
exec 9>"$work/.lock"
if ! flock -n 9; then
    step "another build.sh holds $work/.lock; waiting"
    flock 9
fi

# Print the manifest digest ("sha256:<hex>") of a layout whose index.json, manifest and
# config verify, or fail. Layer blobs are checked for presence and size only (hashing the
# ~1 GB layer is what the runner does anyway when it unpacks the image).
verify_layout() {
    python3 - "$1" <<'PY'
import hashlib, json, os, re, sys

root = sys.argv[1]
HEX = re.compile(r"^sha256:([0-9a-f]{64})$")

def blob(desc, check_hash=True):
    m = HEX.match(desc.get("digest", ""))
    if not m:
        sys.exit(f"bad digest {desc.get('digest')!r}")
    path = os.path.join(root, "blobs", "sha256", m.group(1))
    size = os.path.getsize(path)
    if size != desc.get("size"):
        sys.exit(f"{path}: size {size} != recorded {desc.get('size')}")
    if not check_hash:
        return None
    data = open(path, "rb").read()
    if hashlib.sha256(data).hexdigest() != m.group(1):
        sys.exit(f"{path}: sha256 mismatch")
    return data

with open(os.path.join(root, "oci-layout")) as f:
    if json.load(f).get("imageLayoutVersion") != "1.0.0":
        sys.exit("oci-layout: unexpected imageLayoutVersion")
with open(os.path.join(root, "index.json")) as f:
    index = json.load(f)
manifests = index.get("manifests", [])
if len(manifests) != 1:
    sys.exit("index.json: expected exactly one manifest")
desc = manifests[0]
manifest = json.loads(blob(desc))
blob(manifest["config"])
for layer in manifest["layers"]:
    blob(layer, check_hash=False)
recorded_path = os.path.join(root, "MANIFEST_DIGEST")
if os.path.exists(recorded_path):
    recorded = open(recorded_path).read().strip()
    if recorded != desc["digest"]:
        sys.exit(f"MANIFEST_DIGEST {recorded} != index.json {desc['digest']}")
print(desc["digest"])
PY
}

# Re-pin the `ref = "oci-layout:../toolchains-image/oci@sha256:..."` line of every
# examples/deps-*/airlock.toml to $1 ("sha256:<hex>") where it differs.
repin_deps() {
    local digest="$1" toml
    local tomls=()
    shopt -s nullglob
    tomls=("$examples"/deps-*/airlock.toml)
    shopt -u nullglob
    for toml in "${tomls[@]}"; do
        python3 - "$toml" "$digest" <<'PY'
import os, re, sys, tempfile

path, digest = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
pattern = re.compile(
    r'^(\s*ref\s*=\s*"oci-layout:[^"@]*toolchains-image/oci@)(sha256:[0-9a-f]{64})(")',
    re.MULTILINE,
)
matches = list(pattern.finditer(text))
if not matches:
    print(f"note: {path} has no `ref = \"oci-layout:../toolchains-image/oci@sha256:...\"` "
          "line; not re-pinned", file=sys.stderr)
    sys.exit(0)
olds = sorted({m.group(2) for m in matches if m.group(2) != digest})
if not olds:
    print(f"{path} already pins {digest}", file=sys.stderr)
    sys.exit(0)
new_text = pattern.sub(lambda m: m.group(1) + digest + m.group(3), text)
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".airlock.toml.")
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(new_text)
os.chmod(tmp, os.stat(path).st_mode & 0o7777)
os.replace(tmp, path)
print(f"re-pinned {path}:\n  " + "\n  ".join(olds) + f"\n  -> {digest}\n"
      "  (the pin no longer matched the image in examples/toolchains-image/oci: rebuilding "
      "from Debian packages picks up archive updates, which change the rootfs and so the "
      "digest)", file=sys.stderr)
PY
    done
}

# ---- reuse ---------------------------------------------------------------------------------
if [[ $force -eq 0 && -f "$out/index.json" ]]; then
    step "verifying existing layout $out"
    if digest="$(verify_layout "$out")"; then
        echo "reusing toolchains image $digest"
        repin_deps "$digest"
        exit 0
    fi
    step "existing layout does not verify; rebuilding"
fi

# ---- build ---------------------------------------------------------------------------------
if [[ $(id -u) -ne 0 ]]; then
    echo "build.sh: mmdebstrap --mode=root needs root; run as root" >&2
    exit 3
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
    step "installing mmdebstrap"
    apt-get install -y mmdebstrap || { apt-get update && apt-get install -y mmdebstrap; }
fi

tmp="$(mktemp -d "$work/build.XXXXXX")"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

layout="$tmp/oci"
mkdir -p "$layout/blobs/sha256"
rootfs_tar="$tmp/rootfs.tar"

t=$SECONDS
step "[1/4] mmdebstrap --variant=$variant --include=$include --mode=root $suite (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
# mmdebstrap copies the host's /etc/hostname and /etc/resolv.conf into the chroot; remove
# both so the image does not depend on the build machine (the runner supplies /etc/hostname,
# and the sandbox has no network, so no resolver configuration is needed).
mmdebstrap --variant="$variant" --include="$include" --mode=root --format=tar \
    --customize-hook='rm -f "$1/etc/hostname" "$1/etc/resolv.conf"' \
    "$suite" "$rootfs_tar" </dev/null
layer_size=$(stat -c %s "$rootfs_tar")
step "      rootfs tarball: $(human "$layer_size") in $(elapsed "$t")"

t=$SECONDS
step "[2/4] hashing layer"
layer_hex=$(sha256sum "$rootfs_tar" | cut -d' ' -f1)
mv "$rootfs_tar" "$layout/blobs/sha256/$layer_hex"
step "      layer sha256:$layer_hex ($(human "$layer_size")) in $(elapsed "$t")"

t=$SECONDS
step "[3/4] writing config, manifest, index.json"
digest="$(python3 - "$layout" "$layer_hex" "$layer_size" "$SOURCE_DATE_EPOCH" \
    "$(dpkg --print-architecture)" "mmdebstrap --variant=$variant --include=$include --mode=root $suite" <<'PY'
import datetime, hashlib, json, os, sys

layout, layer_hex, layer_size, epoch, arch, created_by = sys.argv[1:7]
created = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime(
    "%Y-%m-%dT%H:%M:%SZ")

def dump(obj):
    # Insertion order is the fixed key order; compact; no trailing newline.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()

def put(data):
    hexd = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", hexd)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + hexd

config = dump({
    "created": created,
    "architecture": arch,
    "os": "linux",
    "config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_hex]},
    "history": [{"created": created, "created_by": created_by}],
})
config_digest = put(config)

manifest = dump({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": config_digest,
        "size": len(config),
    },
    "layers": [{
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": "sha256:" + layer_hex,
        "size": int(layer_size),
    }],
})
manifest_digest = put(manifest)

index = dump({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest,
        "size": len(manifest),
        "platform": {"architecture": arch, "os": "linux"},
    }],
})
with open(os.path.join(layout, "index.json"), "wb") as f:
    f.write(index)
with open(os.path.join(layout, "oci-layout"), "wb") as f:
    f.write(dump({"imageLayoutVersion": "1.0.0"}))
with open(os.path.join(layout, "MANIFEST_DIGEST"), "w") as f:
    f.write(manifest_digest + "\n")
print(manifest_digest)
PY
)"
step "      manifest $digest in $(elapsed "$t")"

t=$SECONDS
step "[4/4] verifying and moving into place"
verify_layout "$layout" >/dev/null
old=""
if [[ -e "$out" ]]; then
    old="$tmp/previous-oci"
    mv "$out" "$old"
fi
mv "$layout" "$out"
step "      $out ($(du -sh "$out" | cut -f1)) in $(elapsed "$t")"

repin_deps "$digest"
step "done in $(elapsed "$t_start")"
echo "built toolchains image $digest"
