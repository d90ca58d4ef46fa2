"""SCL204 in a trace: a thread polls (poll/select/epoll with a zero timeout) again and again, finds
nothing, and never blocks: it burns a CPU waiting instead of letting the kernel wake it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from syscall_lint.strace.events import Waited
from syscall_lint.strace.observer import Observer

POLLS = frozenset({"poll", "ppoll", "select", "_newselect", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"})
_ZERO_TIME = re.compile(rb"\{tv_sec=0, tv_u?n?sec=0\}")


def zero_timeout(name: str, args: bytes) -> bool:
    """Whether a poll-family call asked not to wait at all."""
    if name in ("poll", "epoll_wait"):
        return args[args.rfind(b", ") + 2:].strip() == b"0"
    if name == "epoll_pwait":  # epoll_pwait(epfd, events, maxevents, timeout, sigmask, size)
        parts = args.split(b", ")
        return len(parts) >= 4 and parts[-3].strip() == b"0"
    return _ZERO_TIME.search(args) is not None  # select, pselect6, ppoll, epoll_pwait2: a timespec/timeval


@dataclass(slots=True)
class Spin:
    pid: int
    tid: int
    first_line: int
    log: str
    name: str
    count: int = 0


class BusyPolling(Observer):
    CODE = "SCL204"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.current: dict = {}  # tid -> Spin (empty zero-timeout polls in a row)
        self.longest: dict = {}  # (tgid, log) -> the longest Spin

    def on_wait(self, ev: Waited) -> None:
        call = ev.call
        tid = call.pid
        if call.name in POLLS and call.ret == 0 and zero_timeout(call.name, call.args):
            spin = self.current.get(tid)
            if spin is None:
                self.ctx.room(self.current, "polling threads")
                spin = self.current[tid] = Spin(ev.task.tgid, tid, call.line, self.ctx.path, call.name)
            spin.count += 1
        elif tid in self.current:
            self._end(self.current.pop(tid))  # it blocked, slept, or found work: the spin is over

    def on_exit(self, ev) -> None:
        spin = self.current.pop(ev.exit.pid, None)
        if spin is not None:
            self._end(spin)

    def _end(self, spin: Spin) -> None:
        key = (spin.pid, spin.log)
        best = self.longest.get(key)
        if best is None or spin.count > best.count:
            if best is None:
                self.ctx.room(self.longest, "polling processes")
            self.longest[key] = spin

    def finish(self) -> None:
        for spin in list(self.current.values()):
            self._end(spin)
        self.current.clear()
        for spin in self.longest.values():
            if spin.count >= self.options["min-calls"]:
                self.ctx.report(self.CODE, spin.first_line, spin.pid, "busy polling",
                                {"pid": spin.pid, "tid": spin.tid, "empty_polls": spin.count, "syscall": spin.name},
                                path=spin.log, count=spin.count, call=spin.name, tid=spin.tid)
