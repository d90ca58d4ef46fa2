"""What `record` adds to a run so the recording can be mapped back to source lines.

- `strace -k` prints the user stack after each traced call, resolved through DWARF for native
  programs (sourcemap.native). Unwinding is expensive (measured: ~90x on a Python script making 20k
  small writes), and an interpreter's C frames say nothing about the script's lines, so stacks are
  asked for only when the command is a native executable that is not a Python interpreter.
- For Python programs the start-up shim (pyshim/sitecustomize.py) tags the calls the rules care
  about with the Python lines behind them; it is loaded through PYTHONPATH by every Python process
  of the run, subprocesses included, and is inert unless SYSCALL_LINT_SOURCEMAP=1.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Dict, List, Sequence

from syscall_lint.inputs import InputRefused, open_regular

SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyshim")
STACK_FLAGS: List[str] = ["-k"]
_PYTHON = re.compile(r"^(python|pypy)[0-9.]*(-dbg)?$")


def _program(cmd: Sequence[str]) -> str:
    """The program that will run: `env [-i] [VAR=x] prog` names prog."""
    args = list(cmd)
    while args and os.path.basename(args[0]) == "env":
        args = [a for a in args[1:]]
        while args and (args[0].startswith("-") or "=" in args[0]):
            args = args[1:]
    return args[0] if args else ""


def wants_stacks(cmd: Sequence[str]) -> bool:
    """Whether `strace -k` can say something: a native executable, not an interpreter or a script."""
    program = _program(cmd)
    if not program or _PYTHON.match(os.path.basename(program)):
        return False
    path = program if os.sep in program else shutil.which(program)
    if not path:
        return False
    try:
        with open_regular(path) as fh:
            return fh.read(4) == b"\x7fELF"
    except (InputRefused, OSError):
        return False


def shim_environment(base: Dict[str, str]) -> Dict[str, str]:
    """The environment for the recorded command: the shim first on PYTHONPATH, switched on."""
    env = dict(base)
    existing = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = SHIM_DIR + (os.pathsep + existing if existing else "")
    env["SYSCALL_LINT_SOURCEMAP"] = "1"
    return env
