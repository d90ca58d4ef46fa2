"""SCL304 in a trace: a process waits with select()/pselect6() again and again on descriptors numbered
far up (nfds in the hundreds): every call copies and scans nfds-bit fd_sets and polls each watched fd
anew, and at fd 1024 (FD_SETSIZE) select() cannot be used at all. poll() or epoll scale with the fds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace.events import Waited
from syscall_lint.strace.observer import Observer

SELECTS = frozenset({"select", "_newselect", "pselect6"})
FD_SETSIZE = 1024  # glibc's fd_set holds fds 0..1023; Python's select() refuses anything above
_NOTE = re.compile(rb"<(?:->|[^>])*>")  # a -y note after an fd; `->` inside a socket's note is not its end


def nfds_of(args: bytes) -> Optional[int]:
    """The first argument of select(nfds, ...), or None."""
    comma = args.find(b",")
    first = args[:comma]
    return int(first) if comma > 0 and first.isdigit() and len(first) <= 10 else None


def watched_fds(args: bytes) -> int:
    """How many fds the three sets of select(nfds, [3 900<pipe:[7]>], NULL, NULL, ...) watch. Without
    their -y notes the sets hold only numbers and spaces, so a split at ", " finds them."""
    watched = 0
    for fdset in _NOTE.sub(b"", args).split(b", ", 4)[1:4]:
        if fdset.startswith(b"[") and fdset.endswith(b"]"):
            watched += len(fdset[1:-1].split())
    return watched


@dataclass(slots=True)
class Selects:
    pid: int
    first_line: int
    log: str
    name: str
    calls: int = 0
    max_nfds: int = 0
    max_watched: int = 0


class SelectHighFds(Observer):
    CODE = "SCL304"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.min_nfds = self.options["min-nfds"]
        self.processes: dict = {}  # (tgid, log) -> Selects

    def on_wait(self, ev: Waited) -> None:
        call = ev.call
        if call.name not in SELECTS or (call.ret is not None and call.ret < 0):
            return
        nfds = nfds_of(call.args)
        if nfds is None or nfds < self.min_nfds:
            return  # most selects: a few low fds, decided before anything else is decoded
        key = (ev.task.tgid, self.ctx.path)
        rec = self.processes.get(key)
        if rec is None:
            self.ctx.room(self.processes, "processes calling select")
            rec = self.processes[key] = Selects(ev.task.tgid, call.line, self.ctx.path, call.name)
        rec.calls += 1
        rec.max_nfds = max(rec.max_nfds, nfds)
        rec.max_watched = max(rec.max_watched, watched_fds(call.args))

    def finish(self) -> None:
        for rec in self.processes.values():
            if rec.calls < self.options["min-calls"]:
                continue
            beyond = rec.max_nfds > FD_SETSIZE
            limit = (f"; nfds {rec.max_nfds:,} is past FD_SETSIZE ({FD_SETSIZE}): fds that high overflow glibc's "
                     f"fd_set" if beyond else f"; at fd {FD_SETSIZE} (FD_SETSIZE) select() stops working")
            self.ctx.report(self.CODE, rec.first_line, rec.pid, "select high fds",
                            {"pid": rec.pid, "syscall": rec.name, "calls": rec.calls, "max_nfds": rec.max_nfds,
                             "max_watched": rec.max_watched, "past_fd_setsize": beyond},
                            path=rec.log, call=rec.name, count=rec.calls, nfds=f"{rec.max_nfds:,}",
                            watched=rec.max_watched, limit=limit)
