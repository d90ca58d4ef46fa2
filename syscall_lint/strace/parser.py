"""A streaming parser of strace's text output.

It reads logs as strace writes them: `-f` pid prefixes (`1234 ` and `[pid 1234] `), `-ff` per-pid
files, `-t/-tt/-ttt/-r` timestamps, `-T` durations, `-y/-yy` fd annotations, `-xx` and truncated
strings, `<unfinished ...>`/`<... resumed>` pairs, signals, exits, errors and restarts. It works on
bytes, one line at a time, and keeps only the unfinished halves per pid: memory is flat however long
the log. Arguments are not decoded here; rules decode what they need (see args.py).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Iterator, Optional

from syscall_lint.inputs import open_regular
from syscall_lint.strace.state import evict_oldest

MAX_LINE = 1 << 20  # longer lines are counted as malformed and skipped, never held whole
MAX_REPORTED_MALFORMED = 5
_UNSET = object()

# [pid N] or "N " prefix, then an optional timestamp, then the body.
_HEAD = re.compile(rb" *(?:\[pid +(\d{1,10})\] |(\d{1,10}) +)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) +)?")
_UNFINISHED = re.compile(rb"([a-z_][a-z0-9_]*)\((.*?) *<unfinished \.\.\.>$")
_RESUMED = re.compile(rb"<\.\.\. ([a-z_][a-z0-9_]*) resumed>(.*?)\) += (.*?)(?: <(\d+\.\d+)>)?$")
_RESUMED_NORESULT = re.compile(rb"<\.\.\. ([a-z_][a-z0-9_]*) resumed>(.*)$")
_EXIT = re.compile(rb"\+\+\+ (?:exited with (-?\d+)|killed by (\w+)(?: \(core dumped\))?|superseded by execve in pid (\d+)) \+\+\+$")
# The prefix alone (everything before the syscall's name), for the split in parse().
_PREFIX = re.compile(rb" *(?:\[pid +(\d{1,10})\] |(\d{1,10}) +)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) +)?")
_NO_PREFIX = _PREFIX.fullmatch(b"")
_DURATION = re.compile(rb"\d+\.\d+").fullmatch
_UNFINISHED_END = b"<unfinished ...>"
_RETVAL = re.compile(rb"(0x[0-9a-fA-F]+|-?\d+|\?)")
_ERRNO = re.compile(rb"-?\d+ ([A-Z][A-Z0-9_]+)")
MAX_RET_DIGITS = 24  # 64-bit values in decimal or hex; anything longer is a mangled line, not a number
MAX_PENDING = 1 << 16  # unfinished calls held at once (one per pid); the oldest is dropped beyond


class Call:
    """One syscall. `ret` is decoded at once (every rule asks for it); `ts` and `duration` on first use."""

    __slots__ = ("line", "pid", "name", "args", "result", "ret", "_ts", "_dur")

    def __init__(self, line, pid, name, args, result, ret=_UNSET, ts=None, duration=None):
        self.line = line
        self.pid = pid
        self.name = name
        self.args = args
        self.result = result  # the text after "= ", e.g. b"3</tmp/x>" or b"-1 ENOENT (...)"
        self.ret: Optional[int] = _ret(result) if ret is _UNSET else ret
        self._ts = ts  # bytes as logged, or a float
        self._dur = duration

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


@dataclass(slots=True)
class Exit:
    line: int
    pid: int
    status: Optional[int]
    signal: Optional[str]


@dataclass(slots=True)
class Signal:
    line: int
    pid: int
    text: bytes


class Stats:
    def __init__(self):
        self.lines = 0
        self.calls = 0
        self.malformed = 0
        self.malformed_examples: list = []
        self.dropped_unfinished = 0  # unfinished halves forgotten to keep memory bounded

    def bad(self, lineno: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < MAX_REPORTED_MALFORMED:
            self.malformed_examples.append((lineno, reason))


def _ret(result: bytes) -> Optional[int]:
    end = result.find(b" ")
    text = result if end < 0 else result[:end]
    if text.isdigit() and len(text) <= MAX_RET_DIGITS:
        return int(text)  # the common case (`3`, `0 (Timeout)`) without a regex
    end = text.find(b"<")
    if end > 0 and text[:end].isdigit() and end <= MAX_RET_DIGITS:
        return int(text[:end])  # an fd with its -y path: `3</etc/passwd>`
    m = _RETVAL.match(result)
    if not m or m.group(1) == b"?":
        return None
    text = m.group(1)
    if len(text) > MAX_RET_DIGITS:
        return None
    return int(text, 16) if text.startswith(b"0x") else int(text)


def open_log(path: str):
    """A binary stream for a path, '-' (stdin), or a gzip file (by magic number).

    Only regular files are opened (a FIFO would block, /dev/zero never ends): InputRefused otherwise.
    """
    if path == "-":
        return sys.stdin.buffer
    fh = open_regular(path, buffering=READ_CHUNK)  # parse() reads READ_CHUNK at a time: each read goes whole
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


class _EveryName:
    """`wanted` when the caller wants every call: contains every name."""

    def __contains__(self, name) -> bool:
        return True


EVERY_NAME = _EveryName()


def parse(stream, stats: Stats, default_pid: int = 0, wanted=None, watched=None) -> Iterator:
    """Yield Call, Exit and Signal events in log order, with unfinished/resumed halves merged.

    With `wanted` (a set of syscall names as bytes), calls of other names are counted but not
    yielded, unless their pid is in `watched` (a collection the consumer may change while it reads).

    A complete call is split with bytes methods, not a regex over the whole line: one partition at the
    first "(", one at the last space before it, one rfind of the last " = "; a name's verdict (wanted,
    skipped, not a name) is looked up once per name, and the common `-f` prefix (`1234  1700000000.5 `)
    is read without a regex (_PREFIX decides the others). The counting of a call no rule needs is what
    most lines cost, so that path makes the fewest calls into CPython. (Single bytes are tested as ints,
    `60 in left`: in CPython 3.11 `b"<" in left` costs a TypeError raised and cleared inside.)
    """
    pending: dict = {}  # pid -> (line, name, args prefix, ts)
    ts: Optional[bytes]  # a timestamp as logged (Call.ts decodes it when asked)
    names: dict[bytes, str] = {}  # syscall names as bytes -> str, decoded once
    kinds: dict[bytes, int] = {}  # name -> WANTED, SKIPPED (a syscall's name no rule needs) or NOT_A_NAME
    pid_tokens: dict[bytes, int] = {}  # a line's first word -> the pid it is, or -1 (while a pid is watched)
    head_match = _HEAD.match
    prefix_match = _PREFIX.fullmatch
    unfinished = _UNFINISHED_END
    if wanted is None:
        wanted = EVERY_NAME
    if watched is None:
        watched = ()
    lineno = calls = 0
    try:
        for block in _blocks(stream):
            if block is None:
                lineno += 1
                stats.bad(lineno, f"line longer than {MAX_LINE} bytes")
                continue
            for raw in block:
                lineno += 1
                # One partition at the first "(" and one at the last space before it: the fewest calls for
                # the common line. (A blank line and a stack frame of `strace -k`, " > lib(func+0x1) [0x2]",
                # end in _slow_line.)
                left, paren, rest = raw.partition(b"(")
                if paren and left and rest[-16:] == unfinished:
                    i = len(left)
                    sp = raw.rfind(b" ", 0, i)
                    name = raw[sp + 1:i]
                    if name not in wanted:
                        if not watched:
                            continue  # the first half of a call no rule needs (its other half is skipped too)
                        first = raw[:raw.find(b" ")]  # while a pid is watched: a `-f -o` line of another pid
                        first_pid = pid_tokens.get(first)
                        if first_pid is None:
                            first_pid = _pid_token(pid_tokens, first)
                        if first_pid >= 0 and first_pid not in watched:
                            if pending:
                                pending.pop(first_pid, None)  # as the full path below does for an unwatched pid
                            continue
                    head = _pid_ts(raw, sp + 1, default_pid) if sp >= 0 else (default_pid, None)
                    if head is not None and name.replace(b"_", b"").isalnum():
                        pid, ts = head
                        if name in wanted or pid in watched:
                            if len(pending) >= MAX_PENDING and pid not in pending:
                                # forget the oldest: their resumed halves will be read without their first halves
                                stats.dropped_unfinished += evict_oldest(pending, pending.__delitem__)
                            pending[pid] = (lineno, name, raw[i + 1:raw.rfind(unfinished)].rstrip(b" "), ts)
                        else:
                            pending.pop(pid, None)
                        continue
                elif paren and left and (60 not in left or left.find(b"<... ") < 0):  # 60: "<" (an int: `bytes in
                    # bytes` costs an exception inside CPython 3.11, `int in bytes` and find() do not)
                    prefix, space, name = left.rpartition(b" ")
                    j = rest.rfind(b" = ")  # the last ` = `, counted from after the "("
                    if j >= 0:
                        kind = kinds.get(name)
                        if kind is None:  # judged once per name: a few hundred names make up a log
                            kind = _name_kind(kinds, name, wanted)
                        if kind == _SKIPPED:
                            if not watched:
                                calls += 1
                                continue  # the common case: a call no rule needs, skipped before decoding anything
                            first = raw[:raw.find(b" ")]
                            first_pid = pid_tokens.get(first)
                            if first_pid is None:
                                first_pid = _pid_token(pid_tokens, first)
                            if first_pid >= 0 and first_pid not in watched:
                                calls += 1
                                continue  # `-f -o` lines start with the pid: not a watched one
                        elif kind == _NOT_A_NAME:
                            j = -1  # the slow path says what the line is
                    if j >= 0:
                        i = len(left)
                        j += i + 1
                        k = j
                        while raw[k - 1] == 32:  # strace pads short calls: `close(3)        = 0`
                            k -= 1
                        if raw[k - 1] != 41:  # ")"
                            j = -1
                        elif not space:
                            pid = default_pid
                            ts = None
                        else:
                            # `-f` with a timestamp, `1234  1700000000.123456 `, read without a regex
                            pid_text, _, stamp = prefix.partition(b" ")
                            stamp = stamp.lstrip(b" ")
                            whole, dot, fraction = stamp.partition(b".")
                            if (pid_text.isdigit() and len(pid_text) <= 10 and dot and whole.isdigit()
                                    and fraction.isdigit()):
                                pid = int(pid_text)
                                ts = stamp
                            else:
                                match = prefix_match(raw, 0, len(prefix) + 1)
                                if match is None:
                                    j = -1
                                else:
                                    pid_a, pid_b, ts = match.groups()
                                    pid = int(pid_a or pid_b) if (pid_a or pid_b) else default_pid
                        if j >= 0:
                            calls += 1
                            if kind != _WANTED and pid not in watched:
                                continue
                            result = raw[j + 3:]  # _result_and_duration, inline: this is the hottest path
                            dur = None
                            if result[-1:] == b">":
                                d = result.rfind(b" <")
                                if d >= 0:
                                    # `-T`: " <0.000012>", checked as _DURATION does, without a regex call
                                    whole, dot, fraction = result[d + 2:-1].partition(b".")
                                    if dot and whole.isdigit() and fraction.isdigit():
                                        dur = result[d + 2:-1]
                                        result = result[:d]
                            if result[-1:] == b" ":
                                result = result.rstrip()
                            yield Call(lineno, pid, names.get(name) or _name_text(names, name), raw[i + 1:k - 1],
                                       result, int(result) if result.isdigit() and len(result) <= MAX_RET_DIGITS
                                       else _ret(result), ts, dur)
                            continue
                elif paren and left or not raw.endswith(unfinished):
                    r = raw.find(b"<... ")
                    e = raw.find(b" resumed>", r) if r >= 0 else -1
                    if e > 0:
                        name = raw[r + 5:e]
                        if name not in wanted:
                            if not watched:
                                calls += 1
                                continue
                            first = raw[:raw.find(b" ")]  # as for the first half above
                            first_pid = pid_tokens.get(first)
                            if first_pid is None:
                                first_pid = _pid_token(pid_tokens, first)
                            if first_pid >= 0 and first_pid not in watched:
                                calls += 1
                                if pending:
                                    pending.pop(first_pid, None)
                                continue
                        # the second half of an unfinished call, split like a complete one
                        j = raw.rfind(b" = ")
                        head = _pid_ts(raw, r, default_pid)
                        if j > e and head is not None:
                            k = j
                            while raw[k - 1] == 32:
                                k -= 1
                            if raw[k - 1] == 41 and k - 1 >= e + 9:
                                pid, ts = head
                                before = pending.pop(pid, None)
                                calls += 1
                                if name not in wanted and pid not in watched:
                                    continue
                                result, dur = _result_and_duration(raw, j)
                                if before is None or before[1] != name:
                                    before = (lineno, name, b"", ts)  # strace lost the first half (attached mid-call)
                                text = names.get(name) or _name_text(names, name)
                                yield Call(before[0], pid, text, before[2] + raw[e + 9:k - 1], result, _UNSET,
                                           before[3] or ts, dur)
                                continue
                ev = _slow_line(raw, lineno, head_match, pending, stats, default_pid, wanted, watched)
                if ev is not None:
                    yield ev
    finally:
        stats.lines += lineno
        stats.calls += calls


_WANTED, _SKIPPED, _NOT_A_NAME = 1, 0, -1


def _pid_ts(raw: bytes, end: int, default_pid: int) -> Optional[tuple]:
    """(pid, timestamp as logged or None) from the prefix raw[:end], read as _PREFIX reads it; None when
    it is not a prefix. The common `-f` form, `1234  1700000000.123456 `, is read without a regex."""
    if end > 0 and raw[end - 1] == 32:
        pid_text, _, stamp = raw[:end - 1].partition(b" ")
        stamp = stamp.lstrip(b" ")
        whole, dot, fraction = stamp.partition(b".")
        if pid_text.isdigit() and len(pid_text) <= 10 and dot and whole.isdigit() and fraction.isdigit():
            return int(pid_text), stamp
    head = _PREFIX.fullmatch(raw, 0, end)
    if head is None:
        return None
    pid_a, pid_b, ts = head.groups()
    return (int(pid_a or pid_b) if (pid_a or pid_b) else default_pid), ts


def _pid_token(pid_tokens: dict, first: bytes) -> int:
    """The pid a line's first word is (`-f -o` logs start with it), or -1 if it is not one."""
    if len(pid_tokens) >= 4096:
        pid_tokens.clear()
    pid = pid_tokens[first] = int(first) if first.isdigit() and len(first) <= 10 else -1
    return pid


def _name_kind(kinds: dict, name: bytes, wanted) -> int:
    """Whether the name before `(` is wanted, a syscall's name no rule needs, or not a name at all."""
    if len(kinds) >= 4096:
        kinds.clear()  # a hostile log of made-up names
    if name in wanted:
        kind = _WANTED
    else:
        kind = _SKIPPED if name.replace(b"_", b"").isalnum() else _NOT_A_NAME
    kinds[name] = kind
    return kind


def _result_and_duration(raw: bytes, j: int) -> tuple[bytes, Optional[bytes]]:
    """The result after ` = ` at `j`, and the `-T` duration (`<0.000012>`) split off it, or None."""
    result = raw[j + 3:]
    dur = None
    if result.endswith(b">"):
        d = result.rfind(b" <")
        if d >= 0 and _DURATION(result, d + 2, len(result) - 1):
            dur = result[d + 2:-1]
            result = result[:d]
    if result.endswith(b" "):
        result = result.rstrip()
    return result, dur


def _name_text(names: dict, name: bytes) -> str:
    """A syscall name decoded once; the cache is cleared when a hostile log of made-up names fills it."""
    if len(names) >= 4096:
        names.clear()
    text = names[name] = name.decode("utf-8", "backslashreplace")  # only names read whole (wanted=None) can be junk
    return text


READ_CHUNK = 1 << 20  # bounded: memory stays flat (a chunk and its lines); as big as open_log's buffer, so read whole


def _blocks(stream) -> Iterator[Optional[list[bytes]]]:
    """The log's lines without their newlines, a chunk's worth in a list at a time, split in C: much
    faster than a readline call per line. A line longer than MAX_LINE is one None instead of a list,
    never held whole; a blank line is b""."""
    read = stream.read
    carry = b""
    skipping = False  # inside an overlong line already reported
    while True:
        chunk = read(READ_CHUNK)
        if not chunk:
            if carry and not skipping:
                yield [carry]
            return
        pieces = chunk.split(b"\n")
        if carry:
            pieces[0] = carry + pieces[0]  # only the line cut by the previous read is copied again
        carry = pieces.pop()
        if skipping and pieces:
            del pieces[0]  # the end of the overlong line
            skipping = False
        if pieces:
            yield pieces
        if len(carry) >= MAX_LINE:
            if not skipping:
                yield None
            skipping = True
            carry = b""


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
            if len(pending) >= MAX_PENDING and pid not in pending:
                # forget the oldest: their resumed halves will be read without their first halves
                stats.dropped_unfinished += evict_oldest(pending, pending.__delitem__)
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
    elif first == b">" and body.startswith(b"> "):
        return None  # a stack frame of `strace -k` after the call it belongs to
    elif not (body.startswith(b"strace: ") or not body.strip()):  # strace's own messages, blank lines
        stats.bad(lineno, "truncated or not an strace line" if 40 in body else "not an strace line")  # 40: "("
    return None


def _timestamp(text: bytes) -> float:
    if 58 in text:  # ":"
        h, m, s = text.split(b":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    return float(text)


def parse_jsonl(stream, stats: Stats) -> Iterator:
    """strace-parser's JSON (one object per line) → the same events. A line of the wrong shape (a pid
    that is not a number, a name that is not a string, nesting too deep to decode) is malformed."""
    for lineno, raw in lines(stream):
        stats.lines += 1
        if raw is None:
            stats.bad(lineno, "line too long")
            continue
        if not raw.strip():
            continue
        try:
            event = _jsonl_event(lineno, json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError):
            event = None
        if event is None:
            stats.bad(lineno, "not a strace-parser JSON object")
            continue
        if type(event) is Call:
            stats.calls += 1
        yield event


def _jsonl_event(lineno: int, obj):
    """One strace-parser object as an event, or None when a field has the wrong type."""
    from syscall_lint.strace.args import render_strace_parser_args

    if not isinstance(obj, dict):
        return None
    pid = obj.get("pid", 0)
    if pid is None:
        pid = 0
    if type(pid) is not int or not 0 <= pid < 1 << 32:
        return None
    if obj.get("type") == "alert":
        status = obj.get("result")
        if type(status) is not int or not -(1 << 31) <= status < 1 << 32:
            return None
        return Exit(lineno, pid, status, None)
    name = obj["name"]
    if type(name) is not str or not name.isidentifier():
        return None
    stamp = obj.get("timestamp")
    if stamp is not None and (type(stamp) not in (int, float) or stamp != stamp):
        return None
    result = obj["result"]
    if type(result) not in (int, str):
        return None
    result = str(result).strip().encode()
    args = render_strace_parser_args(obj["args"]).encode()
    return Call(lineno, pid, name, args, result, _ret(result), None if stamp is None else float(stamp), None)


def _native_core():
    """The compiled build of this module (`python3 -m syscall_lint.strace.build_native`, opt-in), or None.

    It is used only when it was built from this very file (its SOURCE_DIGEST is this file's sha256), so an
    edit here never runs a stale build; SYSCALL_LINT_PURE=1 turns it off. The compiled copy itself skips this.
    """
    if __name__ != "syscall_lint.strace.parser" or os.environ.get("SYSCALL_LINT_PURE"):
        return None
    try:
        from syscall_lint.strace import _parser_native as native  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        with open(__file__, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None
    return native if getattr(native, "SOURCE_DIGEST", None) == digest else None


NATIVE = _native_core()
if NATIVE is not None:
    # every public name at once, so that Call, Exit... are the classes the compiled parse() makes
    globals().update({name: getattr(NATIVE, name) for name in
                      ("Call", "Exit", "Signal", "Stats", "open_log", "lines", "parse", "parse_jsonl")})
