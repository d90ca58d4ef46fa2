"""The last joined run (`record --check`), kept for the editor.

`record --check` saves the findings that a recorded run put on source lines (confirmed static
findings and static misses) to `<cache dir>/last-run.json`; the language server shows them as
diagnostics on those lines, marked as coming from the run, until the next recording replaces them.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

from syscall_lint.durable import write_atomic
from syscall_lint.inputs import InputRefused, read_regular

FILE_NAME = "last-run.json"
MAX_BYTES = 64 * 1024 * 1024


def default_dir() -> str:
    return os.environ.get("SYSCALL_LINT_CACHE_DIR", ".syscall_lint_cache")


def save(report, cache_dir: str) -> int:
    """Keep the run-backed findings of a joined report; the number kept."""
    kept = [dict(f.to_json(), path=os.path.realpath(f.path)) for f in report.findings
            if f.line is not None and ("confirmed" in f.evidence or f.evidence.get("static_miss"))]
    write_atomic(os.path.join(cache_dir, FILE_NAME), (json.dumps({"format": 1, "findings": kept}) + "\n").encode())
    return len(kept)


def load(cache_dir: str) -> Dict[str, List[dict]]:
    """{real path: [finding dicts]} from the last joined run; empty when there is none or it is unreadable."""
    try:
        doc = json.loads(read_regular(os.path.join(cache_dir, FILE_NAME), MAX_BYTES).decode("utf-8"))
        found = doc["findings"]
        by_path: Dict[str, List[dict]] = {}
        for item in found:
            if isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(item.get("line"), int):
                by_path.setdefault(item["path"], []).append(item)
        return by_path
    except (InputRefused, OSError, ValueError, KeyError, TypeError, RecursionError):
        return {}
