#!/usr/bin/env python3
"""Per-step cost of airlock's sandbox on the runner's real path, side by side with the
`unshare` floor and bubblewrap, in one run (issue 22). Run through bench/steps.sh.

A job of N steps and a job of 1 step are built with `airlock run` (embedded controller,
runner, real sandbox); both start with the same step writing the output, the N-step job
adds N-1 steps of `/bin/true`. The per-step cost is (median(T_N) - median(T_1)) / (N-1).
`unshare -Urnpm --mount-proc -f /bin/true` and `bwrap ... /bin/true` are timed per
invocation, interleaved with the airlock runs so that all see the same machine.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def job_file(path, name, image, steps):
    lines = [
        "[job]",
        f'name = "{name}"',
        'profile = "trusted"',
        'timeout = "10m"',
        "",
        "[source]",
        'path = "."',
        "",
        "[image]",
        f'ref = "oci-layout:{image}"',
        "",
        "[[steps]]",
        'name = "output"',
        'argv = ["/bin/sh", "-c", "echo ok > /out/ok"]',
    ]
    for i in range(steps - 1):
        lines += ["", "[[steps]]", f'name = "true-{i}"', 'argv = ["/bin/true"]']
    lines += [
        "",
        "[outputs]",
        'paths = ["ok"]',
        "",
        "[resources]",
        'memory = "1GiB"',
        "pids = 256",
        'tmp = "64MiB"',
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def timed(argv, env=None):
    t = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--airlock", required=True)
    p.add_argument("--image", required=True, help="the example base image's OCI layout")
    p.add_argument("--rootfs", required=True, help="an unpacked rootfs for bwrap")
    p.add_argument("--scratch", required=True)
    p.add_argument("--steps", type=int, default=51)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--floor-runs", type=int, default=30, help="unshare/bwrap runs per round")
    a = p.parse_args()

    jobs = os.path.join(a.scratch, "jobs")
    os.makedirs(jobs, exist_ok=True)
    with open(os.path.join(jobs, "README"), "w") as f:
        f.write("source of the per-step benchmark jobs\n")
    job_n = os.path.join(jobs, "steps-n.toml")
    job_1 = os.path.join(jobs, "steps-1.toml")
    job_file(job_n, "steps-n", a.image, a.steps)
    job_file(job_1, "steps-1", a.image, 1)
    env = dict(os.environ, AIRLOCK_HOME=os.path.join(a.scratch, "home"))
    out = os.path.join(a.scratch, "out")

    def run(job):
        shutil.rmtree(out, ignore_errors=True)
        return timed([a.airlock, "run", "-q", job, "--out", out], env)

    unshare = ["unshare", "-Urnpm", "--mount-proc", "-f", "/bin/true"]
    bwrap = ["bwrap", "--ro-bind", a.rootfs, "/", "--proc", "/proc", "--dev", "/dev",
             "--tmpfs", "/tmp", "--unshare-all", "--uid", "1000", "--gid", "1000",
             "--die-with-parent", "/bin/true"]
    # Warm-up: the image gets unpacked into the runner's cache by the first run.
    run(job_1)
    run(job_n)
    t_n, t_1, t_unshare, t_bwrap = [], [], [], []
    for r in range(a.runs):
        print(f"round {r + 1}/{a.runs}", file=sys.stderr)
        t_n.append(run(job_n))
        t_1.append(run(job_1))
        t_unshare += [timed(unshare) for _ in range(a.floor_runs)]
        t_bwrap += [timed(bwrap) for _ in range(a.floor_runs)]
    ms = lambda s: statistics.median(s) * 1000
    per_step = (ms(t_n) - ms(t_1)) / (a.steps - 1)
    floor, bw = ms(t_unshare), ms(t_bwrap)
    print(f"### Per-step cost ({a.steps}-step job vs 1-step job, {a.runs} runs each, interleaved)\n")
    print("| what | median ms |")
    print("|---|---:|")
    print(f"| `airlock run`, {a.steps}-step job (whole run) | {ms(t_n):.1f} |")
    print(f"| `airlock run`, 1-step job (whole run) | {ms(t_1):.1f} |")
    print(f"| **airlock, per step** ((T_{a.steps} - T_1) / {a.steps - 1}) | **{per_step:.2f}** |")
    print(f"| `{' '.join(unshare)}` | {floor:.2f} |")
    print(f"| bubblewrap (ro rootfs, --unshare-all, uid 1000) /bin/true | {bw:.2f} |")
    print(f"\nairlock per step / unshare: **{per_step / floor:.2f}x** (target <= 2.5x); "
          f"/ bwrap: {per_step / bw:.2f}x")


if __name__ == "__main__":
    main()
