"""SCL601 in a trace: threads of one process wait again and again on the same futex (a contended
lock), with the time each thread spent blocked when the trace has durations (-T).

Opt-in: futex is among the most frequent syscalls of threaded programs, and decoding every one
costs the parser its fast path (see the rule's page for the measurement)."""

from __future__ import annotations

from dataclasses import dataclass, field

from syscall_lint.strace.observer import Observer
from syscall_lint.strace.parser import Call
from syscall_lint.strace.state import Task

MAX_THREADS_HELD = 64  # per lock: threads whose blocked time is kept


@dataclass(slots=True)
class Lock:
    pid: int
    address: str
    first_line: int
    log: str
    waits: int = 0
    blocked: float = 0.0
    timed: bool = False
    per_thread: dict = field(default_factory=dict)  # tid -> seconds blocked
    threads: int = 0


class FutexContention(Observer):
    CODE = "SCL601"
    SYSCALLS = frozenset({"futex", "futex_time64", "futex_waitv"})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.locks: dict = {}  # (tgid, address, log) -> Lock

    def on_call(self, call: Call, task: Task) -> None:
        args = call.args
        comma = args.find(b", ")
        if comma < 0 or args.find(b"FUTEX_WAIT", comma, comma + 40) < 0 and args.find(b"FUTEX_LOCK_PI", comma, comma + 40) < 0:
            return
        if call.errno == "ETIMEDOUT":
            return  # a timed wait that ran out: a sleep, not a lock
        address = args[:comma].decode("ascii", "replace")
        key = (task.tgid, address, self.ctx.path)
        lock = self.locks.get(key)
        if lock is None:
            self.ctx.room(self.locks, "futexes")
            lock = self.locks[key] = Lock(task.tgid, address, call.line, self.ctx.path)
        lock.waits += 1
        waited = call.duration
        if waited is not None:
            lock.timed = True
            lock.blocked += waited
        tid = call.pid
        if tid in lock.per_thread:
            lock.per_thread[tid] += waited or 0.0
        else:
            lock.threads += 1
            if len(lock.per_thread) < MAX_THREADS_HELD:
                lock.per_thread[tid] = waited or 0.0

    def finish(self) -> None:
        for lock in self.locks.values():
            if lock.waits < self.options["min-waits"] or lock.threads < self.options["min-threads"]:
                continue
            if lock.timed:
                blocked = f"{lock.blocked * 1000:,.1f} ms blocked in all"
                worst = max(lock.per_thread.items(), key=lambda item: item[1])
                blocked += f", thread {worst[0]} the most ({worst[1] * 1000:,.1f} ms)"
            else:
                blocked = "time blocked unknown (record with -T)"
            self.ctx.report(self.CODE, lock.first_line, lock.pid, f"futex {lock.address}",
                            {"pid": lock.pid, "futex": lock.address, "waits": lock.waits, "threads": lock.threads,
                             "blocked_seconds": round(lock.blocked, 6) if lock.timed else None,
                             "blocked_per_thread": {str(t): round(s, 6) for t, s in lock.per_thread.items()}
                             if lock.timed else None},
                            path=lock.log, count=lock.waits, threads=lock.threads, futex=lock.address, blocked=blocked)
