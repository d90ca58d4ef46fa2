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


class Encoded(list):
    """The items of a top-level list, each already encoded as `encode` does. An audit's workers
    encode their binaries' summaries in parallel; here they are only placed (encoding 1,400
    profiles with the indenting encoder, which has no C version, took the main process 0.05 s)."""


def encode(item) -> str:
    return json.dumps(item, indent=2, ensure_ascii=False)


def render(report) -> str:
    doc = document(report)
    placed = {}
    for key, value in doc.items():
        if isinstance(value, Encoded):
            # a placeholder no real value can equal: paths and messages hold no NUL
            placed[key] = doc[key] = f"\0encoded {key}"
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    for key, mark in placed.items():
        items = report.extra[key]
        # as json.dumps(indent=2) lays out a list under a top-level key: items indented 4, `]` 2
        body = "[\n    " + ",\n    ".join(item.replace("\n", "\n    ") for item in items) + "\n  ]" if items else "[]"
        text = text.replace(json.dumps(mark), body, 1)
    return text + "\n"
