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

# [pid N] or "N " prefix, then an optional timestamp, then the body.
_HEAD = re.compile(rb" *(?:\[pid +(\d+)\] |(\d+) +)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) +)?")
# name(args) = result [<duration>]: the fast path for a complete call.
_CALL = re.compile(rb"([a-z_][a-z0-9_]*)\((.*)\) += (.*?)(?: <(\d+\.\d+)>)?$")
_UNFINISHED = re.compile(rb"([a-z_][a-z0-9_]*)\((.*?) *<unfinished \.\.\.>$")
_RESUMED = re.compile(rb"<\.\.\. ([a-z_][a-z0-9_]*) resumed>(.*?)\) += (.*?)(?: <(\d+\.\d+)>)?$")
_RESUMED_NORESULT = re.compile(rb"<\.\.\. ([a-z_][a-z0-9_]*) resumed>(.*)$")
_EXIT = re.compile(rb"\+\+\+ (?:exited with (-?\d+)|killed by (\w+)(?: \(core dumped\))?|superseded by execve in pid (\d+)) \+\+\+$")
_RETVAL = re.compile(rb"(0x[0-9a-fA-F]+|-?\d+|\?)")
_ERRNO = re.compile(rb"-?\d+ ([A-Z][A-Z0-9_]+)")


@dataclass
class Call:
    __slots__ = ("line", "pid", "name", "args", "result", "ret", "ts", "duration")
    line: int
    pid: int
    name: str
    args: bytes
    result: bytes  # the text after "= ", e.g. b"3</tmp/x>" or b"-1 ENOENT (No such file or directory)"
    ret: Optional[int]  # the integer return value, None for "?"
    ts: Optional[float]
    duration: Optional[float]

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
    fh = open(path, "rb")
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


def parse(stream, stats: Stats, default_pid: int = 0) -> Iterator:
    """Yield Call, Exit and Signal events in log order, with unfinished/resumed halves merged."""
    pending: dict = {}  # pid -> (line, name, args prefix, ts)
    head_match = _HEAD.match
    call_match = _CALL.match
    for lineno, raw in lines(stream):
        stats.lines += 1
        if raw is None:
            stats.bad(lineno, f"line longer than {MAX_LINE} bytes")
            continue
        stats.bytes += len(raw) + 1
        head = head_match(raw)
        pid_a, pid_b, ts_text = head.groups()
        pid = int(pid_a or pid_b) if (pid_a or pid_b) else default_pid
        body = raw[head.end():]
        ts = _timestamp(ts_text) if ts_text else None
        m = call_match(body)
        if m is not None:
            name, args, result, dur = m.groups()
            if body.endswith(b"<unfinished ...>"):
                m = None  # "= " inside an unfinished call's arguments; handled below
            else:
                stats.calls += 1
                yield Call(lineno, pid, name.decode(), args, result, _ret(result), ts,
                           float(dur) if dur else None)
                continue
        first = body[:1]
        if first == b"<":
            r = _RESUMED.match(body)
            before = pending.pop(pid, None)
            if r is None:
                if _RESUMED_NORESULT.match(body):
                    continue  # resumed but cut off by the process's exit: no result to use
                stats.bad(lineno, "unreadable resumed call")
                continue
            name, rest, result, dur = r.groups()
            if before is None or before[1] != name:
                # strace can lose the unfinished half (attach mid-call); still a call
                before = (lineno, name, b"", ts)
            stats.calls += 1
            yield Call(before[0], pid, name.decode(), before[2] + rest, result, _ret(result), before[3] or ts,
                       float(dur) if dur else None)
        elif first == b"+":
            e = _EXIT.match(body)
            if e is None:
                stats.bad(lineno, "unreadable exit line")
                continue
            status, sig, _ = e.groups()
            pending.pop(pid, None)
            yield Exit(lineno, pid, int(status) if status is not None else None, sig.decode() if sig else None)
        elif first == b"-":
            if body.startswith(b"--- ") and body.endswith(b" ---"):
                yield Signal(lineno, pid, body[4:-4])
            else:
                stats.bad(lineno, "not an strace line")
        elif body.endswith(b"<unfinished ...>"):
            u = _UNFINISHED.match(body)
            if u is None:
                stats.bad(lineno, "unreadable unfinished call")
                continue
            pending[pid] = (lineno, u.group(1), u.group(2), ts)
        elif body.startswith(b"strace: ") or not body.strip():
            continue  # strace's own messages ("Process N attached") and blank lines
        elif body.endswith(b"= ?") and call_match(body + b" ") is None:
            stats.bad(lineno, "not an strace line")
        else:
            stats.bad(lineno, "truncated or not an strace line" if b"(" in body else "not an strace line")


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
