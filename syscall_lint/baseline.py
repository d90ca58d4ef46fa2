"""Baselines: adopt the linter on legacy code and fail only on new findings.

Entries are keyed on (path, code, the normalised text of the line / syscall / symbols), never on line
numbers, so they survive unrelated edits; equal keys are counted, so a second copy of a baselined
problem is still new. The file is written with a durable replace."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import PurePath

from syscall_lint import __version__
from syscall_lint.config import ConfigError
from syscall_lint.discover import nearest_project_root
from syscall_lint.durable import write_atomic
from syscall_lint.inputs import InputRefused, read_regular


def project_root(baseline_path: str) -> str:
    """The project a baseline belongs to: the nearest folder at or above the baseline file that holds
    a project marker, else the baseline's own folder. Paths are stored relative to it, so
    `check w.py`, `check ./w.py` and `check /abs/w.py` agree, from any working directory."""
    start = os.path.dirname(os.path.abspath(baseline_path))
    return nearest_project_root(start) or start


def _stored_path(path: str, root: str) -> str:
    full = os.path.abspath(path)
    if full == root or full.startswith(root.rstrip(os.sep) + os.sep):
        return PurePath(os.path.relpath(full, root)).as_posix()
    return PurePath(full).as_posix()  # outside the project (an audited /usr/bin/sed): absolute


def key(f, root: str) -> tuple:
    text = " ".join((f.fingerprint_text or f.message).split())
    return _stored_path(f.path, root), f.code, text


def write(path: str, findings) -> int:
    """Write the baseline; the number of distinct entries written."""
    root = project_root(path)
    counts = Counter(key(f, root) for f in findings)
    entries = [{"path": p, "code": c, "text": t, "count": n} for (p, c, t), n in sorted(counts.items())]
    data = json.dumps({"tool": "syscall-lint", "version": __version__, "format": 2, "entries": entries},
                      indent=1, ensure_ascii=False) + "\n"
    write_atomic(path, data.encode())  # creates missing parent folders, like --output
    return len(entries)


BASELINE_SIZE_LIMIT = 256 * 1024 * 1024


def load(path: str) -> Counter:
    try:
        doc = json.loads(read_regular(path, BASELINE_SIZE_LIMIT).decode("utf-8"))
        return Counter({(e["path"], e["code"], e["text"]): int(e.get("count", 1)) for e in doc["entries"]})
    except InputRefused as exc:
        raise ConfigError(f"{path}: cannot read baseline: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not a syscall-lint baseline ({type(exc).__name__})") from None


def filter_new(path: str, findings) -> list:
    remaining = load(path)
    root = project_root(path)
    new = []
    for f in findings:
        k = key(f, root)
        if remaining[k] > 0:
            remaining[k] -= 1
        else:
            new.append(f)
    return new
