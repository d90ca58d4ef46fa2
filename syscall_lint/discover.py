"""Turning command-line paths into files, honouring excludes, never following links out of a tree."""

from __future__ import annotations

import os
from typing import Callable, Iterator

from syscall_lint.findings import InputError


def walk(arg: str, want: Callable[[str], bool], excluded: Callable[[str], bool]) -> Iterator:
    """Yield display paths, or InputError for an argument that is missing or unreadable."""
    if not os.path.lexists(arg):
        yield InputError(arg, "no such file or directory")
        return
    if not os.path.exists(arg):
        yield InputError(arg, "broken symbolic link")
        return
    if not os.path.isdir(arg):
        if not excluded(arg):  # named files pass unless --force-exclude made the excluder say no
            yield arg
        return
    for root, dirs, files in os.walk(arg, followlinks=False, onerror=None):
        dirs[:] = sorted(d for d in dirs if not excluded(os.path.join(root, d))
                         and not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = os.path.join(root, name)
            if path.startswith("./") and arg in (".", "./"):
                path = path[2:]  # `check .` reports a.py, as flake8 and ruff do
            if want(path) and not excluded(path):
                yield path
