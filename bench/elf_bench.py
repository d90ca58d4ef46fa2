#!/usr/bin/env python3
"""`syscall-lint audit` over every ELF file under /usr/bin and /usr/lib/x86_64-linux-gnu (or the
directories given), next to `readelf -W --dyn-syms` through xargs, in the same invocation.

Usage: python3 bench/elf_bench.py [DIR...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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
    return out


def main() -> int:
    dirs = sys.argv[1:] or ["/usr/bin", "/usr/lib/x86_64-linux-gnu"]
    files = elf_files(dirs)
    print(f"{len(files)} ELF files under {', '.join(dirs)}")
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".list") as fh:
        fh.write("\0".join(files))
        listing = fh.name
    t0 = time.perf_counter()
    subprocess.run(f"xargs -0 -P1 -n 64 readelf -W --dyn-syms < {listing} > /dev/null 2>&1", shell=True)
    readelf = time.perf_counter() - t0
    t0 = time.perf_counter()
    # peak RSS of the audit and its workers, in their own probe process (RUSAGE_CHILDREN there sees
    # only them, not readelf)
    probe = ("import resource, subprocess, sys\n"
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "sys.stdout.write(p.stdout)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "syscall_lint", "audit", "--format",
                           "json", *dirs], capture_output=True, text=True, cwd=ROOT)
    ours = time.perf_counter() - t0
    peak_mb = int(proc.stderr.split()[-1])
    doc = json.loads(proc.stdout)
    codes = {}
    for f in doc["findings"]:
        codes[f["code"]] = codes.get(f["code"], 0) + 1
    os.unlink(listing)
    print(f"readelf -W --dyn-syms via xargs  {readelf:6.2f} s  {len(files) / readelf:7.0f} files/s")
    print(f"syscall-lint audit (all rules)   {ours:6.2f} s  {len(files) / ours:7.0f} files/s  "
          f"(-j {os.cpu_count()}; findings {codes}; errors {len(doc['errors'])}; peak RSS of one process {peak_mb} MiB)")
    print(f"ratio: readelf time / syscall-lint time = {readelf / ours:.2f} (goal > 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
