# Shared by bench/deps.sh and bench/caches.sh (sourced, after `cd` to the repository):
# the release airlock binary, the toolchains image, the fixtures and their loopback mirror
# (flags in `mirror`), a copy of examples/deps-rust in "$src", and in "$deps" the vendored
# crates and config.toml the runner lays out at /deps, for the host builds (B).
# Sets: repo airlock work src deps digest mirror fixtures; exports AIRLOCK_HOME.
repo=$PWD
airlock=${AIRLOCK_BIN:-$repo/target/release/airlock}
[[ -x "$airlock" ]] || cargo build --release --locked -p airlock --bin airlock >&2
examples/toolchains-image/build.sh >&2
fixtures=$(scripts/fetch-deps-fixtures.sh)

work=${BENCH_WORK:?}
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
export AIRLOCK_HOME="$work/home"

# The loopback mirror.
python3 scripts/serve-deps-mirror.py "$fixtures" >"$work/mirror.flags" 2>"$work/mirror.log" &
mirror_pid=$!
trap 'kill $mirror_pid 2>/dev/null || true' EXIT
until [[ -s "$work/mirror.flags" ]]; do sleep 0.1; done
read -r -a mirror <"$work/mirror.flags"

src="$work/src"
cp -r examples/deps-rust "$src"
rm -rf "$src/target"
digest=$(cat examples/toolchains-image/oci/MANIFEST_DIGEST)

# B's inputs: the same vendored crates and config the runner lays out, built here from the
# fixtures (unpacked .crate files with the lockfile's checksum).
deps="$work/deps"
python3 - "$fixtures/cargo" "$deps/cargo" <<'PY'
import hashlib, json, os, sys, tarfile
src, dest = sys.argv[1:3]
vendor = os.path.join(dest, "vendor")
os.makedirs(vendor)
for name in sorted(os.listdir(src)):
    path = os.path.join(src, name)
    with tarfile.open(path) as t:
        t.extractall(vendor)
    top = name[: -len(".crate")]
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with open(os.path.join(vendor, top, ".cargo-checksum.json"), "w") as f:
        json.dump({"files": {}, "package": digest}, f)
with open(os.path.join(dest, "config.toml"), "w") as f:
    f.write('[source.crates-io]\nreplace-with = "airlock-vendored"\n\n'
            '[source.airlock-vendored]\ndirectory = "/deps/cargo/vendor"\n\n[net]\noffline = true\n')
PY

# write_job NAME PROFILE [EXTRA]: "$src/airlock.toml", the example with one build step (the
# binary copied to /out), EXTRA (TOML tables) after its [[deps]]; sets `job`, the command.
write_job() {
    cat >"$src/airlock.toml" <<TOML
[job]
name = "$1"
profile = "$2"
timeout = "20m"
[source]
path = "."
[image]
ref = "oci-layout:$repo/examples/toolchains-image/oci@$digest"
[[deps]]
ecosystem = "cargo"
lockfile = "Cargo.lock"
${3:-}
[[steps]]
run = "cargo build --release --offline --locked && cp target/release/deps-rust /out/"
[outputs]
paths = ["deps-rust"]
[resources]
memory = "3GiB"
pids = 1024
tmp = "1GiB"
TOML
    job=(env RUST_LOG=warn "$airlock" run "$src/airlock.toml" --quiet --out "$work/out" "${mirror[@]}")
}

# host_build_script FILE WORK SETUP: a script that builds WORK on the host in the image's
# rootfs (chroot, the same mounts as the sandbox's /work and /deps), after SETUP (shell run
# in /work inside the chroot, e.g. `rm -rf target`).
host_build_script() {
    cat >"$1" <<SH
#!/bin/sh
set -e
mount --bind "$2" "$rootfs/work"
mount --bind "$deps" "$rootfs/deps"
mount --rbind /dev "$rootfs/dev"
mount -t proc proc "$rootfs/proc"
mount -t tmpfs tmpfs "$rootfs/tmp"
exec chroot "$rootfs" /bin/sh -c 'cd /work && $3 && CARGO_HOME=/deps/cargo HOME=/tmp cargo build --release --offline --locked --quiet'
SH
    chmod +x "$1"
}
