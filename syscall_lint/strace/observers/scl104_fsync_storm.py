"""SCL104 in a trace: one process fsyncs many different files one by one, where one syncfs() (or a
single sync at the end of the batch) would make them all durable with one wait for the disk."""

from __future__ import annotations

from dataclasses import dataclass, field

from syscall_lint.strace.events import Synced
from syscall_lint.strace.observer import Observer

MAX_FILES_HELD = 1024  # distinct files remembered per process; the count goes on


@dataclass(slots=True)
class Storm:
    pid: int
    first_line: int
    log: str
    syncs: int = 0
    files: set = field(default_factory=set)
    distinct: int = 0
    examples: list = field(default_factory=list)


class FsyncStorm(Observer):
    CODE = "SCL104"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.storms: dict = {}  # (tgid, log) -> Storm since the process's last sync()/syncfs()
        self.worst: dict = {}  # (tgid, log) -> the Storm with most files

    def on_sync(self, ev: Synced) -> None:
        if ev.call.ret != 0:
            return
        key = (ev.task.tgid, self.ctx.path)
        if ev.fd is None:  # sync()/syncfs(): what this rule asks for; a new batch starts
            self._close(key)
            return
        if ev.info is None or ev.info.kind != "file" or not ev.path:
            return
        storm = self.storms.get(key)
        if storm is None:
            self.ctx.room(self.storms, "processes syncing files")
            storm = self.storms[key] = Storm(ev.task.tgid, ev.call.line, self.ctx.path)
        storm.syncs += 1
        if ev.path not in storm.files:
            storm.distinct += 1
            if len(storm.files) < MAX_FILES_HELD:
                storm.files.add(ev.path)
                if len(storm.examples) < 3:
                    storm.examples.append(ev.path)

    def _close(self, key) -> None:
        storm = self.storms.pop(key, None)
        if storm is None:
            return
        best = self.worst.get(key)
        if best is None or storm.distinct > best.distinct:
            if best is None:
                self.ctx.room(self.worst, "processes syncing files")
            self.worst[key] = storm

    def finish(self) -> None:
        for key in list(self.storms):
            self._close(key)
        for storm in self.worst.values():
            if storm.distinct < self.options["min-files"]:
                continue
            self.ctx.report(self.CODE, storm.first_line, storm.pid, "fsync storm",
                            {"pid": storm.pid, "files": storm.distinct, "syncs": storm.syncs,
                             "examples": storm.examples}, path=storm.log,
                            files=storm.distinct, syncs=storm.syncs, examples=", ".join(storm.examples),
                            min_files=self.options["min-files"])
