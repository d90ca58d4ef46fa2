"""SCL103 in a trace: a file fsync'd after nearly every small write (a sync per record)."""

from __future__ import annotations

from dataclasses import dataclass

from syscall_lint.strace.events import Synced
from syscall_lint.strace.observer import Observer


@dataclass(slots=True)
class SyncedWrites:
    first_line: int
    fd: int
    path: str
    pid: int
    path_log: str
    syncs: int = 0
    writes: int = 0
    bytes: int = 0


class FsyncPerSmallWrite(Observer):
    CODE = "SCL103"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.max_size = self.options["max-size"]
        self.max_writes = self.options["max-writes"]
        self.files: dict = {}  # (tgid, file) -> SyncedWrites

    def on_sync(self, ev: Synced) -> None:
        n = ev.pending_writes
        if ev.info is None or ev.call.ret != 0 or not 0 < n <= self.max_writes or ev.pending_bytes > self.max_size * n:
            return
        key = (ev.task.tgid, ev.info.path or ev.fd, self.ctx.path)
        rec = self.files.get(key)
        if rec is None:
            self.ctx.room(self.files, "files synced after small writes")
            rec = self.files[key] = SyncedWrites(ev.info.pending_first or ev.call.line, ev.fd, ev.info.path,
                                                 ev.task.tgid, self.ctx.path)
        rec.syncs += 1
        rec.writes += n
        rec.bytes += ev.pending_bytes

    def finish(self) -> None:
        for rec in self.files.values():
            if rec.syncs < self.options["min-syncs"]:
                continue
            self.ctx.report(self.CODE, rec.first_line, rec.pid, rec.path or f"fd {rec.fd}",
                            {"pid": rec.pid, "fd": rec.fd, "path": rec.path, "syncs": rec.syncs, "writes": rec.writes,
                             "bytes": rec.bytes}, path=rec.path_log,
                            fd=rec.fd, fdname=f" ({rec.path})" if rec.path else "", count=rec.syncs,
                            mean_writes=f"{rec.writes / rec.syncs:.1f}", mean_size=f"{rec.bytes / max(rec.writes, 1):.0f}",
                            max_size=self.max_size)
