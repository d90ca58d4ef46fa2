"""A streaming parser of strace's text output.

It reads logs as strace writes them: `-f` pid prefixes (`1234 ` and `[pid 1234] `), `-ff` per-pid
files, `-t/-tt/-ttt/-r` timestamps, `-T` durations, `-y/-yy` fd annotations, `-xx` and truncated
strings, `<unfinished ...>`/`<... resumed>` pairs, signals, exits, errors and restarts. It works on
bytes, one line at a time, and keeps only the unfinished halves per pid: memory is flat however long
the log. Arguments are not decoded here; rules decode what they need (see args.py).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
from dataclasses import dataclass
from typing import Iterator, Optional

MAX_LINE = 1 << 20  # longer lines are counted as malformed and skipped, never held whole
MAX_REPORTED_MALFORMED = 5
_UNSET = object()

# [pid N] or "N " prefix, then an optional timestamp, then the body.
_HEAD = re.compile(rb" *(?:\[pid +(\d+)\] |(\d+) +)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) +)?")
# The whole line in one match for the common case: prefix, timestamp, complete call.
_FULL = re.compile(rb" *(?:\[pid +(\d+)\] |(\d+) +)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) +)?"
                   rb"([a-z_][a-z0-9_]*)\((.*)\) += (.*?)(?: <(\d+\.\d+)>)?$")
_UNFINISHED = re.compile(rb"([a-z_][a-z0-9_]*)\((.*?) *<unfinished \.\.\.>$")
_RESUMED = re.compile(rb"<\.\.\. ([a-z_][a-z0-9_]*) resumed>(.*?)\) += (.*?)(?: <(\d+\.\d+)>)?$")
_RESUMED_NORESULT = re.compile(rb"<\.\.\. ([a-z_][a-z0-9_]*) resumed>(.*)$")
_EXIT = re.compile(rb"\+\+\+ (?:exited with (-?\d+)|killed by (\w+)(?: \(core dumped\))?|superseded by execve in pid (\d+)) \+\+\+$")
_RETVAL = re.compile(rb"(0x[0-9a-fA-F]+|-?\d+|\?)")
_ERRNO = re.compile(rb"-?\d+ ([A-Z][A-Z0-9_]+)")


class Call:
    """One syscall. `ret` and `ts` are decoded on first use: most calls are never asked."""

    __slots__ = ("line", "pid", "name", "args", "result", "_ret", "_ts", "_dur")

    def __init__(self, line, pid, name, args, result, ret=_UNSET, ts=None, duration=None):
        self.line = line
        self.pid = pid
        self.name = name
        self.args = args
        self.result = result  # the text after "= ", e.g. b"3</tmp/x>" or b"-1 ENOENT (...)"
        self._ret = ret
        self._ts = ts  # bytes as logged, or a float
        self._dur = duration

    @property
    def ret(self) -> Optional[int]:
        if self._ret is _UNSET:
            self._ret = _ret(self.result)
        return self._ret

    @property
    def ts(self) -> Optional[float]:
        if self._ts is not None and not isinstance(self._ts, float):
            self._ts = _timestamp(self._ts)
        return self._ts

    @property
    def duration(self) -> Optional[float]:
        if self._dur is not None and not isinstance(self._dur, float):
            self._dur = float(self._dur)
        return self._dur

    def __repr__(self):
        return f"Call(line={self.line}, pid={self.pid}, {self.name}({self.args!r}) = {self.result!r})"

    @property
    def errno(self) -> Optional[str]:
        m = _ERRNO.match(self.result)
        return m.group(1).decode() if m and self.ret is not None and self.ret < 0 else None


@dataclass
class Exit:
    __slots__ = ("line", "pid", "status", "signal")
    line: int
    pid: int
    status: Optional[int]
    signal: Optional[str]


@dataclass
class Signal:
    __slots__ = ("line", "pid", "text")
    line: int
    pid: int
    text: bytes


class Stats:
    def __init__(self):
        self.lines = 0
        self.calls = 0
        self.malformed = 0
        self.malformed_examples: list = []
        self.bytes = 0

    def bad(self, lineno: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < MAX_REPORTED_MALFORMED:
            self.malformed_examples.append((lineno, reason))


def _ret(result: bytes) -> Optional[int]:
    m = _RETVAL.match(result)
    if not m or m.group(1) == b"?":
        return None
    text = m.group(1)
    return int(text, 16) if text.startswith(b"0x") else int(text)


def open_log(path: str):
    """A binary stream for a path, '-' (stdin), or a gzip file (by magic number)."""
    if path == "-":
        return sys.stdin.buffer
    fh = open(path, "rb", buffering=1 << 20)  # big reads: fewer refills under readline
    magic = fh.peek(2)[:2] if hasattr(fh, "peek") else b""
    if magic == b"\x1f\x8b":
        return io.BufferedReader(gzip.GzipFile(fileobj=fh))
    return fh


def lines(stream) -> Iterator[tuple]:
    """(line number, bytes without newline); overlong lines come back as None, read in bounded pieces."""
    lineno = 0
    readline = stream.readline
    while True:
        raw = readline(MAX_LINE)
        if not raw:
            return
        lineno += 1
        if raw[-1:] != b"\n" and len(raw) >= MAX_LINE:
            while True:  # skip the rest of an overlong line without holding it
                more = readline(MAX_LINE)
                if not more or more[-1:] == b"\n":
                    break
            yield lineno, None
            continue
        yield lineno, raw.rstrip(b"\r\n")


def parse(stream, stats: Stats, default_pid: int = 0, wanted=None, watched=None) -> Iterator:
    """Yield Call, Exit and Signal events in log order, with unfinished/resumed halves merged.

    With `wanted` (a set of syscall names as bytes), complete calls of other names are counted but
    not yielded, unless their pid is in `watched` (a set the consumer may change while it reads).
    """
    pending: dict = {}  # pid -> (line, name, args prefix, ts)
    head_match = _HEAD.match
    full_match = _FULL.match
    readline = stream.readline
    lineno = 0
    nbytes = calls = 0
    try:
        while True:
            raw = readline(MAX_LINE)
            if not raw:
                break
            lineno += 1
            if raw[-1:] == b"\n":
                raw = raw[:-1]
            elif len(raw) >= MAX_LINE:
                _skip_rest(readline)
                stats.bad(lineno, f"line longer than {MAX_LINE} bytes")
                continue
            nbytes += len(raw) + 1
            if wanted is not None and not watched:
                # the common cases, decided without a regex: a call of a syscall no rule needs,
                # complete, or either half of an unfinished one (no other pid's state depends on it)
                r = raw.find(b"<... ")
                if r >= 0:
                    e = raw.find(b" resumed>", r)
                    if e > 0 and raw[r + 5:e] not in wanted:
                        calls += 1
                        continue
                else:
                    i = raw.find(b"(")
                    if i > 0:
                        name = raw[raw.rfind(b" ", 0, i) + 1:i]
                        if name not in wanted and b"--- " not in raw and name.replace(b"_", b"").isalnum() and (
                                b") = " in raw or raw.endswith(b"<unfinished ...>")):
                            if b") = " in raw:
                                calls += 1
                            continue
            m = full_match(raw)
            if m is not None and not raw.endswith(b"<unfinished ...>"):
                calls += 1
                if wanted is not None and m.group(4) not in wanted and not watched:
                    continue  # the common case: a call no rule needs, skipped before decoding anything
                pid_a, pid_b, ts, name, args, result, dur = m.groups()
                pid = int(pid_a or pid_b) if (pid_a or pid_b) else default_pid
                if wanted is not None and name not in wanted and pid not in watched:
                    continue
                yield Call(lineno, pid, name.decode(), args, result, _UNSET, ts, dur)
                continue
            ev = _slow_line(raw, lineno, head_match, pending, stats, default_pid, wanted, watched)
            if ev is not None:
                yield ev
    finally:
        stats.lines += lineno
        stats.bytes += nbytes
        stats.calls += calls


def _skip_rest(readline) -> None:
    """Skip the rest of an overlong line without holding it."""
    while True:
        more = readline(MAX_LINE)
        if not more or more[-1:] == b"\n":
            return


def _slow_line(raw, lineno, head_match, pending, stats, default_pid, wanted, watched):
    """Everything but a complete call on one line: unfinished/resumed halves, signals, exits, junk.
    Returns the event, or None."""
    head = head_match(raw)
    pid_a, pid_b, ts = head.groups()
    pid = int(pid_a or pid_b) if (pid_a or pid_b) else default_pid
    body = raw[head.end():]
    first = body[:1]
    if body.endswith(b"<unfinished ...>"):
        u = _UNFINISHED.match(body)
        if u is None:
            stats.bad(lineno, "unreadable unfinished call")
            return None
        if wanted is None or u.group(1) in wanted or pid in watched:
            pending[pid] = (lineno, u.group(1), u.group(2), ts)
        else:
            pending.pop(pid, None)
    elif first == b"<":
        r = _RESUMED.match(body)
        before = pending.pop(pid, None)
        if r is None:
            if not _RESUMED_NORESULT.match(body):
                stats.bad(lineno, "unreadable resumed call")
            return None  # a resumed call cut off by the process's exit has no result to use
        name, rest, result, dur = r.groups()
        stats.calls += 1
        if wanted is not None and name not in wanted and pid not in watched:
            return None
        if before is None or before[1] != name:
            before = (lineno, name, b"", ts)  # strace lost the first half (attached mid-call)
        return Call(before[0], pid, name.decode(), before[2] + rest, result, _UNSET, before[3] or ts, dur)
    elif first == b"+":
        e = _EXIT.match(body)
        if e is None:
            stats.bad(lineno, "unreadable exit line")
            return None
        status, sig, _ = e.groups()
        pending.pop(pid, None)
        return Exit(lineno, pid, int(status) if status is not None else None, sig.decode() if sig else None)
    elif first == b"-" and body.startswith(b"--- ") and body.endswith(b" ---"):
        return Signal(lineno, pid, body[4:-4])
    elif not (body.startswith(b"strace: ") or not body.strip()):  # strace's own messages, blank lines
        stats.bad(lineno, "truncated or not an strace line" if b"(" in body else "not an strace line")
    return None


def _timestamp(text: bytes) -> float:
    if b":" in text:
        h, m, s = text.split(b":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    return float(text)


def parse_jsonl(stream, stats: Stats) -> Iterator:
    """strace-parser's JSON (one object per line) → the same events."""
    from syscall_lint.strace.args import render_strace_parser_args

    for lineno, raw in lines(stream):
        stats.lines += 1
        if raw is None:
            stats.bad(lineno, "line too long")
            continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if obj.get("type") == "alert":
                yield Exit(lineno, int(obj.get("pid", 0)), int(obj["result"]), None)
                continue
            name = obj["name"]
            args = render_strace_parser_args(obj["args"]).encode()
            result = str(obj["result"]).strip().encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            stats.bad(lineno, "not a strace-parser JSON object")
            continue
        stats.calls += 1
        yield Call(lineno, int(obj.get("pid", 0)), name, args, result, _ret(result), obj.get("timestamp"), None)
