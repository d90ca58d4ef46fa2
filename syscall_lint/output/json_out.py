"""The contract's JSON object."""

from __future__ import annotations

import json

from syscall_lint import __version__


def document(report) -> dict:
    doc = {
        "tool": {"name": "syscall-lint", "version": __version__},
        "findings": [f.to_json() for f in report.findings],
        "errors": [e.to_json() for e in report.errors],
    }
    if report.extra:
        doc.update(report.extra)
    return doc


def render(report) -> str:
    return json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"
