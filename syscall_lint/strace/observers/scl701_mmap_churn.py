"""SCL701 in a trace: a process maps anonymous memory of one size and unmaps it again, over and over
(an allocator above its mmap threshold, or a buffer made per request): each pair costs two syscalls,
page faults on first touch, and TLB shootdowns in threaded programs.

Opt-in: mmap is among the most frequent syscalls, and decoding every one cost 7-15% of the time of
`trace` on bench/strace_bench.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

from syscall_lint.strace.observer import Observer
from syscall_lint.strace.parser import Call
from syscall_lint.strace.state import Task

MAX_MAPPINGS_HELD = 4096  # live anonymous mappings remembered per process
_ADDRESS = re.compile(rb"0x[0-9a-fA-F]{1,16}").fullmatch


@dataclass(slots=True)
class Churn:
    pid: int
    size: int
    first_line: int
    log: str
    pairs: int = 0


class MmapChurn(Observer):
    CODE = "SCL701"
    SYSCALLS = frozenset({"mmap", "mmap2", "munmap"})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.min_size = self.options["min-size"]
        self.live: dict = {}  # tgid -> {address: (size, line)}
        self.churn: dict = {}  # (tgid, size, log) -> Churn

    def on_call(self, call: Call, task: Task) -> None:
        if call.name == "munmap":
            self._unmap(call, task)
            return
        args = call.args
        if args.find(b"MAP_ANONYMOUS") < 0 or args.find(b"MAP_FIXED") >= 0 or call.ret is None or call.ret <= 0:
            return
        parts = args.split(b", ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > 19:
            return
        size = int(parts[1])
        if size < self.min_size:
            return
        live = self.live.get(task.tgid)
        if live is None:
            self.ctx.room(self.live, "processes mapping memory")
            live = self.live[task.tgid] = {}
        if len(live) < MAX_MAPPINGS_HELD:
            live[call.ret] = (size, call.line)

    def _unmap(self, call: Call, task: Task) -> None:
        live = self.live.get(task.tgid)
        if not live or call.ret != 0:
            return
        parts = call.args.split(b", ")
        if len(parts) != 2 or _ADDRESS(parts[0]) is None:
            return
        mapped = live.pop(int(parts[0], 16), None)
        if mapped is None or not parts[1].isdigit() or int(parts[1]) != mapped[0]:
            return  # partial unmaps (trimming an aligned region) are not churn
        key = (task.tgid, mapped[0], self.ctx.path)
        churn = self.churn.get(key)
        if churn is None:
            self.ctx.room(self.churn, "mapping sizes")
            churn = self.churn[key] = Churn(task.tgid, mapped[0], mapped[1], self.ctx.path)
        churn.pairs += 1

    def finish(self) -> None:
        for churn in self.churn.values():
            if churn.pairs >= self.options["min-pairs"]:
                self.ctx.report(self.CODE, churn.first_line, churn.pid, f"mmap churn {churn.size}",
                                {"pid": churn.pid, "size": churn.size, "pairs": churn.pairs}, path=churn.log,
                                count=churn.pairs, size=f"{churn.size:,}", mib=f"{churn.size / (1 << 20):.1f}")
