"""Decoding the few arguments the rules need, on demand: fds, paths, flags, strings."""

from __future__ import annotations

import re
from typing import Optional

_FD = re.compile(rb"\s*(-?\d+|AT_FDCWD)(?:<((?:[^>\\]|\\.)*)>)?")
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)")
_SIMPLE = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f", b'"': b'"', b"\\": b"\\"}


_OPENAT = re.compile(rb'([^,]+), ("(?:[^"\\]|\\.)*"(?:\.\.\.)?), ([^,]+)(?:, (.*))?$')


def split_open(args: bytes) -> list:
    """openat's (dirfd, path, flags[, mode]) by one regex: opens are the most common call we decode."""
    m = _OPENAT.match(args)
    if m is None:
        return split(args)
    return [g for g in m.groups() if g is not None]


def split(args: bytes) -> list:
    """Split an argument list at top-level commas, respecting quotes and brackets."""
    out, depth, start, i, n = [], 0, 0, 0, len(args)
    in_str = False
    while i < n:
        c = args[i]
        if in_str:
            if c == 0x5C:  # backslash
                i += 2
                continue
            if c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x28, 0x5B, 0x7B):  # ( [ {
            depth += 1
        elif c in (0x29, 0x5D, 0x7D):
            depth -= 1
        elif c == 0x2C and depth == 0:
            out.append(args[start:i].strip())
            start = i + 1
        i += 1
    tail = args[start:].strip()
    if tail or out:
        out.append(tail)
    return out


def fd(arg: bytes) -> tuple:
    """(fd number or None for AT_FDCWD, -y annotation or None) from `3`, `3</tmp/x>`, `AT_FDCWD</home>`."""
    m = _FD.match(arg)
    if not m:
        return None, None
    num = None if m.group(1) == b"AT_FDCWD" else int(m.group(1))
    note = unescape(m.group(2)).decode("utf-8", "surrogateescape") if m.group(2) is not None else None
    return num, note


def unescape(data: bytes) -> bytes:
    if b"\\" not in data:
        return data

    def repl(m):
        e = m.group(1)
        if e[:1] == b"x":
            return bytes([int(e[1:], 16)])
        if e[:1].isdigit():
            return bytes([int(e, 8) & 0xFF])
        return _SIMPLE.get(e, e)

    return _ESCAPE.sub(repl, data)


def string(arg: bytes) -> Optional[str]:
    """The value of a quoted string argument; None if it is not one (e.g. a pointer)."""
    arg = arg.strip()
    if not arg.startswith(b'"'):
        return None
    end = len(arg)
    if arg.endswith(b'"...'):
        end -= 3
    body = arg[1:end - 1] if end >= 2 and arg[end - 1:end] == b'"' else arg[1:]
    return unescape(body).decode("utf-8", "surrogateescape")


def render_strace_parser_args(args) -> str:
    """strace-parser's argument tree back to strace's text, for its JSONL input format."""
    parts = []
    for arg in args:
        kind = arg.get("type")
        if kind == "other":
            parts.append(arg["value"])
        elif kind == "braced":
            parts.append("{" + render_strace_parser_args(arg["value"]) + "}")
        elif kind == "bracketed":
            parts.append("[" + render_strace_parser_args(arg["value"]) + "]")
        elif kind == "key_value":
            parts.append(f"{arg['key']}={render_strace_parser_args([arg['value']])}")
        elif kind == "function":
            parts.append(f"{arg['name']}({render_strace_parser_args(arg['args'])})")
        elif kind == "sigset":
            parts.append(("~" if arg.get("negated") else "") + "[" + " ".join(arg["args"]) + "]")
        else:
            raise ValueError(f"unknown argument type {kind!r}")
    return ", ".join(parts)
