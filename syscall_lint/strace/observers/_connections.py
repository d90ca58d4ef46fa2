"""What SCL301 and SCL302 share: accept → clone pairs, and whether the child used the connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace import args as A
from syscall_lint.strace.events import Accepted, Exited, Spawned
from syscall_lint.strace.observer import Observer
from syscall_lint.strace.parser import Call

KEPT_PER_PARENT = 64  # spawns kept to judge and show; the count goes on


@dataclass(slots=True)
class Spawn:
    accept: Call
    clone: Call
    child: int
    fd: int
    log: str
    used: Optional[bool] = None  # None: not known yet
    seen: bool = False  # the child made a call in this trace


class ConnectionSpawns(Observer):
    """A server that accepts a connection and then starts a thread (THREAD) or a process for it."""

    THREAD = True

    def __init__(self, ctx):
        super().__init__(ctx)
        self.accepts: dict = {}  # tid -> (fd, accept call)
        self.spawns: dict = {}  # parent tid -> [Spawn]
        self.counts: dict = {}  # parent tid -> spawns after an accept (all, not only those kept)
        self.awaiting: dict = {}  # child tid -> Spawn

    def on_accept(self, ev: Accepted) -> None:
        if ev.call.pid not in self.accepts:
            self.ctx.room(self.accepts, "threads' last accepts")
        self.accepts[ev.call.pid] = (ev.fd, ev.call)

    def on_spawn(self, ev: Spawned) -> None:
        accepted = self.accepts.pop(ev.call.pid, None)
        if accepted is None or ev.shares_memory or ev.thread != self.THREAD:
            return  # vfork+exec helpers (posix_spawn) are not connection handlers
        parent = ev.call.pid
        records = self.spawns.get(parent)
        if records is None:
            self.ctx.room(self.spawns, "connection-handling parents")
            self.ctx.room(self.counts, "connection-handling parents")
            records = self.spawns[parent] = []
        self.counts[parent] = self.counts.get(parent, 0) + 1
        if len(records) < KEPT_PER_PARENT:
            spawn = Spawn(accepted[1], ev.call, ev.child.tid, accepted[0], self.ctx.path)
            records.append(spawn)
            self.awaiting[ev.child.tid] = spawn
            self.ctx.tracker.watch(ev.child.tid)

    def on_watched(self, call: Call) -> None:
        spawn = self.awaiting.get(call.pid)
        if spawn is None:
            return
        spawn.seen = True
        num, _ = A.fd(call.args)
        if num == spawn.fd:
            spawn.used = True
            self._done(call.pid)

    def on_exit(self, ev: Exited) -> None:
        spawn = self.awaiting.get(ev.exit.pid)
        if spawn is not None:
            spawn.used = False  # the child ended without touching the connection
            self._done(ev.exit.pid)
        self.accepts.pop(ev.exit.pid, None)

    def _done(self, tid: int) -> None:
        del self.awaiting[tid]
        self.ctx.tracker.unwatch(tid)

    def finish(self) -> None:
        for parent, records in self.spawns.items():
            # a child this trace never shows (an -ff member left out) counts as handling its connection
            mine = [r for r in records if r.used is True or (r.used is None and not r.seen)]
            if len(mine) < 2:
                continue
            first = mine[0]
            total = max(len(mine), self.counts[parent] if len(records) >= KEPT_PER_PARENT else 0)
            self.ctx.report(self.CODE, first.clone.line, parent, "accept→thread" if self.THREAD else "accept→fork",
                            {"pid": parent, "connections": total,
                             "pairs": [{"accept_line": r.accept.line, "clone_line": r.clone.line, "child": r.child,
                                        "fd": r.fd} for r in mine[:20]]},
                            path=first.log, count=total, first_line=first.clone.line)
