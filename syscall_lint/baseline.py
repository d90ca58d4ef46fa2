"""Baselines: adopt the linter on legacy code and fail only on new findings.

Entries are keyed on (path, code, the normalised text of the line / syscall / symbols), never on line
numbers, so they survive unrelated edits; equal keys are counted, so a second copy of a baselined
problem is still new. The file is written with a durable replace."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import PurePath

from syscall_lint import __version__
from syscall_lint.config import ConfigError
from syscall_lint.durable import write_atomic


def key(f) -> tuple:
    text = " ".join((f.fingerprint_text or f.message).split())
    return PurePath(f.path).as_posix(), f.code, text


def write(path: str, findings) -> None:
    counts = Counter(key(f) for f in findings)
    entries = [{"path": p, "code": c, "text": t, "count": n} for (p, c, t), n in sorted(counts.items())]
    data = json.dumps({"tool": "syscall-lint", "version": __version__, "format": 1, "entries": entries},
                      indent=1, ensure_ascii=False) + "\n"
    write_atomic(path, data.encode())


def load(path: str) -> Counter:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return Counter({(e["path"], e["code"], e["text"]): int(e.get("count", 1)) for e in doc["entries"]})
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read baseline: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a syscall-lint baseline ({exc})") from None


def filter_new(path: str, findings) -> list:
    remaining = load(path)
    new = []
    for f in findings:
        k = key(f)
        if remaining[k] > 0:
            remaining[k] -= 1
        else:
            new.append(f)
    return new
