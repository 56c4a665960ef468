#!/usr/bin/env bash
# The README's second command: the whole test suite, including the end-to-end tests
# that need root, the real sandbox, the example base image and third-party verifiers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

# A clean clone gains nothing from incremental artifacts, which would double the target
# directory (tens of GiB); the images and the build need the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
step "disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free where the build runs"

step "system packages"
scripts/install-deps.sh

step "Python venv with third-party verifiers (securesystemslib, in-toto-attestation)"
scripts/setup-test-env.sh
export AIRLOCK_VENV_PYTHON="$PWD/.venv/bin/python"

step "example base image"
examples/base-image/build.sh

step "example toolchains image (rustc, cargo, node, npm, python3) for the [[deps]] examples"
examples/toolchains-image/build.sh

step "the [[deps]] examples' packages, for the loopback mirror the tests serve them from"
scripts/fetch-deps-fixtures.sh >/dev/null

step "PostgreSQL for the store, fleet and HA tests (loopback, throwaway cluster)"
eval "$(scripts/postgres.sh)"
export AIRLOCK_TEST_POSTGRES_URL

step "OCI registry on loopback with the base image pushed (docker-registry, skopeo)"
eval "$(scripts/registry.sh)"
export AIRLOCK_TEST_REGISTRY AIRLOCK_TEST_REGISTRY_STORAGE AIRLOCK_TEST_REGISTRY_IMAGE

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --locked --workspace --all-targets -- -D warnings
# No crate's modules import each other in a cycle (issue 14).
scripts/check-module-cycles.py attest/src cli/src controller/src job/src proto/src runner/src

step "deploy/ (systemd-analyze security --offline; kustomize, kubernetes-validate, checkov)"
deploy/systemd/check.sh
deploy/kubernetes/check.sh

step "deploy/image: airlock's own images, built by airlock, verified, run and pushed"
cargo build --locked -p airlock --bin airlock
deploy/image/check.sh

step "tests (unit, integration, end-to-end in the real sandbox)"
# The e2e tests each start a controller, a runner and containers: two at a time
# keeps a 2-core machine responsive.
# A backstop: a hung test fails the run instead of stalling CI.
timeout --signal=TERM 50m cargo test --locked --workspace -- --include-ignored --test-threads 2
