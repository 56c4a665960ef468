#!/usr/bin/python3
"""Loads a Docker/OCI seccomp profile (the JSON kubelet reads for a `Localhost` profile) with
libseccomp's own Python bindings (Debian's python3-seccomp), sets no_new_privs, and execs a
command under it: how a container runtime applies deploy/kubernetes/seccomp/runner.json.

Usage: with-seccomp.py PROFILE.json -- COMMAND [ARG]...
"""
import errno
import json
import os
import sys

import seccomp

ACTIONS = {"SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_KILL": seccomp.KILL,
           "SCMP_ACT_KILL_PROCESS": seccomp.KILL_PROCESS, "SCMP_ACT_LOG": seccomp.LOG}
OPS = {"SCMP_CMP_NE": seccomp.NE, "SCMP_CMP_LT": seccomp.LT, "SCMP_CMP_LE": seccomp.LE,
       "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_GE": seccomp.GE, "SCMP_CMP_GT": seccomp.GT,
       "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ}
ARCHES = {"SCMP_ARCH_X86_64": seccomp.Arch.X86_64, "SCMP_ARCH_X86": seccomp.Arch.X86,
          "SCMP_ARCH_X32": seccomp.Arch.X32, "SCMP_ARCH_AARCH64": seccomp.Arch.AARCH64}


def action(name, errno_ret):
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return seccomp.ERRNO(errno_ret) if name == "SCMP_ACT_ERRNO" else seccomp.TRACE(errno_ret)
    return ACTIONS[name]


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    profile = json.load(open(sys.argv[1]))
    default_errno = profile.get("defaultErrnoRet", errno.EPERM)
    f = seccomp.SyscallFilter(action(profile["defaultAction"], default_errno))
    for arch in profile.get("architectures", []):
        if arch in ARCHES and ARCHES[arch] != seccomp.Arch.NATIVE:
            try:
                f.add_arch(ARCHES[arch])
            except Exception:
                pass  # already the native one
    for rule in profile["syscalls"]:
        act = action(rule["action"], rule.get("errnoRet", default_errno))
        args = [seccomp.Arg(a["index"], OPS[a["op"]], a["value"], *([a["valueTwo"]] if a.get("valueTwo") else []))
                for a in rule.get("args") or []]
        for name in rule["names"]:
            try:
                f.add_rule(act, name, *args)
            except (RuntimeError, ValueError):
                pass  # a syscall this kernel or libseccomp does not know
    f.set_attr(seccomp.Attr.CTL_NNP, 1)
    f.load()
    os.execvp(sys.argv[3], sys.argv[3:])


if __name__ == "__main__":
    main()
