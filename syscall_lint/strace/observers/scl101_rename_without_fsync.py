"""SCL101 in a trace: a file written and renamed over its target with no fsync since the last write."""

from __future__ import annotations

from syscall_lint.strace.events import Renamed
from syscall_lint.strace.observer import Observer


class RenameWithoutFsync(Observer):
    CODE = "SCL101"

    def on_rename(self, ev: Renamed) -> None:
        if ev.info is None or not ev.dirty:
            return
        call, info = ev.call, ev.info
        story = {"open_line": info.open_line, "last_write_line": info.last_write_line, "rename_line": call.line,
                 "pid": call.pid, "src": ev.src, "dst": ev.dst, "missing": "fsync/fdatasync after the last write"}
        self.ctx.report(self.CODE, call.line, ev.task.tgid, ev.dst, story, call=call.name + "()", src=repr(ev.src),
                        dst=repr(ev.dst), write_line=info.last_write_line, times="")
