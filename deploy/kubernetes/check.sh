#!/usr/bin/env bash
# Static checks of the Kubernetes deployment (docs/deploy.md, "Checks"):
#   1. render the kustomize tree with kubectl;
#   2. the runner's seccomp profile is well-formed and allows none of the calls it must not;
#   3. kubernetes-validate: every object against the Kubernetes 1.33 schemas, strictly
#      (unknown fields are errors);
#   4. the optional components (apparmor, selinux, pss-privileged-runners) applied together
#      still render and validate the same way;
#   5. checkov: 0 failed checks; every skipped check carries its reason in a
#      `checkov.io/skipN` annotation of the object it concerns.
# Tools come from PyPI into .venv-deploy at the repository root (created once; reused when
# checkov and kubernetes_validate import). Nothing else is fetched: checkov runs with
# --skip-download and without a platform API key.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

command -v kubectl >/dev/null || {
  echo "check.sh: kubectl is needed to render deploy/kubernetes (kubectl kustomize)" >&2
  exit 2
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== kubectl kustomize deploy/kubernetes"
kubectl kustomize deploy/kubernetes > "$tmp/rendered.yaml"
echo "rendered $(grep -c '^kind:' "$tmp/rendered.yaml") objects"

venv=.venv-deploy
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import checkov, kubernetes_validate' 2>/dev/null; then
  "$venv/bin/pip" install --quiet checkov kubernetes-validate
fi

echo "== seccomp profile deploy/kubernetes/seccomp/runner.json"
"$venv/bin/python" - deploy/kubernetes/seccomp/runner.json <<'PY'
import json, sys
path = sys.argv[1]
p = json.load(open(path))
errors = []
if p.get("defaultAction") != "SCMP_ACT_ERRNO":
    errors.append("defaultAction must be SCMP_ACT_ERRNO (an allow-list)")
if p.get("architectures") != ["SCMP_ARCH_X86_64"]:
    errors.append("architectures must be exactly [SCMP_ARCH_X86_64]")
# Docker-only extensions are ignored by containerd's loader, which would silently turn a
# conditional rule into an unconditional one.
for key in ("archMap", "includes", "excludes"):
    if key in p or any(key in s for s in p["syscalls"]):
        errors.append(f"{key} is a Docker extension the CRI runtimes do not honour")
allowed = set()
for s in p["syscalls"]:
    if s.get("action") == "SCMP_ACT_ALLOW" and not s.get("args"):
        allowed.update(s["names"])
needed = {"unshare", "setns", "clone", "clone3", "mount", "umount2", "pivot_root",
          "fsopen", "fsconfig", "fsmount", "move_mount", "open_tree", "mount_setattr",
          "sethostname", "seccomp", "execve", "prctl", "capset", "setresuid", "setgroups"}
for name in sorted(needed - allowed):
    errors.append(f"{name} must be allowed (nested containers need it)")
forbidden = {"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "ptrace",
             "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load",
             "init_module", "finit_module", "delete_module", "userfaultfd",
             "open_by_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register",
             "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "settimeofday",
             "clock_settime", "iopl", "ioperm", "kcmp", "pidfd_getfd", "lookup_dcookie",
             "fanotify_init", "vhangup"}
names = {n for s in p["syscalls"] for n in s["names"]}
for name in sorted(forbidden & names):
    errors.append(f"{name} must not appear in the profile")
if errors:
    print("\n".join(f"{path}: {e}" for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(allowed)} system calls allowed unconditionally, default EPERM")
PY

echo "== kubernetes-validate --strict --kubernetes-version 1.33.0"
"$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.33.0 --quiet "$tmp/rendered.yaml"
echo "ok: every object is valid for Kubernetes 1.33 (strict)"

echo "== components: an overlay with every optional component"
mkdir "$tmp/variant"
rel="$(realpath --relative-to="$tmp/variant" deploy/kubernetes)"
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources: [$rel]"
  echo "components:"
  for c in deploy/kubernetes/components/*/; do
    echo "  - $rel/components/$(basename "$c")"
  done
} > "$tmp/variant/kustomization.yaml"
kubectl kustomize "$tmp/variant" > "$tmp/variant.yaml"
"$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.33.0 --quiet "$tmp/variant.yaml"
echo "ok: $(grep -c '^  - ' "$tmp/variant/kustomization.yaml") components render and validate"

echo "== checkov --framework kubernetes"
env -u BC_API_KEY -u BC_API_URL -u PRISMA_API_URL \
  CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE \
  "$venv/bin/checkov" -f "$tmp/rendered.yaml" --framework kubernetes --compact --quiet \
  --skip-download
