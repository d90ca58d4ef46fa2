"""SCL201 in a trace: runs of small writes to one target with nothing but local work between them.

A run is broken by waiting on a peer (a read from a socket, pipe, tty or unknown fd; a poll, select,
epoll wait, sleep or accept) or on the disk (fsync): request/response is not a batching problem. Reading a regular file is
not waiting (a `dd bs=16` copy is one run), and reopening the same path continues the run (a shell
loop appending with `>>`). Runs of at least `min-run` writes count; a process and target with at
least `min-calls` small writes in such runs is one finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace.events import Read, Synced, Waited, Wrote
from syscall_lint.strace.observer import Observer
from syscall_lint.strace.state import PEERS


@dataclass(slots=True)
class Run:
    """Small writes by one thread to one target with no wait on a peer between them."""

    fd: int
    first_line: int
    first_ts: Optional[float]
    last_ts: Optional[float] = None
    count: int = 0
    bytes: int = 0


@dataclass(slots=True)
class Target:
    """Small writes of one process to one target, summed over its runs."""

    pid: int
    fd: int
    path: Optional[str]
    log: str
    first_line: int
    count: int = 0
    bytes: int = 0
    runs: int = 0
    longest: int = 0
    best_rate: Optional[float] = None


class UnbatchedWrites(Observer):
    CODE = "SCL201"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.max_size = self.options["max-size"]
        self.min_run = self.options["min-run"]
        self.runs: dict = {}  # tid -> {target: Run}
        self.group: dict = {}  # tid -> tgid, for the threads that have runs
        self.targets: dict = {}  # (tgid, target, log) -> Target
        self.run_target: dict = {}  # (tid, target) -> the Target key its run adds to

    def on_write(self, ev: Wrote) -> None:
        info = ev.info
        target = info.path or ev.fd
        tid = ev.call.pid
        runs = self.runs.get(tid)
        if runs is None:
            self.ctx.room(self.runs, "threads with runs of writes")
            self.ctx.room(self.group, "threads with runs of writes")
            runs = self.runs[tid] = {}
            self.group[tid] = ev.task.tgid
        run = runs.get(target)
        if ev.size > self.max_size:
            if run is not None:
                self._end(ev.task.tgid, tid, target, runs.pop(target), info.path)
            return
        if run is None:
            if len(runs) >= 64:  # small writes to this many targets at once: end them all
                self._end_all(ev.task.tgid, tid)
            run = runs[target] = Run(ev.fd, ev.call.line, ev.call.ts)
        run.count += 1
        run.bytes += ev.size
        run.last_ts = ev.call.ts if run.first_ts is not None else None

    def on_read(self, ev: Read) -> None:
        if ev.info is None or ev.info.kind in PEERS:
            self._end_all(ev.task.tgid, ev.call.pid)

    def on_wait(self, ev: Waited) -> None:
        self._end_all(ev.task.tgid, ev.call.pid)

    def on_sync(self, ev: Synced) -> None:
        self._end_all(ev.task.tgid, ev.call.pid)  # a sync waits for the disk: SCL103's problem, not this one

    def on_exit(self, ev) -> None:
        tid = ev.exit.pid
        if tid in self.runs:
            self._end_all(self.group.get(tid, tid), tid)
            del self.runs[tid]
            self.group.pop(tid, None)

    def _end_all(self, tgid: int, tid: int) -> None:
        runs = self.runs.get(tid)
        if runs:
            for target, run in runs.items():
                self._end(tgid, tid, target, run, target if isinstance(target, str) else None)
            runs.clear()

    def _end(self, tgid: int, tid: int, target, run: Run, path: Optional[str]) -> None:
        if run.count < self.min_run:
            return
        key = (tgid, target, self.ctx.path)
        agg = self.targets.get(key)
        if agg is None:
            self.ctx.room(self.targets, "runs of small writes")
            agg = self.targets[key] = Target(tgid, run.fd, path, self.ctx.path, run.first_line)
        agg.count += run.count
        agg.bytes += run.bytes
        agg.runs += 1
        agg.longest = max(agg.longest, run.count)
        if run.first_ts is not None and run.last_ts is not None and run.last_ts > run.first_ts:
            rate = run.count / (run.last_ts - run.first_ts)
            agg.best_rate = max(agg.best_rate or 0.0, rate)

    def finish(self) -> None:
        for tid in list(self.runs):
            self._end_all(self.group.get(tid, tid), tid)
        cost_ns = self.options["syscall-cost-ns"]
        limit = self.options["rate-per-second"]
        for agg in self.targets.values():
            if agg.count < self.options["min-calls"]:
                continue
            mean = agg.bytes / agg.count
            rate = ""
            if agg.best_rate is not None:
                over = f", above the {limit:,}/s threshold" if agg.best_rate > limit else ""
                rate = f", up to {agg.best_rate:,.0f} calls/s{over}"
            cost_ms = agg.count * cost_ns / 1e6
            self.ctx.report(self.CODE, agg.first_line, agg.pid, f"small writes {agg.path or agg.fd}",
                            {"pid": agg.pid, "fd": agg.fd, "path": agg.path, "count": agg.count, "runs": agg.runs,
                             "longest_run": agg.longest, "mean_size": round(mean, 1), "max_size": self.max_size,
                             "calls_per_second": agg.best_rate, "estimated_syscall_cost_ms": round(cost_ms, 3)},
                            path=agg.log, count=agg.count, calls="write", fd=agg.fd,
                            fdname=f" ({agg.path})" if agg.path else "", runs=agg.runs, mean_size=f"{mean:.0f}",
                            max_size=self.max_size, rate=rate, cost_ms=f"{cost_ms:.2f}")
