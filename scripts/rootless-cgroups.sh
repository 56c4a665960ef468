#!/usr/bin/env bash
# Delegates a cgroup to a user who runs `airlock runner`/`airlock run` without root.
#
#   sudo scripts/rootless-cgroups.sh USER
#
# libcontainer must put every container into a cgroup the runner may write, so root creates
# `airlock-user-<uid>` once in every mounted v1 controller (or in the v2 hierarchy) and
# chowns it to USER. Limits set on that directory by root (e.g. memory.limit_in_bytes) cap
# all of the user's jobs together; the per-job limits of a rootless runner are rlimits
# (docs/sandbox.md, "Rootless runner"). Idempotent. Cgroups do not survive a reboot: run it
# from the machine's boot scripts.
set -euo pipefail
user=${1:?usage: rootless-cgroups.sh USER}
uid=$(id -u "$user")
gid=$(id -g "$user")
name="airlock-user-$uid"
root=/sys/fs/cgroup
if [[ -e $root/cgroup.controllers ]]; then
    dirs=("$root/$name")
else
    dirs=()
    for c in blkio cpu cpuacct cpuset devices freezer hugetlb memory net_cls net_prio perf_event pids; do
        [[ -e $root/$c/cgroup.procs ]] && dirs+=("$root/$c/$name")
    done
fi
for d in "${dirs[@]}"; do
    mkdir -p "$d"
    if [[ -e $d/cpuset.cpus ]]; then
        # An empty cpuset cannot hold processes: inherit the parent's.
        [[ -n $(cat "$d/cpuset.cpus") ]] || cat "$(dirname "$d")/cpuset.cpus" > "$d/cpuset.cpus"
        [[ -n $(cat "$d/cpuset.mems") ]] || cat "$(dirname "$d")/cpuset.mems" > "$d/cpuset.mems"
    fi
    # The directory and the files that create children and move processes; limits stay root's.
    chown "$uid:$gid" "$d"
    for f in cgroup.procs tasks cgroup.subtree_control cgroup.threads; do
        [[ -e $d/$f ]] && chown "$uid:$gid" "$d/$f"
    done
done
echo "delegated ${dirs[*]} to $user"
