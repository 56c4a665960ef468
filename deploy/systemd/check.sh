#!/usr/bin/env bash
# Offline checks of the systemd files in deploy/systemd: no root, no running systemd, no
# `systemd-analyze verify` (it wants the binaries installed).
#
#   deploy/systemd/check.sh          # from any directory
#
# 1. `systemd-analyze security --offline=true --threshold=N` of both units; it exits non-zero
#    when the overall exposure (printed as 0.0-10.0, compared as 0-100) is above N:
#      airlock-controller.service  N=30 (3.0; measured 1.1)
#      airlock-runner.service      N=61 (measured 6.1, already a multiple of 0.1: any worse
#        setting, e.g. ProtectSystem=no at 6.2, fails). The rootless runner cannot go much
#        lower: see the header of airlock-runner.service (newuidmap needs no_new_privs off,
#        and systemd forces it on for every seccomp-based option).
#    Lower a limit when a unit gets better; raise one only with a reason in the unit.
#    Any warning the analyzer prints (unknown or misspelt settings) also fails.
# 2. The runner unit sets none of the options that would break it at run time (they imply
#    NoNewPrivileges=yes for a User= service, or hide/mask what the sandbox needs), so nobody
#    "improves" the score above by breaking newuidmap.
# 3. airlock.sysusers and airlock.tmpfiles apply cleanly to a scratch root.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."

dir=deploy/systemd
controller_max=30
runner_max=61
failed=0

fail() {
    echo "FAIL: $*" >&2
    failed=1
}
indent() {
    sed 's/^/  /' >&2
}

if ! command -v systemd-analyze >/dev/null; then
    echo "check.sh: systemd-analyze not found (Debian: apt-get install systemd)" >&2
    exit 2
fi

# security UNIT MAX: prints the overall exposure line; fails above MAX (tenths).
security() {
    local unit=$1 max=$2 out err rc=0 level
    err=$(mktemp)
    out=$(systemd-analyze security --no-pager --offline=true --threshold="$max" \
        "$dir/$unit" 2>"$err") || rc=$?
    if [[ -s $err ]]; then
        fail "$unit: systemd-analyze printed warnings:"
        indent <"$err"
    fi
    rm -f "$err"
    level=$(grep -o 'Overall exposure level for [^:]*: [0-9]*\.[0-9]' <<<"$out" | tail -n 1 || true)
    if [[ -z $level ]]; then
        fail "$unit: no \"Overall exposure level\" line in the output of systemd-analyze"
        return
    fi
    printf '%s (limit %d.%d)\n' "$level" $((max / 10)) $((max % 10))
    # Belt and braces: compare the printed value too, in case --threshold is ignored.
    local value=${level##* } tenths
    tenths=$((10#${value%.*} * 10 + 10#${value#*.}))
    if ((rc != 0 || tenths > max)); then
        fail "$unit: exposure $value is above $((max / 10)).$((max % 10)) (systemd-analyze exit status $rc)"
    fi
}

security airlock-controller.service "$controller_max"
security airlock-runner.service "$runner_max"

# The value of the last uncommented KEY= line in the runner unit ("" when absent).
runner_setting() {
    sed -n "s/^[[:space:]]*$1=[[:space:]]*//p" "$dir/airlock-runner.service" | tail -n 1
}
is_false() {
    [[ -z $1 || $1 =~ ^(no|false|off|0)$ ]]
}
# Booleans (and RestrictNamespaces=) that must stay off: each implies NoNewPrivileges=yes
# for a User= service without CAP_SYS_ADMIN (systemd.exec(5)), which makes the kernel ignore
# the setuid bit of newuidmap/newgidmap.
for key in NoNewPrivileges DynamicUser LockPersonality MemoryDenyWriteExecute PrivateDevices \
    ProtectClock ProtectHostname ProtectKernelLogs ProtectKernelModules ProtectKernelTunables \
    RestrictRealtime RestrictSUIDSGID RestrictNamespaces; do
    value=$(runner_setting "$key")
    is_false "$value" || fail "airlock-runner.service: $key=$value implies no_new_privs (breaks newuidmap)"
done
# Seccomp lists: any value implies NoNewPrivileges=yes too.
for key in SystemCallFilter SystemCallArchitectures SystemCallLog RestrictAddressFamilies; do
    value=$(runner_setting "$key")
    [[ -z $value ]] || fail "airlock-runner.service: $key=$value implies no_new_privs (breaks newuidmap)"
done
# Options that break the sandbox in other ways.
value=$(runner_setting PrivateUsers)
is_false "$value" || fail "airlock-runner.service: PrivateUsers=$value hides the subordinate ids"
value=$(runner_setting ProtectControlGroups)
is_false "$value" || fail "airlock-runner.service: ProtectControlGroups=$value makes the delegated cgroup read-only"
value=$(runner_setting ProtectProc)
[[ -z $value || $value == default ]] || fail "airlock-runner.service: ProtectProc=$value hides the job's /proc/<pid> from setuid newuidmap"
value=$(runner_setting ProcSubset)
[[ -z $value || $value == all ]] || fail "airlock-runner.service: ProcSubset=$value hides /proc/sys from libcontainer"
grep -Eq '^[[:space:]]*CapabilityBoundingSet=CAP_SETUID CAP_SETGID[[:space:]]*$' "$dir/airlock-runner.service" ||
    fail "airlock-runner.service: CapabilityBoundingSet= must be exactly CAP_SETUID CAP_SETGID (newuidmap/newgidmap)"
[[ -f scripts/rootless-cgroups.sh ]] ||
    fail "scripts/rootless-cgroups.sh is missing (airlock-runner.service runs it as ExecStartPre=)"
echo "airlock-runner.service: sets no option that breaks newuidmap, the cgroups or /proc"

# sysusers.d and tmpfiles.d, applied to a scratch root (not /). As non-root, tmpfiles cannot
# chown there: only those errors are tolerated, the modes are checked.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/etc"
if out=$(systemd-sysusers --root="$scratch" - <"$dir/airlock.sysusers" 2>&1); then
    for user in airlock airlock-runner; do
        grep -q "^$user:" "$scratch/etc/passwd" || fail "airlock.sysusers did not create $user"
    done
    echo "airlock.sysusers: creates airlock and airlock-runner"
else
    fail "systemd-sysusers rejected airlock.sysusers:"
    indent <<<"$out"
fi
out=$(systemd-tmpfiles --create --root="$scratch" - <"$dir/airlock.tmpfiles" 2>&1) || true
unexpected=$(grep -v -e '^fchownat() of .* failed: Operation not permitted$' <<<"$out" || true)
if [[ -n $unexpected ]]; then
    fail "systemd-tmpfiles reported problems with airlock.tmpfiles:"
    indent <<<"$unexpected"
fi
for want in etc/airlock:750 var/lib/airlock:755; do
    path=${want%:*} mode=${want#*:}
    got=$(stat -c %a "$scratch/$path" 2>/dev/null || echo missing)
    [[ $got == "$mode" ]] || fail "airlock.tmpfiles: /$path is $got, want $mode"
done
echo "airlock.tmpfiles: /etc/airlock 0750, /var/lib/airlock 0755"

if ((failed)); then
    echo "deploy/systemd/check.sh: FAILED" >&2
    exit 1
fi
echo "deploy/systemd/check.sh: OK"
