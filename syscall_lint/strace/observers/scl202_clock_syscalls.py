"""SCL202 in a trace: time read through real syscalls (the vDSO is bypassed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from syscall_lint.strace.observer import Observer
from syscall_lint.strace.parser import Call
from syscall_lint.strace.state import Task


@dataclass(slots=True)
class ClockReads:
    first_line: int
    pid: int
    path: str
    count: int = 0
    names: set = field(default_factory=set)


class ClockSyscalls(Observer):
    CODE = "SCL202"
    SYSCALLS = frozenset({"clock_gettime", "clock_gettime64", "gettimeofday", "time"})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.processes: dict = {}  # (tgid, log) -> ClockReads

    def on_call(self, call: Call, task: Task) -> None:
        key = (task.tgid, self.ctx.path)
        rec = self.processes.get(key)
        if rec is None:
            self.ctx.room(self.processes, "processes reading the clock")
            rec = self.processes[key] = ClockReads(call.line, task.tgid, self.ctx.path)
        rec.count += 1
        rec.names.add(call.name)

    def finish(self) -> None:
        for rec in self.processes.values():
            if rec.count >= self.options["min-calls"]:
                names = ", ".join(sorted(rec.names))
                self.ctx.report(self.CODE, rec.first_line, rec.pid, "clock", {"pid": rec.pid, "count": rec.count,
                                "syscalls": sorted(rec.names)}, path=rec.path, count=rec.count, calls=names)
