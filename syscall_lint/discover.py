"""Turning command-line paths into files, honouring excludes, never following links out of a tree."""

from __future__ import annotations

import os
from typing import Callable, Iterator, Optional

from syscall_lint.findings import InputError

PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
THIRD_PARTY_DIRS = frozenset({"site-packages", "dist-packages"})
MAX_MARKER_DEPTH = 32  # folders walked up looking for a project marker


def nearest_project_root(start: str) -> Optional[str]:
    """The nearest folder at or above `start` holding a project marker; None past a site-packages
    folder (installed code belongs to no project of ours) or after MAX_MARKER_DEPTH folders."""
    directory = os.path.abspath(start)
    for _ in range(MAX_MARKER_DEPTH):
        if os.path.basename(directory) in THIRD_PARTY_DIRS:
            return None
        if any(os.path.exists(os.path.join(directory, m)) for m in PROJECT_MARKERS):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    return None


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
