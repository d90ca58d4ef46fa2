"""The tracker's model: tasks (processes and threads), fd tables, and what each fd refers to.

Everything here is bounded: a hostile log that starts millions of processes or opens millions of
fds without closing them makes the tracker forget the oldest, and say so in a note.
"""

from __future__ import annotations

import itertools
import posixpath
from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace import args as A

# What an fd refers to. "unknown" is an fd the trace never showed being made (stdin, or opened
# before strace attached) and that -y did not describe: it may be a tty, a pipe or a file.
FILE, DIRECTORY, SOCKET, PIPE, TTY, OTHER, UNKNOWN = "file", "directory", "socket", "pipe", "tty", "other", "unknown"
PEERS = frozenset({SOCKET, PIPE, TTY, UNKNOWN})  # reading one of these may wait on another party

MAX_TASKS = 1 << 16  # live processes and threads tracked at once; the oldest are forgotten beyond
MAX_FD_ENTRIES = 1 << 17  # fd-table entries over all live tables (~60 MB); old tasks, then old fds, go beyond


@dataclass(slots=True, eq=False)
class FdInfo:
    """One open file description: shared by dup'd fds and across fork, so state follows the file."""

    path: Optional[str]
    kind: str
    open_line: int = 0
    pid: int = 0
    socket: str = ""  # TCP, UDP, UNIX-STREAM... when -yy or the socket() call says
    osync: bool = False  # O_SYNC/O_DSYNC: every write is durable on its own
    direct: bool = False  # O_DIRECT: transfers bypass the page cache and must be block-aligned
    writes: int = 0
    last_write_line: int = 0
    dirty: bool = False
    dirty_gen: int = 0  # the tracker's sync generation at the last write (sync()/syncfs() bump it)
    synced: bool = False
    pending_writes: int = 0  # writes since the last fsync (SCL103)
    pending_bytes: int = 0
    pending_first: int = 0
    refs: int = 0  # fds (in all tables) that refer to this description


def kind_from_note(note: str) -> tuple:
    """(kind, socket type) from a -y/-yy annotation: `/tmp/x`, `pipe:[12]`, `TCP:[...]`, `/dev/pts/1`."""
    if note.startswith("/"):
        if note.startswith(("/dev/pts/", "/dev/tty")) or note == "/dev/console":
            return TTY, ""
        return FILE, ""
    if note.startswith("pipe:"):
        return PIPE, ""
    if note.startswith("socket:"):
        return SOCKET, ""
    colon = note.find(":[")
    if colon > 0 and note[:colon].replace("-", "").replace("v6", "").isalpha():
        return SOCKET, note[:colon]
    return OTHER, ""


class Budget:
    """What the tracker holds, and what it had to forget to stay within its bounds (said in a note)."""

    __slots__ = ("fd_entries", "dropped_tasks", "dropped_fds")

    def __init__(self):
        self.fd_entries = 0
        self.dropped_tasks = 0
        self.dropped_fds = 0


class FdTable(dict):
    """One fd table (shared by threads and CLONE_FILES children) that counts its entries into the
    budget and keeps each description's reference count, so "is this file still open?" is O(1)."""

    __slots__ = ("budget", "users")

    def __init__(self, budget: Budget, items=()):
        super().__init__(items)
        self.budget = budget
        self.users = 1
        budget.fd_entries += len(self)
        for info in self.values():
            info.refs += 1

    def put(self, num: int, info: FdInfo) -> Optional[FdInfo]:
        """Point `num` at `info`; the description it pointed at before, if any (now closed there)."""
        old = dict.get(self, num)
        if old is info:
            return None
        if old is None:
            budget = self.budget
            budget.fd_entries += 1
            if budget.fd_entries > MAX_FD_ENTRIES and self:
                budget.dropped_fds += evict_oldest(self, self.drop)
        else:
            old.refs -= 1
        info.refs += 1
        dict.__setitem__(self, num, info)
        return old

    def drop(self, num: int) -> Optional[FdInfo]:
        info = dict.pop(self, num, None)
        if info is not None:
            self.budget.fd_entries -= 1
            info.refs -= 1
        return info

    def release(self) -> list:
        """A task using this table is gone; the last one closes every fd. Returns what was closed."""
        self.users -= 1
        if self.users > 0:
            return []
        closed = list(self.values())
        for info in closed:
            info.refs -= 1
        self.budget.fd_entries -= len(self)
        dict.clear(self)
        return closed


class Task:
    """A thread or process. Threads share `fds` and `cwd` (a one-item list) with their group."""

    __slots__ = ("tid", "tgid", "fds", "cwd", "parent")

    def __init__(self, tid: int, fds: FdTable, tgid: Optional[int] = None, cwd=None, parent: Optional[int] = None):
        self.tid = tid
        self.tgid = tgid if tgid is not None else tid
        self.fds = fds
        self.cwd = cwd if cwd is not None else [None]
        self.parent = parent


class Tasks:
    """The live tasks, bounded."""

    def __init__(self):
        self.by_tid: dict = {}
        self.budget = Budget()

    def get(self, tid: int) -> Task:
        task = self.by_tid.get(tid)
        if task is None:
            task = self.add(Task(tid, FdTable(self.budget)))
        return task

    def add(self, task: Task) -> Task:
        old = self.by_tid.pop(task.tid, None)
        if old is not None:
            old.fds.release()
        self.by_tid[task.tid] = task
        budget = self.budget
        if len(self.by_tid) > 1 and (len(self.by_tid) > MAX_TASKS or budget.fd_entries > MAX_FD_ENTRIES):
            before = budget.fd_entries
            budget.dropped_tasks += evict_oldest(self.by_tid, self.remove)
            budget.dropped_fds += before - budget.fd_entries
        return task

    def remove(self, tid: int) -> list:
        """Forget a task; the fd descriptions its exit closed (the last user of its table)."""
        task = self.by_tid.pop(tid, None)
        return task.fds.release() if task is not None else []

    def clone(self, parent: Task, child_tid: int, thread: bool, share_files: bool, share_fs: bool) -> Task:
        if share_files or thread:
            fds = parent.fds
            fds.users += 1
        else:
            fds = FdTable(self.budget, parent.fds)
        child = Task(child_tid, fds, tgid=parent.tgid if thread else child_tid,
                     cwd=parent.cwd if (thread or share_fs) else [parent.cwd[0]], parent=parent.tid)
        return self.add(child)

    def notes(self) -> list:
        b = self.budget
        if not b.dropped_tasks and not b.dropped_fds:
            return []
        return [f"more live processes/fds than the tracker keeps ({MAX_TASKS:,} tasks, {MAX_FD_ENTRIES:,} fd entries): "
                f"forgot {b.dropped_tasks:,} task(s) and {b.dropped_fds:,} fd(s); findings about them may be missing"]


def resolve(task: Task, dirfd_arg: Optional[bytes], path: Optional[str]) -> Optional[str]:
    """An absolute path where the cwd or dirfd is known, else the path as the program wrote it."""
    if path is None:
        return None
    if path.startswith("/"):
        if "/." in path or "//" in path or path.endswith("/"):
            return posixpath.normpath(path)
        return path  # already normal: normpath is slow and opens are frequent
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


def evict_oldest(table: dict, remove) -> int:
    """Remove the oldest quarter of `table` (insertion order) with `remove(key)`; how many were removed.

    In batches: popping one first key at a time from a dict rescans its deleted slots (quadratic)."""
    victims = list(itertools.islice(table, max(1, min(len(table) - 1, len(table) // 4))))
    for key in victims:
        remove(key)
    return len(victims)


def dirname(path: str) -> str:
    d = posixpath.dirname(path)
    return d or "."
