#!/usr/bin/env python3
"""Throughput and peak memory of `syscall-lint trace` next to wc -l, grep -c, a bare one-regex
Python loop and strace-parser, all run in this one invocation on the same synthesised trace.

The trace is built by repeating the real recordings in fixtures/strace/ (servers, sed, git, sqlite...)
up to each size. When the parser's opt-in compiled core is built (python3 -m syscall_lint.strace.build_native),
syscall-lint runs twice per size: with it, and pure Python (SYSCALL_LINT_PURE=1). CPU time is the
steadier measure on a shared machine. Every row runs --repeat times (default 3), the rows alternating,
and keeps its fastest run. Usage: python3 bench/strace_bench.py [--sizes 50,500] [--keep DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = r'''
import re, sys
# One compiled regex per line that reads a complete strace call: pid, timestamp, name, args, result, duration.
rx = re.compile(rb" *(?:\[pid +(\d+)\] |(\d+) +)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) +)?([a-z_][a-z0-9_]*)\((.*)\) += (.*?)(?: <(\d+\.\d+)>)?$")
n = 0
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        if rx.match(line):
            n += 1
print(n)
'''
SP = r'''
import sys
from strace_parser.parser import get_parser
from strace_parser.json_transformer import to_json
parser = get_parser()
ok = bad = 0
with open(sys.argv[1]) as fh:
    for line in fh:
        try:
            to_json(parser.parse(line))
            ok += 1
        except Exception:
            bad += 1
print(ok, bad)
'''


def synthesise(path: Path, size_mb: int) -> None:
    block = b"".join(p.read_bytes() for p in sorted((ROOT / "fixtures" / "strace").glob("*.strace")))
    target = size_mb << 20
    with open(path, "wb") as fh:
        written = 0
        while written < target:
            fh.write(block)
            written += len(block)


def compatible_slice(src: Path, dst: Path, limit: int = 1 << 20) -> int:
    """strace-parser's form: a -ttt timestamp, no pid, complete calls only."""
    rx = re.compile(rb"^\d+ +(\d+\.\d+) +([a-z_0-9]+\(.*\) += [^<]*?)(?: <[\d.]+>)?$")
    out = 0
    with open(src, "rb") as fh, open(dst, "wb") as w:
        for line in fh:
            m = rx.match(line.rstrip(b"\n"))
            if m and b"<" not in m.group(2) and b"/*" not in m.group(2):
                data = m.group(1) + b" " + m.group(2) + b"\n"
                w.write(data)
                out += len(data)
                if out >= limit:
                    break
    return out


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    """The 1-minute load average: the neighbours' share of the machine while the rows ran."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


def compile_bytecode() -> None:
    """Write syscall_lint's bytecode, as an install does. With PYTHONDONTWRITEBYTECODE set (this machine sets
    it), a module edited since its .pyc was written is compiled from source again on every run: on the trace
    path that was about 80 M instructions of start-up (cachegrind), which a user's install never pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "syscall_lint")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def native_core_built() -> bool:
    proc = subprocess.run([sys.executable, "-c", "import syscall_lint.strace.parser as p; print(p.NATIVE is not None)"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    return proc.stdout.strip() == "True"


def timed(cmd, env=None) -> tuple:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_maxrss, proc.stdout.decode().strip()[:60], proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50,500", help="trace sizes in MB; the memory check compares them")
    ap.add_argument("--keep", help="directory for the synthesised traces (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternating rounds over every row; each row keeps its fastest (default 3)")
    args = ap.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="strace-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    compile_bytecode()
    env_py = [sys.executable]
    peaks: dict = {}  # row -> {size: peak RSS in KiB}
    variants = [("", None)]
    if native_core_built():
        # the opt-in compiled parser (python3 -m syscall_lint.strace.build_native) next to the pure one
        variants = [(" (compiled core)", None), (" (pure Python)", {**os.environ, "SYSCALL_LINT_PURE": "1"})]
    for size in [int(s) for s in args.sizes.split(",")]:
        trace = workdir / f"trace-{size}mb.strace"
        if not trace.exists():
            synthesise(trace, size)
        mb = trace.stat().st_size / (1 << 20)
        lines = int(subprocess.run(["wc", "-l", str(trace)], capture_output=True, text=True).stdout.split()[0])
        print(f"\n== {trace.name}: {mb:.0f} MB, {lines:,} lines (load average {_load()})")
        lint = env_py + ["-m", "syscall_lint", "trace", "--format", "json", "--output", os.devnull, str(trace)]
        rows = [
            ("wc -l", ["wc", "-l", str(trace)], None),
            ("grep -c write", ["grep", "-c", "write", str(trace)], None),
            ("bare one-regex loop", env_py + ["-c", BARE, str(trace)], None),
        ]
        ours_rows = [(f"syscall-lint trace{label}", lint, env) for label, env in variants]
        results = {}
        cpu = {}  # CPU seconds: on a shared machine wall time moves with the neighbours' load, CPU time less
        runs: dict = {}  # name -> [(wall, cpu)] over the rounds
        for name, cmd, env in [row for _ in range(max(1, args.repeat)) for row in rows + ours_rows]:
            cpu_before = cpu_of_children()
            # ru_maxrss of children is a high-water mark over all children so far: run ours in a
            # fresh process group measured alone via /usr/bin/time when available
            if name.startswith("syscall-lint") and Path("/usr/bin/time").exists():
                t0 = time.perf_counter()
                proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
                wall = time.perf_counter() - t0
                rss = int(proc.stderr.strip().splitlines()[-1])
            else:
                wall, rss, _, _ = timed(cmd, env)
            runs.setdefault(name, []).append((wall, cpu_of_children() - cpu_before))
            results[name] = min(w for w, _ in runs[name])
            cpu[name] = min(c for _, c in runs[name])
            if name.startswith("syscall-lint"):
                peaks.setdefault(name, {})[size] = max(rss, peaks.get(name, {}).get(size, 0))
        for name, _, _ in rows + ours_rows:
            wall = results[name]
            extra = f"  peak RSS {peaks[name][size] / 1024:.1f} MiB" if name in peaks else ""
            spread = ", ".join(f"{w:.2f}" for w, _ in runs[name])
            print(f"{name:<40} {wall:7.2f} s  {mb / wall:8.1f} MB/s  {lines / wall:12,.0f} lines/s  "
                  f"cpu {cpu[name]:6.2f} s{extra}  (fastest of: {spread})")
        bare = "bare one-regex loop"
        print(f"(load average after the runs {_load()}: CPU time is the steadier measure on a shared machine)")
        for name, _, _ in ours_rows:
            ours = results[name]
            print(f"{name}: ratio to the bare regex loop by CPU time {cpu[bare] / cpu[name]:.2f}, by wall time "
                  f"{results[bare] / ours:.2f} (goal >= 0.5); vs grep -c {results['grep -c write'] / ours:.3f}; "
                  f"vs wc -l {results['wc -l'] / ours:.3f}")
        if size == min(int(s) for s in args.sizes.split(",")):
            slice_path = workdir / "strace-parser-slice.strace"
            nbytes = compatible_slice(trace, slice_path)
            wall, _, out, _ = timed(env_py + ["-c", SP, str(slice_path)])
            sp_rate = nbytes / (1 << 20) / wall
            t_ours, _, _, _ = timed(env_py + ["-m", "syscall_lint", "trace", "--format", "json", "--output",
                                              os.devnull, str(slice_path)])
            print(f"strace-parser on a {nbytes / (1 << 20):.1f} MB compatible slice: {wall:.2f} s, {sp_rate:.3f} MB/s "
                  f"(parsed/failed lines: {out}); syscall-lint on the same slice {t_ours:.2f} s "
                  f"(includes startup) → {wall / t_ours:.0f}x faster")
    for name, by_size in peaks.items():
        if len(by_size) >= 2:
            sizes = sorted(by_size)
            print(f"\n{name} peak RSS: " + ", ".join(f"{s} MB trace → {by_size[s] / 1024:.1f} MiB" for s in sizes) +
                  f"; ratio {by_size[sizes[-1]] / by_size[sizes[0]]:.2f} (flat = 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
