#!/usr/bin/env bash
# Downloads every dependency file that the example projects' lockfiles pin, with the
# tools' own default registries, and checks each against the lockfile's hash:
#
#   examples/deps-rust/Cargo.lock            -> DIR/cargo/<name>-<version>.crate
#       (`cargo fetch`, then copied from $CARGO_HOME/registry/cache/*/; sha256 = `checksum`)
#   examples/deps-node/package-lock.json     -> DIR/npm/<name, "/" as "-">-<version>.tgz
#       (`npm pack NAME@VERSION`; sha512 = `integrity`; @scope/pkg -> @scope-pkg-1.0.0.tgz)
#   examples/deps-python/requirements.txt,
#   examples/deps-python/build-requirements.txt -> DIR/pypi/<wheel file>
#       (`pip download --no-deps --only-binary=:all:`; sha256 among the `--hash=sha256:`s)
#
# Idempotent: a file already in DIR that matches its hash is kept and not fetched again,
# so a second run needs no network. A hash mismatch fails naming the package.
# Progress goes to stderr; the last line of stdout is DIR.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/fetch-deps-fixtures.sh [--help] [DIR]

Fetches every dependency file pinned by examples/deps-rust/Cargo.lock,
examples/deps-node/package-lock.json and examples/deps-python/{,build-}requirements.txt
into DIR (default: <repo>/target/deps-fixtures), verified against the lockfiles' hashes:

  DIR/cargo/<name>-<version>.crate   sha256 = Cargo.lock `checksum`
  DIR/npm/<name>-<version>.tgz       sha512 = package-lock.json `integrity`
                                     (a scoped name's "/" becomes "-": @scope-pkg-1.0.0.tgz)
  DIR/pypi/<wheel>.whl               sha256 among the requirement's --hash=sha256: values

Needs cargo, npm (and node), pip (python3 -m pip; PYTHON=... to choose the interpreter),
sha256sum. Files already present and matching are skipped. Exits non-zero, naming the
package, when a file does not match its lockfile hash.
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -*) echo "fetch-deps-fixtures: unknown option $1 (see --help)" >&2; exit 2 ;;
esac
if [[ $# -gt 1 ]]; then
  echo "fetch-deps-fixtures: at most one argument, DIR (see --help)" >&2
  exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${repo_root}/target/deps-fixtures}"
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"
python="${PYTHON:-python3}"

rust_dir="${repo_root}/examples/deps-rust"
node_dir="${repo_root}/examples/deps-node"
py_dir="${repo_root}/examples/deps-python"

log() { printf 'fetch-deps-fixtures: %s\n' "$*" >&2; }
die() { printf 'fetch-deps-fixtures: error: %s\n' "$*" >&2; exit 1; }

for tool in cargo npm node sha256sum; do
  command -v "${tool}" >/dev/null || die "${tool} not found on PATH"
done
"${python}" -m pip --version >/dev/null 2>&1 || die "'${python} -m pip' does not work (set PYTHON=...)"

tmp="$(mktemp -d "${out}/.tmp.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
sha512_b64_of() {
  node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$1"
}

# ---------------------------------------------------------------------------- cargo
# "name version checksum" for every registry package of the lockfile; a package with a
# source but no checksum (git) cannot be verified and is an error.
cargo_packages() {
  awk '
    function flush() {
      if (name != "" && source != "") {
        if (source !~ /^registry\+/ || checksum == "") { printf "BAD %s %s %s\n", name, version, source; }
        else { printf "%s %s %s\n", name, version, checksum; }
      }
      name = ""; version = ""; source = ""; checksum = "";
    }
    /^\[\[package\]\]/ { flush(); next }
    /^\[/ { flush(); next }
    /^name = /     { name = $3;     gsub(/"/, "", name) }
    /^version = /  { version = $3;  gsub(/"/, "", version) }
    /^source = /   { source = $3;   gsub(/"/, "", source) }
    /^checksum = / { checksum = $3; gsub(/"/, "", checksum) }
    END { flush() }
  ' "$1"
}

fetch_cargo() {
  local lock="${rust_dir}/Cargo.lock" dest="${out}/cargo"
  [[ -f "${lock}" ]] || die "${lock} is missing"
  mkdir -p "${dest}"
  local -a pkgs=() missing=()
  mapfile -t pkgs < <(cargo_packages "${lock}")
  [[ ${#pkgs[@]} -gt 0 ]] || die "Cargo.lock: no registry packages found in ${lock}"
  local line name version sum file
  for line in "${pkgs[@]}"; do
    read -r name version sum <<<"${line}"
    [[ "${name}" != BAD ]] || die "cargo: ${line#BAD } has no registry checksum in Cargo.lock; only registry packages can be fixtures"
    file="${dest}/${name}-${version}.crate"
    if [[ -f "${file}" && "$(sha256_of "${file}")" == "${sum}" ]]; then
      continue
    fi
    missing+=("${line}")
  done
  log "cargo: ${#pkgs[@]} packages in Cargo.lock, $(( ${#pkgs[@]} - ${#missing[@]} )) already present, ${#missing[@]} to fetch"
  [[ ${#missing[@]} -gt 0 ]] || return 0

  local cargo_home="${CARGO_HOME:-${HOME}/.cargo}"
  log "cargo: cargo fetch --locked --manifest-path examples/deps-rust/Cargo.toml"
  (cd "${repo_root}" && cargo fetch --locked --manifest-path "${rust_dir}/Cargo.toml") >&2 \
    || die "cargo fetch failed (on a checksum mismatch cargo names the crate above)"
  local found cached got
  for line in "${missing[@]}"; do
    read -r name version sum <<<"${line}"
    found=""
    got=""
    for cached in "${cargo_home}"/registry/cache/*/"${name}-${version}.crate"; do
      [[ -f "${cached}" ]] || continue
      got="$(sha256_of "${cached}")"
      if [[ "${got}" == "${sum}" ]]; then found="${cached}"; break; fi
    done
    if [[ -z "${found}" ]]; then
      if [[ -n "${got}" ]]; then
        die "cargo: HASH MISMATCH for ${name} ${version}: ${cached} has sha256 ${got}, Cargo.lock says ${sum}"
      fi
      die "cargo: ${name} ${version}: cargo fetch left no ${name}-${version}.crate under ${cargo_home}/registry/cache/"
    fi
    cp "${found}" "${tmp}/${name}-${version}.crate"
    mv -f "${tmp}/${name}-${version}.crate" "${dest}/${name}-${version}.crate"
    log "cargo: ${name}-${version}.crate ok (sha256 ${sum:0:16}...)"
  done
}

# ------------------------------------------------------------------------------ npm
# "name version integrity fixture-file" for every package of package-lock.json but the root.
npm_packages() {
  node - "$1" <<'JS'
const fs = require('fs');
const lock = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
if (!(lock.lockfileVersion >= 2) || typeof lock.packages !== 'object') {
  console.error(`fetch-deps-fixtures: error: ${process.argv[2]}: lockfileVersion ${lock.lockfileVersion}; need 2 or 3 with "packages"`);
  process.exit(1);
}
for (const [key, p] of Object.entries(lock.packages)) {
  if (key === '') continue;
  const name = p.name || key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
  if (p.link || !p.version || !p.integrity) {
    console.error(`fetch-deps-fixtures: error: npm: ${key} has no version and integrity (a link or a non-registry package?)`);
    process.exit(1);
  }
  const sha512 = p.integrity.split(/\s+/).find((h) => h.startsWith('sha512-'));
  if (!sha512) {
    console.error(`fetch-deps-fixtures: error: npm: ${name} ${p.version}: integrity has no sha512 (${p.integrity})`);
    process.exit(1);
  }
  console.log(`${name} ${p.version} ${sha512.slice('sha512-'.length)} ${name.replace('/', '-')}-${p.version}.tgz`);
}
JS
}

fetch_npm() {
  local lock="${node_dir}/package-lock.json" dest="${out}/npm"
  [[ -f "${lock}" ]] || die "${lock} is missing"
  mkdir -p "${dest}"
  local -a pkgs=() missing=()
  local listing
  listing="$(npm_packages "${lock}")" || die "npm: cannot read ${lock}"
  mapfile -t pkgs < <(printf '%s\n' "${listing}" | sort -u)
  local line name version want fixture specs=()
  for line in "${pkgs[@]}"; do
    read -r name version want fixture <<<"${line}"
    if [[ -f "${dest}/${fixture}" && "$(sha512_b64_of "${dest}/${fixture}")" == "${want}" ]]; then
      continue
    fi
    missing+=("${line}")
    specs+=("${name}@${version}")
  done
  log "npm: ${#pkgs[@]} packages in package-lock.json, $(( ${#pkgs[@]} - ${#missing[@]} )) already present, ${#missing[@]} to fetch"
  [[ ${#missing[@]} -gt 0 ]] || return 0

  mkdir -p "${tmp}/npm"
  log "npm: npm pack ${specs[*]}"
  # From an empty directory, so no project's .npmrc or package.json takes part.
  (cd "${tmp}/npm" && npm pack --ignore-scripts --json --pack-destination "${tmp}/npm" "${specs[@]}" >"${tmp}/npm-pack.json") \
    || die "npm pack failed"
  local packed got
  for line in "${missing[@]}"; do
    read -r name version want fixture <<<"${line}"
    # npm pack names a scoped package's tarball scope-name-version.tgz (no "@").
    packed="${name#@}"
    packed="${tmp}/npm/${packed//\//-}-${version}.tgz"
    [[ -f "${packed}" ]] || die "npm: ${name} ${version}: npm pack wrote no ${packed##*/}"
    got="$(sha512_b64_of "${packed}")"
    [[ "${got}" == "${want}" ]] \
      || die "npm: HASH MISMATCH for ${name} ${version}: sha512-${got}, package-lock.json says sha512-${want}"
    mv -f "${packed}" "${dest}/${fixture}"
    log "npm: ${fixture} ok (sha512 ${want:0:16}...)"
  done
}

# ----------------------------------------------------------------------------- pypi
# "name version hash,hash,..." for every requirement of a pip requirements file with
# `name==version` and `--hash=sha256:` options (backslash continuations joined).
pip_requirements() {
  sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$1" | awk -v file="$1" '
    { sub(/(^|[ \t])#.*/, "") }
    NF == 0 { next }
    {
      spec = $1; hashes = "";
      if (spec !~ /^[A-Za-z0-9][A-Za-z0-9._-]*==[^=;[:space:]]+$/) {
        printf "BAD %s: \"%s\" is not name==version\n", file, spec; next
      }
      for (i = 2; i <= NF; i++) {
        if ($i ~ /^--hash=sha256:[0-9a-f]+$/ && length($i) == 14 + 64) { h = $i; sub(/^--hash=sha256:/, "", h); hashes = hashes (hashes == "" ? "" : ",") h }
        else { printf "BAD %s: %s: unsupported option %s\n", file, spec, $i; next }
      }
      if (hashes == "") { printf "BAD %s: %s has no --hash=sha256:\n", file, spec; next }
      split(spec, nv, "==");
      printf "%s %s %s\n", nv[1], nv[2], hashes
    }
  '
}

fetch_pypi() {
  local dest="${out}/pypi" reqfile
  mkdir -p "${dest}"
  local -a reqs=() missing=()
  for reqfile in "${py_dir}/requirements.txt" "${py_dir}/build-requirements.txt"; do
    [[ -f "${reqfile}" ]] || die "${reqfile} is missing"
    local -a these=()
    mapfile -t these < <(pip_requirements "${reqfile}")
    [[ ${#these[@]} -gt 0 ]] || die "pypi: no requirements in ${reqfile}"
    reqs+=("${these[@]}")
  done
  # The sha256 of every file already in DIR/pypi.
  declare -A have=()
  local f line name version hashes h present
  for f in "${dest}"/*; do
    [[ -f "${f}" ]] || continue
    have["$(sha256_of "${f}")"]="${f##*/}"
  done
  for line in "${reqs[@]}"; do
    [[ "${line}" != BAD* ]] || die "pypi: ${line#BAD }"
    read -r name version hashes <<<"${line}"
    present=""
    for h in ${hashes//,/ }; do
      [[ -n "${have[${h}]:-}" ]] && present=1
    done
    [[ -n "${present}" ]] || missing+=("${line}")
  done
  log "pypi: ${#reqs[@]} requirements, $(( ${#reqs[@]} - ${#missing[@]} )) already present, ${#missing[@]} to fetch"
  [[ ${#missing[@]} -gt 0 ]] || return 0

  # One requirements file with the missing ones and their hashes: in hash-checking mode
  # pip picks, of a release's files, one whose hash is listed.
  local req="${tmp}/pypi-requirements.txt"
  : >"${req}"
  for line in "${missing[@]}"; do
    read -r name version hashes <<<"${line}"
    printf '%s==%s' "${name}" "${version}" >>"${req}"
    for h in ${hashes//,/ }; do printf ' --hash=sha256:%s' "${h}" >>"${req}"; done
    printf '\n' >>"${req}"
  done
  mkdir -p "${tmp}/pypi"
  log "pypi: pip download --no-deps --only-binary=:all: $(cut -d' ' -f1 "${req}" | tr '\n' ' ')"
  (cd "${tmp}" && "${python}" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --require-hashes -d "${tmp}/pypi" -r "${req}") >&2 || die "pip download failed (on a hash mismatch pip names the package above)"
  declare -A got=()
  for f in "${tmp}/pypi"/*; do
    [[ -f "${f}" ]] || continue
    got["$(sha256_of "${f}")"]="${f}"
  done
  local file matched
  for line in "${missing[@]}"; do
    read -r name version hashes <<<"${line}"
    matched=""
    for h in ${hashes//,/ }; do
      file="${got[${h}]:-}"
      [[ -n "${file}" ]] || continue
      matched=1
      mv -f "${file}" "${dest}/${file##*/}"
      unset "got[${h}]"
      log "pypi: ${file##*/} ok (sha256 ${h:0:16}...)"
    done
    [[ -n "${matched}" ]] \
      || die "pypi: HASH MISMATCH for ${name} ${version}: pip downloaded no file whose sha256 is one of ${hashes//,/ }"
  done
  for h in "${!got[@]}"; do
    die "pypi: HASH MISMATCH: ${got[${h}]##*/} (sha256 ${h}) matches no requirement's hash"
  done
}

fetch_cargo
fetch_npm
fetch_pypi

log "done: $(find "${out}/cargo" -name '*.crate' | wc -l) crates, $(find "${out}/npm" -name '*.tgz' | wc -l) npm tarballs, $(find "${out}/pypi" -type f | wc -l) wheels in ${out}"
echo "${out}"
