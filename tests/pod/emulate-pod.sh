#!/usr/bin/env bash
# Runs a command the way deploy/kubernetes/runners/deployment.yaml runs the runner, without a
# cluster: root of a user namespace of its own (hostUsers: false) that maps 196608 ids to an
# unprivileged range of this host; new mount, PID and cgroup namespaces with a fresh /proc
# (procMount: Unmasked); /sys/fs/cgroup a read-only cgroup2 mount, as a container on a cgroup v2
# node sees it; the root file system read-only except the state directory, /run/airlock
# and /tmp (the pod's three emptyDir volumes); only the six capabilities the manifest adds, and those only
# in the pod's namespace; no_new_privs; the shipped seccomp profile
# (deploy/kubernetes/seccomp/runner.json) loaded by libseccomp.
#
# Usage: tests/pod/emulate-pod.sh --state DIR --run DIR -- COMMAND [ARG]...
#
# Needs root (to map the range; it adds `root:BASE:196608` to /etc/subuid and /etc/subgid for
# newuidmap) and Debian's python3-seccomp. The pod's uid 0 is host uid
# $AIRLOCK_POD_HOST_BASE (default 800000000); DIR and the --run DIR are given to it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="" run=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --state) state="$2"; shift 2 ;;
        --run) run="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "emulate-pod.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -n "$state" && -n "$run" && $# -gt 0 ]] || { sed -n '2,/^[^#]/p' "$0" | sed '$d'; exit 2; }
outer="${AIRLOCK_POD_HOST_BASE:-800000000}"
ids=196608
# unshare maps the range with newuidmap, which allows root only what /etc/subuid grants it.
for f in /etc/subuid /etc/subgid; do
    grep -qx "root:$outer:$ids" "$f" 2>/dev/null || echo "root:$outer:$ids" >>"$f"
done
mkdir -p "$state" "$run" /run/airlock
chown -R "$outer:$outer" "$state" "$run"
export POD_STATE="$state" POD_RUN="$run" POD_SECCOMP="$repo/deploy/kubernetes/seccomp/runner.json"
export POD_WITH_SECCOMP="$here/with-seccomp.py"
exec unshare --user --map-users="$outer,0,$ids" --map-groups="$outer,0,$ids" --setuid=0 --setgid=0 \
    --mount --pid --cgroup --fork --kill-child --mount-proc \
    /bin/bash -c '
set -euo pipefail
mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mount --bind "$POD_STATE" "$POD_STATE"
mount --bind "$POD_RUN" /run/airlock
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mount -o remount,bind,ro /
exec setpriv --bounding-set=-all,+chown,+dac_override,+fowner,+kill,+setgid,+setuid \
    --inh-caps=-all -- /usr/bin/python3 "$POD_WITH_SECCOMP" "$POD_SECCOMP" -- "$@"
' emulate-pod "$@"
