"""Build the strace parser's compiled core (opt-in): `python3 -m syscall_lint.strace.build_native`.

The default install is pure Python and works everywhere. This compiles a copy of parser.py with mypyc
(`pip install mypy`; needs a C compiler and Python's headers) into `_parser_native` next to it;
parser.py then uses it, but only while its SOURCE_DIGEST matches parser.py (an edited parser is
never served by a stale build). `SYSCALL_LINT_PURE=1` turns it off; `--remove` deletes the build.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULE = "_parser_native"
BUILD_TIMEOUT = 900  # seconds: mypy's analysis plus one C file


def built_files(folder: Path = HERE) -> list:
    """The compiled core's files in `folder` (the extension and mypyc's runtime library for it)."""
    return sorted(p for p in folder.glob(MODULE + "*") if p.suffix in (".so", ".pyd"))


def remove() -> int:
    for path in built_files():
        path.unlink()
        print(f"removed {path}")
    return 0


def build() -> int:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        print("build_native: no C compiler (gcc or cc) on PATH", file=sys.stderr)
        return 2
    try:
        import mypyc  # noqa: F401  (only to say what is missing)
    except ImportError:
        print("build_native: mypyc is not installed (pip install mypy)", file=sys.stderr)
        return 2
    source = (HERE / "parser.py").read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    with tempfile.TemporaryDirectory(prefix="syscall-lint-native-") as tmp:
        package = Path(tmp) / "syscall_lint" / "strace"
        package.mkdir(parents=True)
        (package.parent / "__init__.py").write_text("")
        (package / "__init__.py").write_text("")
        # the rest of the package is imported at run time as usual; mypy treats it as untyped here
        (package / f"{MODULE}.py").write_bytes(source + f'\n\nSOURCE_DIGEST = "{digest}"\n'.encode())
        cmd = [sys.executable, "-m", "mypyc", "--ignore-missing-imports", "--check-untyped-defs",
               f"syscall_lint/strace/{MODULE}.py"]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"build_native: mypyc took longer than {BUILD_TIMEOUT} s", file=sys.stderr)
            return 2
        made = built_files(package)
        if proc.returncode != 0 or not made:
            print(f"build_native: mypyc failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}",
                  file=sys.stderr)
            return 2
        remove()
        for path in made:
            shutil.copy2(path, HERE / path.name)
            print(f"built {HERE / path.name}")
    return _check()


def _check() -> int:
    """Import the build in a fresh interpreter: parser.py must pick it up."""
    probe = "import syscall_lint.strace.parser as p; print(p.NATIVE is not None)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    if proc.stdout.strip() != "True":
        print(f"build_native: the build does not load:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return 2
    print("the parser's compiled core is in use (SYSCALL_LINT_PURE=1 turns it off)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m syscall_lint.strace.build_native", description=__doc__.split("\n")[0])
    ap.add_argument("--remove", action="store_true", help="delete the compiled core: back to pure Python")
    args = ap.parse_args(argv)
    return remove() if args.remove else build()


if __name__ == "__main__":
    sys.exit(main())
