"""Configuration files: `--config FILE` and a discovered pyproject.toml, both hostile.

Each configuration needs its own run of the CLI, so a batch is one probe process (this module run as
a script) that calls `syscall_lint.cli.main` once per file, both ways, and prints a traceback for any
exception that escapes — which the driver then bisects down to the file.
"""

from __future__ import annotations

import io
import os
import random
import sys
from pathlib import Path

KIND = "config"
SUBCOMMAND = ["check"]
BATCH_SIZE = 200

_CODES = ["SCL101", "SCL102", "SCL201", "SCL", "SCL1", "rename-without-fsync", "NOPE", "", " ", "S", "SCL9"]
_KEYS = ["select", "extend-select", "ignore", "exclude", "extend-exclude", "per-file-ignores", "root",
         "SCL201", "unbatched-writes", "SCL101", "strict", "src", "bogus", "tool", "syscall-lint"]
_VALUES = ['[]', '["SCL101"]', '5', '-1', '"x"', 'true', '{}', '{a = 1}', '[1, 2]', '[[]]', '1e400', 'nan',
           'inf', '-inf', '99999999999999999999', '"\\u0000"', '1979-05-27T07:32:00Z', '[{}]', '["**"]',
           '["[!"]', '{min-run = -3}', '{min-run = 1.5}', '{min-run = true}', '{nope = 1}',
           '{rate-per-second = 1e308}', '{"*.py" = ["SCL101"]}', '{"*.py" = "SCL101"}', '{"*.py" = [5]}']

VALID = """[tool.syscall-lint]
select = ["SCL1", "SCL2", "SCL3"]
ignore = ["SCL106"]
extend-exclude = ["vendor"]

[tool.syscall-lint.per-file-ignores]
"tests/*" = ["SCL201"]

[tool.syscall-lint.SCL201]
min-run = 4
"""


def _table(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 6)):
        lines.append(f"{rng.choice(_KEYS)} = {rng.choice(_VALUES)}")
    return "\n".join(lines)


def _shape(rng: random.Random, index: int) -> bytes:
    choice = index % 16
    if choice == 0:
        return f"[tool.syscall-lint]\n{_table(rng)}\n".encode()
    if choice == 1:
        return f"[tool]\nsyscall-lint = {rng.choice(_VALUES)}\n".encode()
    if choice == 2:
        return f"tool = {rng.choice(_VALUES)}\n".encode()
    if choice == 3:  # tables or arrays nested very deep
        depth = rng.choice([100, 1000, 3000, 20000])
        if rng.random() < 0.5:
            return ("[tool.syscall-lint]\nselect = " + "[" * depth + "]" * depth + "\n").encode()
        return ("x = " + "{a = " * depth + "1" + "}" * depth + "\n").encode()
    if choice == 4:
        return ("[" + ".".join(["tool", "syscall-lint"] + ["t"] * rng.choice([10, 500, 5000])) + "]\nx = 1\n").encode()
    if choice == 5:  # huge arrays of codes and patterns
        n = rng.choice([1000, 50000])
        items = ", ".join(f'"{rng.choice(_CODES)}"' for _ in range(n))
        key = rng.choice(["select", "ignore", "exclude", "extend-exclude"])
        return f"[tool.syscall-lint]\n{key} = [{items}]\n".encode()
    if choice == 6:  # undecodable, NULs, BOMs
        data = bytearray(VALID.encode())
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.choice([0, 0xFF, 0xC3, 0x80, 0x0D, 0x22, 0x5B])
        return bytes(data)
    if choice == 7:
        return b"\xef\xbb\xbf" + VALID.encode()
    if choice == 8:
        return VALID.encode("utf-16")
    if choice == 9:  # truncation
        data = VALID.encode()
        return data[: rng.randrange(len(data))]
    if choice == 10:  # the rule-option tables with every type confusion
        code = rng.choice(["SCL201", "unbatched-writes", "SCL101", "SCL501", "SCL999", "select"])
        return f"[tool.syscall-lint.{code}]\n{_table(rng)}\n".encode()
    if choice == 11:  # hostile globs
        pattern = rng.choice(["[", "[!", "**/" * 200, "*" * 5000, "\\", "a" * 100000, "(?P<x>", "{a,b}"])
        return f'[tool.syscall-lint]\nexclude = ["{pattern}"]\n[tool.syscall-lint.per-file-ignores]\n"{pattern}" = ["SCL101"]\n'.encode()
    if choice == 12:  # a huge line
        return b"# " + b"x" * rng.choice([10**5, 10**7]) + b"\n" + VALID.encode()
    if choice == 13:  # byte flips of a valid file
        data = bytearray(VALID.encode())
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            data[pos] ^= 1 << rng.randrange(8)
        return bytes(data)
    if choice == 14:
        return f"[tool.syscall-lint]\nroot = true\n[[tool.syscall-lint.SCL201]]\nmin-run = 1\n{_table(rng)}\n".encode()
    return rng.randbytes(rng.randint(0, 512)) if hasattr(rng, "randbytes") else bytes(rng.getrandbits(8) for _ in range(256))


def generate(rng: random.Random, index: int, outdir: Path) -> Path:
    path = outdir / f"config{index:06d}.toml"
    if index % 97 == 13:  # non-regular configuration files
        target = rng.choice(["/dev/zero", "/dev/null", "fifo"])
        if target == "fifo" and hasattr(os, "mkfifo"):
            os.mkfifo(path)
        else:
            path.symlink_to(target if target != "fifo" else "/dev/zero")
        return path
    path.write_bytes(_shape(rng, index))
    return path


def run_batch(paths, timeout):
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    from driver import judge, run_process

    outcome = run_process([sys.executable, str(Path(__file__).resolve()), *map(str, paths)], timeout)
    return judge(outcome, paths, memory_bound_mb=1024, expect_json=False)


def _probe(paths) -> int:
    """Run the CLI in-process on each configuration, both as --config and as a discovered pyproject."""
    import shutil
    import tempfile
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    from syscall_lint.cli import main

    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "a.py").write_text("import os\nos.replace('a.tmp', 'a')\n")
        for path in paths:
            path = str(path)
            runs = [["check", "-j", "1", "--no-cache", "--format", "json", "--config", path, str(project / "a.py")]]
            if os.path.isfile(path) and not os.path.islink(path):
                shutil.copyfile(path, project / "pyproject.toml")
                runs.append(["check", "-j", "1", "--no-cache", "--format", "json", str(project / "a.py")])
                if len(path) % 10 == 0:  # a CLI selection that is wrong must be blamed on the flag
                    runs.append(["trace", "--select", "NOPE", "--format", "json", str(project / "a.py")])
            for argv in runs:
                sink = io.StringIO()
                try:
                    with redirect_stdout(sink), redirect_stderr(sink):
                        status = main(argv)
                except SystemExit as exc:
                    status = exc.code if isinstance(exc.code, int) else 2
                except BaseException:  # noqa: B902 - the point is to see everything that escapes
                    print(f"Traceback (most recent call last) escaped for {path}:", file=sys.stderr)
                    traceback.print_exc()
                    return 3
                if status not in (0, 1, 2):
                    print(f"{path}: exit status {status}", file=sys.stderr)
                    worst = max(worst, 3)
            (project / "pyproject.toml").unlink(missing_ok=True)
    return worst


if __name__ == "__main__":
    sys.exit(_probe(sys.argv[1:]))
