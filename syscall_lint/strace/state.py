"""Process and fd state: which task owns which fd table, what each fd is, where each task stands."""

from __future__ import annotations

import posixpath
from typing import Optional

from syscall_lint.strace import args as A


class FdInfo:
    """One open file description (shared by dup'd fds and across fork)."""

    __slots__ = ("path", "kind", "writes", "dirty", "synced", "osync", "open_line", "last_write_line",
                 "is_dir", "pid", "pending_writes", "pending_bytes", "pending_first")

    def __init__(self, path, kind, open_line=0, osync=False, is_dir=False, pid=0):
        self.path = path
        self.kind = kind  # file | socket | pipe | other
        self.writes = 0
        self.dirty = False
        self.synced = False
        self.osync = osync
        self.open_line = open_line
        self.last_write_line = 0
        self.is_dir = is_dir
        self.pid = pid
        self.pending_writes = 0  # writes since the last sync (SCL103)
        self.pending_bytes = 0
        self.pending_first = 0


class Task:
    __slots__ = ("tid", "tgid", "fds", "cwd", "parent")

    def __init__(self, tid, tgid=None, fds=None, cwd=None, parent=None):
        self.tid = tid
        self.tgid = tgid if tgid is not None else tid
        self.fds = fds if fds is not None else {}
        self.cwd = cwd if cwd is not None else [None]  # a one-item list: threads share it
        self.parent = parent


class State:
    def __init__(self):
        self.tasks: dict = {}

    def task(self, tid: int) -> Task:
        t = self.tasks.get(tid)
        if t is None:
            t = self.tasks[tid] = Task(tid)
        return t

    def resolve(self, task: Task, dirfd_arg: Optional[bytes], path: Optional[str]) -> Optional[str]:
        """An absolute path where the cwd or dirfd is known, else the path as the program wrote it."""
        if path is None:
            return None
        if path.startswith("/"):
            return posixpath.normpath(path)
        base = None
        if dirfd_arg is not None:
            num, note = A.fd(dirfd_arg)
            if note:
                base = note
                if num is None and task.cwd[0] is None:
                    task.cwd[0] = note  # -y shows the cwd on AT_FDCWD
            elif num is not None:
                info = task.fds.get(num)
                base = info.path if info else None
            else:
                base = task.cwd[0]
        else:
            base = task.cwd[0]
        return posixpath.normpath(posixpath.join(base, path)) if base else posixpath.normpath(path)

    def clone(self, parent: Task, child_tid: int, flags: bytes) -> Task:
        thread = b"CLONE_THREAD" in flags
        share_files = b"CLONE_FILES" in flags or thread
        child = Task(child_tid,
                     tgid=parent.tgid if thread else child_tid,
                     fds=parent.fds if share_files else dict(parent.fds),
                     cwd=parent.cwd if (thread or b"CLONE_FS" in flags) else [parent.cwd[0]],
                     parent=parent.tid)
        self.tasks[child_tid] = child
        return child


def dirname(path: str) -> str:
    d = posixpath.dirname(path)
    return d or "."
