"""SCL102 in a trace: a durable file renamed, and its directory never fsync'd before the process ends."""

from __future__ import annotations

from syscall_lint.strace.events import Exited, Renamed, Synced
from syscall_lint.strace.observer import Observer
from syscall_lint.strace.state import dirname

MAX_PER_DIRECTORY = 64  # renames kept per directory awaiting its fsync; more are the same problem again


class RenameWithoutDirFsync(Observer):
    CODE = "SCL102"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.pending: dict = {}  # directory -> [(tgid, Renamed event, log path)]

    def on_rename(self, ev: Renamed) -> None:
        if ev.info is None or ev.dirty:
            return  # not a file this trace saw written, or SCL101's case
        directory = dirname(ev.dst)
        waiting = self.pending.get(directory)
        if waiting is None:
            self.ctx.room(self.pending, "directories awaiting an fsync")
            waiting = self.pending[directory] = []
        if len(waiting) < MAX_PER_DIRECTORY:
            waiting.append((ev.task.tgid, ev, self.ctx.path))

    def on_sync(self, ev: Synced) -> None:
        if ev.call.ret != 0:
            return
        if ev.fd is None:
            self.pending.clear()  # sync()/syncfs() make the renames durable too
        elif ev.path is not None:
            self.pending.pop(ev.path, None)

    def on_exit(self, ev: Exited) -> None:
        if ev.process and ev.task is not None and self.pending:
            self._flush(ev.task.tgid)

    def finish(self) -> None:
        self._flush(None)

    def _flush(self, tgid) -> None:
        for directory in list(self.pending):
            keep = []
            for owner, ev, path in self.pending[directory]:
                if tgid is not None and owner != tgid:
                    keep.append((owner, ev, path))
                    continue
                call = ev.call
                story = {"open_line": ev.info.open_line, "last_write_line": ev.info.last_write_line,
                         "rename_line": call.line, "pid": call.pid, "src": ev.src, "dst": ev.dst,
                         "missing": f"fsync of directory {directory}"}
                self.ctx.report(self.CODE, call.line, owner, ev.dst, story, path=path, call=call.name + "()",
                                dir=repr(directory), times="")
            if keep:
                self.pending[directory] = keep
            else:
                del self.pending[directory]
