"""What SCL401 and SCL402 share: a read and then a write of the same size to a socket (a copy pair)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace.events import Read, Wrote
from syscall_lint.strace.observer import Observer
from syscall_lint.strace.state import FILE, SOCKET


@dataclass(slots=True)
class LastRead:
    fd: int
    size: int
    line: int
    path: Optional[str]


@dataclass(slots=True)
class CopyLoop:
    pid: int
    src: int
    dst: int
    first_line: int
    src_path: Optional[str]
    log: str
    pairs: int = 0
    bytes: int = 0


class CopyPairs(Observer):
    """Copies from a SOURCE kind (file or socket) to a socket through user space, in read+write pairs."""

    SOURCE = FILE
    READ_CALLS = frozenset()

    def __init__(self, ctx):
        super().__init__(ctx)
        self.last: dict = {}  # tid -> LastRead
        self.loops: dict = {}  # (tid, src fd, dst fd, log) -> CopyLoop

    def on_read(self, ev: Read) -> None:
        info = ev.info
        if ev.size > 0 and info is not None and info.kind == self.SOURCE and ev.call.name in self.READ_CALLS:
            if ev.call.pid not in self.last:
                self.ctx.room(self.last, "threads' last reads")
            self.last[ev.call.pid] = LastRead(ev.fd, ev.size, ev.call.line, info.path)
        else:
            self.last.pop(ev.call.pid, None)

    def on_write(self, ev: Wrote) -> None:
        last = self.last.pop(ev.call.pid, None)
        if last is None or ev.info.kind != SOCKET or last.size != ev.size or last.fd == ev.fd:
            return  # an echo on one socket is a protocol, not a relay
        key = (ev.call.pid, last.fd, ev.fd, self.ctx.path)
        loop = self.loops.get(key)
        if loop is None:
            self.ctx.room(self.loops, "copy loops")
            loop = self.loops[key] = CopyLoop(ev.call.pid, last.fd, ev.fd, last.line, last.path, self.ctx.path)
        loop.pairs += 1
        loop.bytes += ev.size

    def finish(self) -> None:
        for loop in self.loops.values():
            if loop.pairs >= self.options["min-pairs"]:
                self.ctx.report(self.CODE, loop.first_line, loop.pid, f"copy {loop.src_path or loop.src}->{loop.dst}",
                                {"pid": loop.pid, "src_fd": loop.src, "src_path": loop.src_path, "dst_fd": loop.dst,
                                 "pairs": loop.pairs, "bytes": loop.bytes},
                                path=loop.log, count=loop.pairs, total=f"{loop.bytes:,}", src=loop.src, dst=loop.dst)
