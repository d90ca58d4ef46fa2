#!/usr/bin/env python3
"""`syscall-lint audit` next to `readelf -W --dyn-syms` through `xargs -P2`, in one invocation, on
two sets (issue 10's speed goals):

  x86-64   every ELF file under /usr/bin and /usr/lib/x86_64-linux-gnu (call graph included)
           goal: the audit at least 2x faster than the readelf loop
  aarch64  every ELF file of the arm64 packages unpacked under bench/elf_corpus/.cache/ (every rule,
           SCL501's control-flow analysis included); goal: within 3x of the readelf loop

Each set is measured --repeat times (default 3), the readelf loop and the audit alternating, and the
fastest run of each is compared: the machine is shared, and the minimum is the run least disturbed
by other work. CPU time (user + system, of every process involved) is reported next to wall time.

With --compare TREE, the audit of another checkout (its `python3 -m syscall_lint`, run from that
directory: a copy of the tree before a change) joins the alternation, so a before/after pair comes
from one run under one load.

Usage: python3 bench/elf_bench.py [--x86 DIR ...] [--arm64 DIR ...] [--skip-x86] [--skip-arm64] [--repeat N]
                                  [--compare TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TIMEOUT = 1800


def elf_files(dirs):
    from syscall_lint.elf.reader import is_elf

    out = []
    for d in dirs:
        for root, subdirs, files in os.walk(d, followlinks=False):
            subdirs[:] = [s for s in subdirs if not os.path.islink(os.path.join(root, s))]
            for name in files:
                p = os.path.join(root, name)
                if os.path.isfile(p) and not os.path.islink(p) and is_elf(p):
                    out.append(p)
    return sorted(out)


def arm64_dirs():
    cache = ROOT / "bench" / "elf_corpus" / ".cache" / "root"
    return sorted(str(p) for p in cache.glob("*_arm64")) if cache.is_dir() else []


def _children_cpu() -> float:
    """User + system seconds of every finished descendant so far (xargs, readelf, the audit's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def readelf_seconds(files):
    """(wall seconds, CPU seconds) of the readelf loop."""
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".list") as fh:
        fh.write("\0".join(files))
        listing = fh.name
    try:
        cpu0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run(f"xargs -0 -P2 -n 64 readelf -W --dyn-syms < {listing} > /dev/null 2>&1", shell=True,
                       timeout=TIMEOUT)
        return time.perf_counter() - t0, _children_cpu() - cpu0
    finally:
        os.unlink(listing)


def audit_seconds(files, tree=ROOT):
    """(wall seconds, CPU seconds, findings by code, errors, peak RSS MiB) of one audit run (-j 2) of
    the checkout at `tree`."""
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".list") as fh:
        fh.write("\n".join(files))
        listing = fh.name
    # peak RSS of the audit and its workers, in their own probe process (RUSAGE_CHILDREN there sees
    # only them, not readelf)
    probe = ("import resource, subprocess, sys\n"
             "files = open(sys.argv[1]).read().split('\\n')\n"
             "p = subprocess.run(sys.argv[2:] + files, capture_output=True, text=True)\n"
             "sys.stdout.write(p.stdout)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)\n")
    try:
        cpu0, t0 = _children_cpu(), time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", probe, listing, sys.executable, "-m", "syscall_lint", "audit",
                               "-j", "2", "--format", "json"], capture_output=True, text=True, cwd=tree,
                              timeout=TIMEOUT)
        seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    finally:
        os.unlink(listing)
    doc = json.loads(proc.stdout)
    codes = {}
    for f in doc["findings"]:
        codes[f["code"]] = codes.get(f["code"], 0) + 1
    return seconds, cpu, codes, len(doc["errors"]), int(proc.stderr.split()[-1])


def _load() -> str:
    """The 1-minute load average: the cores are shared, and a ratio means little without it."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def run_set(label, files, goal_ratio, goal_text, repeat=3, compare=None):
    readelf_runs, audit_runs, other_runs = [], [], []
    load_before = _load()
    for _ in range(max(1, repeat)):
        readelf_runs.append(readelf_seconds(files))
        if compare:
            other_runs.append(audit_seconds(files, compare))
        audit_runs.append(audit_seconds(files))
    readelf, readelf_cpu = min(readelf_runs)
    ours, ours_cpu, codes, errors, peak = min(audit_runs, key=lambda run: run[0])
    ratio = ours / readelf if readelf else float("inf")
    cpu_ratio = ours_cpu / readelf_cpu if readelf_cpu else float("inf")
    walls = lambda runs: ", ".join(f"{run[0]:.2f}" for run in runs)  # noqa: E731
    print(f"{label}: {len(files)} ELF files; fastest of {len(audit_runs)} alternating runs "
          f"(load average {load_before} before, {_load()} after)")
    print(f"  readelf -W --dyn-syms via xargs -P2  {readelf:6.2f} s wall, {readelf_cpu:6.2f} s CPU  "
          f"(runs: {walls(readelf_runs)})")
    print(f"  syscall-lint audit -j 2 (all rules)  {ours:6.2f} s wall, {ours_cpu:6.2f} s CPU  "
          f"(runs: {walls(audit_runs)}; findings {codes}; errors {errors}; peak RSS of one process {peak} MiB)")
    if other_runs:
        other, other_cpu, other_codes, other_errors, other_peak = min(other_runs, key=lambda run: run[0])
        same = "same findings" if (other_codes, other_errors) == (codes, errors) else \
            f"DIFFERENT findings {other_codes}, errors {other_errors}"
        print(f"  audit of {compare}        {other:6.2f} s wall, {other_cpu:6.2f} s CPU  "
              f"(runs: {walls(other_runs)}; {same}; peak RSS {other_peak} MiB)")
        print(f"    its audit / readelf: wall {other / readelf:.2f}, CPU {other_cpu / readelf_cpu:.2f}; "
              f"this tree / that one: wall {ours / other:.2f}, CPU {ours_cpu / other_cpu:.2f}")
    met = ratio <= goal_ratio
    print(f"  audit / readelf: wall {ratio:.2f}, CPU {cpu_ratio:.2f}  (goal, on wall time: {goal_text}: "
          f"{'met' if met else 'NOT met'})")
    return met


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--x86", nargs="*", default=["/usr/bin", "/usr/lib/x86_64-linux-gnu"])
    ap.add_argument("--arm64", nargs="*", default=None, help="default: the arm64 packages of bench/elf_corpus")
    ap.add_argument("--skip-x86", action="store_true")
    ap.add_argument("--skip-arm64", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs of each; the fastest is compared")
    ap.add_argument("--compare", metavar="TREE", help="also time the audit of this checkout (e.g. a copy from before)")
    args = ap.parse_args(argv)
    if not args.skip_x86:
        files = elf_files(args.x86)
        run_set(f"x86-64 ({', '.join(args.x86)})", files, 0.5, "at least 2x faster than readelf", args.repeat,
                args.compare)
    if not args.skip_arm64:
        dirs = args.arm64 if args.arm64 is not None else arm64_dirs()
        files = elf_files(dirs)
        if not files:
            print("aarch64: no files (run bench/elf_corpus/fetch.py, or pass --arm64 DIR)")
        else:
            run_set("aarch64 (arm64 packages of bench/elf_corpus)", files, 3.0, "within 3x of readelf", args.repeat,
                    args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
