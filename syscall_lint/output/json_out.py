"""The contract's JSON object."""

from __future__ import annotations

import json
import math

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
    doc = document(report)
    out = []
    try:
        _indented(doc, "\n", out)
    except _Unusual:
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    out.append("\n")
    return "".join(out)


class _Unusual(Exception):
    """A value _indented leaves to json.dumps (a float, a non-string key, another type)."""


_STRING = json.encoder.encode_basestring  # the C encoder json.dumps uses with ensure_ascii=False


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise _Unusual  # json.dumps writes NaN and Infinity
    return float.__repr__(value)


_SCALARS = {type(None): lambda v: "null", bool: lambda v: "true" if v else "false", int: int.__repr__,
            float: _float, str: _STRING}


def _indented(value, newline: str, out: list) -> None:
    """Append json.dumps(value, indent=2, ensure_ascii=False) to `out` in pieces. With an indent
    json.dumps runs its pure-Python encoder, a generator per container: an audit of /usr renders
    ~1.5 MB, ~0.07 s in the main process after the workers are done."""
    kind = type(value)
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        out.append(scalar(value))
        return
    if kind is dict:
        items, opening, closing = value.items(), "{", "}"
    elif kind is list or kind is tuple:
        items, opening, closing = value, "[", "]"
    else:
        raise _Unusual
    if not value:
        out.append(opening + closing)
        return
    inner = newline + "  "
    separator = opening + inner
    append = out.append
    for item in items:
        if kind is dict:
            key, item = item
            if type(key) is not str:
                raise _Unusual
            append(separator + _STRING(key) + ": ")
        else:
            append(separator)
        separator = "," + inner
        scalar = _SCALARS.get(type(item))
        if scalar is not None:
            append(scalar(item))
        else:
            _indented(item, inner, out)
    append(newline + closing)
