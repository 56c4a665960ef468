#!/usr/bin/env bash
# Install the Debian packages airlock needs to build and to run its sandbox.
# Idempotent: skips apt entirely when everything is present.
#
#   libseccomp-dev pkg-config  libcontainer's seccomp support (without it a seccomp
#                              section would be silently ignored)
#   mmdebstrap                 builds the example base image from Debian packages
#   python3-venv               the venv for third-party verifiers (tests only)
#   git                        the runner fetches git sources with the system git
#   uidmap                     newuidmap/newgidmap: id mappings of a rootless runner
#   openssl curl               the TLS tests make certificates with openssl and fetch the
#                              controller's https endpoints with curl (tests only)
#   python3-seccomp            libseccomp's Python bindings: the pod emulation loads the
#                              runner's shipped seccomp profile with them (tests only)
#   chromium chromium-driver   headless Chromium driven by selenium: the web UI's real-browser
#                              test, tests/web/browser.py (tests only)
set -euo pipefail

packages=(libseccomp-dev pkg-config mmdebstrap python3-venv ca-certificates git uidmap openssl curl python3-seccomp chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "==> system packages present: ${packages[*]}" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing packages ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 2
fi
echo "==> installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "==> installed ${missing[*]}" >&2
