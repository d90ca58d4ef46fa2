"""The JSON report's indented writer (output/json_out._indented, used because json.dumps with an
indent runs its slow pure-Python encoder) writes what json.dumps(indent=2, ensure_ascii=False)
writes, and leaves what it does not model to json.dumps."""

from __future__ import annotations

import json
import random

from syscall_lint.output import json_out
from syscall_lint.report import Report

STRINGS = ["", "plain", "quote \" and \\ backslash", "tab\tnew\nline", "\x00\x1f\x7f", "é ü 中文 🦀", "\ud800", "</script>"]


def _value(rng, depth):
    pick = rng.randrange(10 if depth < 4 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 7, 1 << 70, -(1 << 64)])
    if pick == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e300, 3.141592653589793, -2e-310])
    if pick in (4, 5):
        return rng.choice(STRINGS)
    if pick in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 8:
        return tuple(_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    return {rng.choice(STRINGS) + str(i): _value(rng, depth + 1) for i in range(rng.randrange(4))}


def _written(doc) -> str:
    out = []
    json_out._indented(doc, "\n", out)
    return "".join(out)


def test_random_documents_are_written_as_json_dumps_writes_them():
    rng = random.Random(30)
    for _ in range(3000):
        doc = _value(rng, 0)
        assert _written(doc) == json.dumps(doc, indent=2, ensure_ascii=False)


def test_values_it_does_not_model_go_to_json_dumps(monkeypatch):
    """Non-finite floats, keys that are not strings and other types: render gives json.dumps' text."""
    for extra in ({"rate": float("nan")}, {"big": float("inf")}, {"map": {1: "a", None: "b"}}, {"flag": _Flag.ON}):
        report = Report(sources={"elf"})
        report.extra = dict(extra)
        expected = json.dumps(json_out.document(report), indent=2, ensure_ascii=False) + "\n"
        assert json_out.render(report) == expected


class _Flag(int):
    ON = None


_Flag.ON = _Flag(1)
