"""SCL203 in a trace: a process reads one target a few bytes at a time (a byte or a line per read):
an unbuffered reader, `while read` in a shell, or a copy loop with a tiny block size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace.events import Read
from syscall_lint.strace.observer import Observer
from syscall_lint.strace.state import TTY, UNKNOWN

READ_CALLS = frozenset({"read", "pread64"})  # read(fd, buf, count) and pread64(fd, buf, count, offset)


@dataclass(slots=True)
class TinyReads:
    pid: int
    fd: int
    path: Optional[str]
    kind: str
    first_line: int
    log: str
    count: int = 0
    bytes: int = 0
    largest_request: int = 0


def requested(args: bytes, name: str) -> Optional[int]:
    """The byte count a read asked for (its third argument), without splitting the whole list."""
    if name == "read":
        tail = args[args.rfind(b", ") + 2:]
    else:
        end = args.rfind(b", ")
        tail = args[args.rfind(b", ", 0, end) + 2:end]
    return int(tail) if tail.isdigit() and len(tail) <= 19 else None


class TinyReadsRule(Observer):
    CODE = "SCL203"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.max_size = self.options["max-size"]
        self.readers: dict = {}  # (tgid, target, log) -> TinyReads

    def on_read(self, ev: Read) -> None:
        call, info = ev.call, ev.info
        if ev.size <= 0 or info is None or info.kind in (TTY, UNKNOWN) or call.name not in READ_CALLS:
            # reads that return nothing are not reading a byte at a time: `read(fd, buf, 1) = 0` is
            # how Python's readall() checks for the end of a file it has read whole
            return  # and a person typing at a terminal (maybe an fd the trace cannot name) is read a key at a time
        want = requested(call.args, call.name)
        if want is None or want > self.max_size:
            return
        key = (ev.task.tgid, info.path or ev.fd, self.ctx.path)
        rec = self.readers.get(key)
        if rec is None:
            self.ctx.room(self.readers, "tiny readers")
            rec = self.readers[key] = TinyReads(ev.task.tgid, ev.fd, info.path, info.kind, call.line, self.ctx.path)
        rec.count += 1
        rec.bytes += ev.size
        rec.largest_request = max(rec.largest_request, want)

    def finish(self) -> None:
        for rec in self.readers.values():
            if rec.count < self.options["min-calls"]:
                continue
            self.ctx.report(self.CODE, rec.first_line, rec.pid, f"tiny reads {rec.path or rec.fd}",
                            {"pid": rec.pid, "fd": rec.fd, "path": rec.path, "kind": rec.kind, "count": rec.count,
                             "bytes": rec.bytes, "largest_request": rec.largest_request},
                            path=rec.log, count=rec.count, fd=rec.fd, fdname=f" ({rec.path})" if rec.path else "",
                            kind=rec.kind, largest=rec.largest_request, total=f"{rec.bytes:,}", max_size=self.max_size)
