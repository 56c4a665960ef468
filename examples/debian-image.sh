#!/usr/bin/env bash
# The shared builder of the example images (examples/*/build.sh call it): Debian bookworm
# minbase plus the packages --include names, built with mmdebstrap as an OCI image layout
# at DIR/oci/ (one uncompressed layer, deterministic JSON config, manifest and index;
# SOURCE_DATE_EPOCH fixed, so the same package set gives the same digest), verified and
# reused when it is already there. Job files name it as `oci-layout:DIR` without a digest:
# `airlock run` / `airlock submit` pin it to the manifest its index.json names at submit time
# (recorded as `image.resolved_from`), so rebuilding never rewrites a tracked file.
set -euo pipefail

# Flags (from the wrapper): --name NAME --dir DIR --include PKGS [--hook SHELL], then the
# user's own arguments (--force, --help). --hook is an mmdebstrap --customize-hook ("$1" is
# the root): deploy/image/build.sh adds the host's Rust toolchain with it.
name="" here="" include="" help_from="$0" hook=""
force=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --dir) here="$2"; shift 2 ;;
        --include) include="$2"; shift 2 ;;
        --hook) hook="$2"; shift 2 ;;
        --help-from) help_from="$2"; shift 2 ;;
        --force) force=1; shift ;;
        -h | --help)
            # The wrapper's header comment is its help.
            sed -n '2,/^[^#]/p' "$help_from" | sed '$d' | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "$(basename "$help_from"): unknown argument '$1' (expected --force or --help)" >&2
            exit 2
            ;;
    esac
done
[[ -n "$name" && -n "$here" && -n "$include" ]] || {
    echo "debian-image.sh: --name, --dir and --include are required (call it from a build.sh)" >&2
    exit 2
}
out="$here/oci"
work="$here/work"
image_dir="$(basename "$here")"

suite="bookworm"
variant="minbase"
# Fixed for reproducibility (2024-01-01T00:00:00Z); deliberately not taken from the caller.
export SOURCE_DATE_EPOCH=1704067200
export LC_ALL=C.UTF-8

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
# layer is what the runner does anyway when it unpacks the image).
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

# ---- reuse ---------------------------------------------------------------------------------
if [[ $force -eq 0 && -f "$out/index.json" ]]; then
    step "verifying existing layout $out"
    if digest="$(verify_layout "$out")"; then
        echo "reusing $name $digest"
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
hooks=(--customize-hook='rm -f "$1/etc/hostname" "$1/etc/resolv.conf"')
[[ -n "$hook" ]] && hooks+=(--customize-hook="$hook")
mmdebstrap --variant="$variant" --include="$include" --mode=root --format=tar \
    "${hooks[@]}" "$suite" "$rootfs_tar" </dev/null
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

step "done in $(elapsed "$t_start")"
echo "built $name $digest"
