"""Decoding the few arguments the rules need, on demand: fds, paths, flags, strings."""

from __future__ import annotations

import re
from typing import Optional

_FD = re.compile(rb"\s*(-?\d+|AT_FDCWD)(?:<((?:[^>\\]|\\.)*)>)?")
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)")
_OCTAL = frozenset(bytes([c]) for c in b"01234567")
MAX_DIGITS = 20  # a 64-bit value has at most 20 digits; longer numbers are mangled text
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


_PLAIN_FD = re.compile(rb"\d{1,10}(?=[<,]|$)").match


_FD_HEADS: dict = {}  # first arguments seen lately (`3</usr/lib/libc.so.6>`) -> their fd: reads and writes repeat them
_MISSING = object()


def fd_number(arg: bytes) -> Optional[int]:
    """The leading fd of `3`, `3, ...` or `3</x>, ...` without decoding its -y note; None for anything
    else (AT_FDCWD, a negative or mangled number: fd() says what those are)."""
    comma = arg.find(b",")
    head = arg if comma < 0 else arg[:comma]
    num = _FD_HEADS.get(head, _MISSING)
    if num is _MISSING:
        m = _PLAIN_FD(arg)
        num = int(m.group()) if m is not None else None
        if len(head) <= 512 and head[-1:] != b"\n":  # (a newline is the one thing $ reads differently in head)
            if len(_FD_HEADS) >= 4096:
                _FD_HEADS.clear()
            _FD_HEADS[head] = num
    return num  # type: ignore[return-value]


def fd(arg: bytes) -> tuple:
    """(fd number or None for AT_FDCWD, -y annotation or None) from `3`, `3</tmp/x>`, `AT_FDCWD</home>`."""
    lt = arg.find(b"<")
    comma = arg.find(b",")
    if lt < 0 or 0 <= comma < lt:
        head = arg if comma < 0 else arg[:comma]
        if head.isdigit() and len(head) <= MAX_DIGITS:
            return int(head), None  # the common case without -y: no regex
    else:
        head = arg[:lt]
        gt = arg.find(b">", lt)
        if arg[gt - 1:gt] == b"-":  # `TCP:[a:1->b:2]`: the arrow is not the end of -yy's note
            gt = arg.find(b"]>", gt) + 1 or gt
        if head.isdigit() and len(head) <= MAX_DIGITS and gt > 0 and arg.find(b"\\", lt, gt) < 0:
            return int(head), _note(arg[lt + 1:gt])  # `3</tmp/x>`, the common case with -y
    m = _FD.match(arg)
    if not m:
        return None, None
    text = m.group(1)
    if len(text) > MAX_DIGITS:
        return None, None  # not a descriptor any kernel hands out: a mangled line
    num = None if text == b"AT_FDCWD" else int(text)
    note = unescape(m.group(2)).decode("utf-8", "backslashreplace") if m.group(2) is not None else None
    return num, note


_NOTES: dict = {}  # -y annotations seen lately, decoded: the same few paths and sockets recur


def _note(raw: bytes) -> str:
    note = _NOTES.get(raw)
    if note is None:
        if len(_NOTES) >= 4096:
            _NOTES.clear()
        note = _NOTES[raw] = raw.decode("utf-8", "backslashreplace")
    return note


def unescape(data: bytes) -> bytes:
    if 92 not in data:  # a backslash (`int in bytes`: `bytes in bytes` is slow in CPython 3.11)
        return data

    def repl(m):
        e = m.group(1)
        if len(e) == 3 and e[:1] == b"x":
            return bytes([int(e[1:], 16)])
        if e[:1] in _OCTAL:
            return bytes([int(e, 8) & 0xFF])
        return _SIMPLE.get(e, e)  # also `\x` without two hex digits and `\8`: kept as written

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
    return unescape(body).decode("utf-8", "backslashreplace")


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
