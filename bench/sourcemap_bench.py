#!/usr/bin/env python3
"""What mapping a recorded run to source lines costs, on a write-heavy Python script.

Runs the same script, in the same invocation:
  plain                  python3 script
  shim only              python3 script with the start-up shim on (no strace): the shim's own cost
  record                 syscall-lint record --no-source-map -- python3 script
  record + source map    syscall-lint record -- python3 script (the shim's tags in the trace)
and the same work as a C program built with -g (plain, record, record with `strace -k` stacks).
and prints wall seconds (best of --repeat) and ratios. The script writes and replaces --files small
state files (open for writing, several writes, rename: every call the shim tags) and makes --writes
unbuffered small writes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

C_SOURCE = r'''
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char tmp[4096], dst[4096];
    int files = atoi(argv[2]), writes = atoi(argv[3]);
    for (int i = 0; i < files; i++) {
        snprintf(tmp, sizeof tmp, "%s/s%d.tmp", argv[1], i % 50);
        snprintf(dst, sizeof dst, "%s/s%d.json", argv[1], i % 50);
        FILE *fh = fopen(tmp, "w");
        for (int j = 0; j < 8; j++) fprintf(fh, "line %d %d\n", i, j);
        fclose(fh);
        rename(tmp, dst);
    }
    snprintf(tmp, sizeof tmp, "%s/log", argv[1]);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < writes; i++) write(fd, "0123456789abcdef", 16);
    close(fd);
    return 0;
}
'''

SCRIPT = r'''
import os, sys
folder, files, writes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    tmp = os.path.join(folder, "s%d.tmp" % (i % 50))
    with open(tmp, "w") as fh:
        for j in range(8):
            fh.write("line %d %d\n" % (i, j))
    os.replace(tmp, os.path.join(folder, "s%d.json" % (i % 50)))
fd = os.open(os.path.join(folder, "log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
for i in range(writes):
    os.write(fd, b"0123456789abcdef")
os.close(fd)
'''


def best(cmd, env, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{cmd[:4]} exited {proc.returncode}")
    return min(times)


def main(argv=None) -> int:
    from syscall_lint.sourcemap.recording import shim_environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "writer.py")
        script.write_text(SCRIPT)
        work = Path(tmp, "work")
        work.mkdir()
        py = [sys.executable, str(script), str(work), str(args.files), str(args.writes)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        lint = [sys.executable, "-m", "syscall_lint", "record"]
        rows = [
            ("plain", best(py, env, args.repeat)),
            ("shim only", best(py, shim_environment(env), args.repeat)),
            ("record", best([*lint, "--no-source-map", "--", *py], env, args.repeat)),
            ("record + source map", best([*lint, "--", *py], env, args.repeat)),
        ]
        native = []
        if shutil.which("gcc"):
            source = Path(tmp, "writer.c")
            source.write_text(C_SOURCE)
            binary = Path(tmp, "writer")
            subprocess.run(["gcc", "-g", "-O1", "-o", str(binary), str(source)], check=True, timeout=120)
            c = [str(binary), str(work), str(args.files), str(args.writes)]
            native = [
                ("plain", best(c, env, args.repeat)),
                ("record", best([*lint, "--no-source-map", "--", *c], env, args.repeat)),
                ("record + stacks (-k)", best([*lint, "--", *c], env, args.repeat)),
            ]
    for title, table in (("Python", rows), ("C (-g)", native)):
        if not table:
            continue
        base = table[0][1]
        print(f"{title} write-heavy program: {args.files} replaced files, {args.writes} small writes "
              f"(best of {args.repeat})")
        for name, seconds in table:
            print(f"  {name:22} {seconds:7.3f} s   {seconds / base:6.2f}x plain")
        print(f"  source map over record: {table[-1][1] / table[-2][1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
