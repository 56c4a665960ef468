#!/usr/bin/env bash
# Creates the Python virtualenv that the interop tests use to check airlock's
# attestations with independent third-party verifiers (securesystemslib for DSSE
# signatures, in-toto-attestation for Statement/provenance structure), and installs
# npm @sigstore/verify (Sigstore bundles) into .npm-verify/.
#
# Idempotent: a second run only checks that the pinned packages import and exits.
# Usage: scripts/setup-test-env.sh            (venv at ${AIRLOCK_VENV:-<repo>/.venv})
# Then:  AIRLOCK_VENV_PYTHON=<venv>/bin/python cargo test -p airlock-attest
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AIRLOCK_VENV:-${repo_root}/.venv}"
python="${PYTHON:-python3}"

# securesystemslib 1.x is the API verify_dsse.py is written against (SSlibKey.from_crypto,
# Envelope.from_dict); the [crypto] extra pulls in `cryptography` for ECDSA/Ed25519.
requirements=(
  "securesystemslib[crypto]>=1.0,<2"
  "in-toto-attestation>=0.9,<1"
  # PyJWT's PyJWKClient checks airlock's OIDC discovery, JWKS and build tokens (tests/interop/*jwt*.py).
  "PyJWT[crypto]>=2.8,<3"
  # selenium drives Debian's headless chromium (chromium-driver) in the web UI test (tests/web/browser.py).
  "selenium>=4.20,<5"
  # The SBOM validators (tests/e2e/sbom.rs): spdx-tools' pyspdxtools for SPDX 2.3 and
  # cyclonedx-python-lib's strict JSON validator for CycloneDX 1.6. checkov pins its own
  # cyclonedx-python-lib, which is why it lives in .venv-deploy and not here.
  "spdx-tools>=0.8.3,<0.9"
  "cyclonedx-python-lib[json-validation]>=8,<12"
)

log() { printf 'setup-test-env: %s\n' "$*"; }

if [[ ! -x "${venv}/bin/python" ]]; then
  log "creating virtualenv at ${venv}"
  if ! "${python}" -m venv "${venv}"; then
    # Debian's system Python ships venv/ensurepip separately.
    log "error: '${python} -m venv' failed; on Debian install python3-venv (apt-get install -y python3-venv)" >&2
    exit 1
  fi
else
  log "virtualenv already at ${venv}"
fi

# Cheap check first so a second run is fast and needs no registry access.
if "${venv}/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md
import securesystemslib.signer, securesystemslib.dsse, cryptography  # noqa: F401
import in_toto_attestation.v1.statement  # noqa: F401
import jwt  # noqa: F401
import selenium.webdriver  # noqa: F401
import spdx_tools.spdx.validation.document_validator  # noqa: F401
import cyclonedx.validation.json  # noqa: F401
import jsonschema, referencing  # noqa: F401  (the [json-validation] extra)
major = int(md.version("securesystemslib").split(".")[0])
raise SystemExit(0 if major == 1 else 1)
PY
then
  log "packages already installed; nothing to do"
else
  log "installing: ${requirements[*]}"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
fi

"${venv}/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("securesystemslib", "cryptography", "in-toto-attestation", "PyJWT", "selenium",
             "spdx-tools", "cyclonedx-python-lib"):
    print(f"setup-test-env: {name} {md.version(name)}")
PY

# npm @sigstore/verify (and @sigstore/bundle) for tests/interop/verify_bundle.js, pinned by
# tests/interop/npm/package-lock.json and installed with `npm ci` into ${AIRLOCK_NPM_VERIFY}.
npm_dir="${AIRLOCK_NPM_VERIFY:-${repo_root}/.npm-verify}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing nodejs and npm (Debian packages)"
  apt-get install -y --no-install-recommends nodejs npm >/dev/null
fi
mkdir -p "${npm_dir}"
if ! cmp -s "${repo_root}/tests/interop/npm/package-lock.json" "${npm_dir}/package-lock.json" \
  || [[ ! -d "${npm_dir}/node_modules/@sigstore/verify" ]]; then
  log "installing @sigstore/verify into ${npm_dir}"
  cp "${repo_root}/tests/interop/npm/package.json" "${repo_root}/tests/interop/npm/package-lock.json" "${npm_dir}/"
  (cd "${npm_dir}" && npm ci --no-audit --no-fund --loglevel=error)
else
  log "@sigstore/verify already installed in ${npm_dir}"
fi
log "node $(node --version), @sigstore/verify $(node -p "require('${npm_dir}/node_modules/@sigstore/verify/package.json').version")"

log "done; run tests with AIRLOCK_VENV_PYTHON=${venv}/bin/python AIRLOCK_NPM_VERIFY=${npm_dir}"
