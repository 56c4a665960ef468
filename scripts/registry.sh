#!/usr/bin/env bash
# A loopback OCI registry for the tests: Debian's `docker-registry` (the CNCF distribution
# registry) on 127.0.0.1, with the example base image pushed to it by skopeo.
#
# Usage: eval "$(scripts/registry.sh)"        # idempotent: reuses a registry already up
#        scripts/registry.sh --stop
#
# Prints shell assignments on stdout:
#   AIRLOCK_TEST_REGISTRY=127.0.0.1:PORT                 the registry
#   AIRLOCK_TEST_REGISTRY_STORAGE=DIR                    its storage directory (tests corrupt blobs there)
#   AIRLOCK_TEST_REGISTRY_IMAGE=127.0.0.1:PORT/airlock/base@sha256:HEX   the base image by digest
# Environment: AIRLOCK_REGISTRY_PORT (default 5055), AIRLOCK_REGISTRY_DIR (default
# /var/tmp/airlock-registry). Needs examples/base-image/oci (examples/base-image/build.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port="${AIRLOCK_REGISTRY_PORT:-5055}"
dir="${AIRLOCK_REGISTRY_DIR:-/var/tmp/airlock-registry}"
addr="127.0.0.1:$port"
pidfile="$dir/registry.pid"

log() { printf 'registry.sh: %s\n' "$*" >&2; }

if [[ "${1:-}" == "--stop" ]]; then
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill "$(cat "$pidfile")"
        log "stopped the registry (pid $(cat "$pidfile"))"
    fi
    rm -f "$pidfile"
    exit 0
fi

if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null || ! command -v curl >/dev/null; then
    log "installing docker-registry, skopeo and curl"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends docker-registry skopeo curl >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends docker-registry skopeo curl >&2; }
fi

up() { curl -fsS -o /dev/null "http://$addr/v2/" 2>/dev/null; }

mkdir -p "$dir/storage"
if ! up; then
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: $addr
YAML
    log "starting docker-registry on $addr (storage $dir/storage)"
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 < /dev/null &
    echo $! >"$pidfile"
    # Readiness is the registry answering its API, polled for up to 30 s.
    for _ in $(seq 1 300); do
        up && break
        kill -0 "$(cat "$pidfile")" 2>/dev/null || { cat "$dir/registry.log" >&2; log "the registry exited"; exit 3; }
        sleep 0.1
    done
    up || { cat "$dir/registry.log" >&2; log "the registry did not answer on $addr"; exit 3; }
fi

layout="examples/base-image/oci"
digest="$(cat "$layout/MANIFEST_DIGEST")"
# Push unless the registry already has this exact manifest.
if ! curl -fsS -o /dev/null 2>/dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$addr/v2/airlock/base/manifests/$digest"; then
    log "pushing the base image $digest"
    skopeo copy --quiet --preserve-digests --dest-tls-verify=false \
        "oci:$layout" "docker://$addr/airlock/base:latest" >&2
fi
pushed="$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$addr/v2/airlock/base/manifests/$digest" | sha256sum | cut -d' ' -f1)"
[[ "sha256:$pushed" == "$digest" ]] || { log "the registry serves sha256:$pushed, not $digest"; exit 3; }

echo "export AIRLOCK_TEST_REGISTRY=$addr"
echo "export AIRLOCK_TEST_REGISTRY_STORAGE=$dir/storage"
echo "export AIRLOCK_TEST_REGISTRY_IMAGE=$addr/airlock/base@$digest"
