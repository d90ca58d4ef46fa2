"""What the FdTracker publishes to trace rules: typed events, one per syscall that matters.

Each event carries the Call (line, pid, raw arguments, result), the Task that made it, and what the
tracker already decoded (the fd, what the fd refers to, sizes, paths). A rule subscribes to an event
by defining the handler named in HANDLERS, and the tracker then asks the parser for the syscalls in
SYSCALLS[event]: that is how `record`'s `-e trace=` set and the parser's fast-skip set are derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace.parser import Call, Exit
from syscall_lint.strace.state import FdInfo, Task

WRITES = frozenset({"write", "writev", "pwrite64", "pwritev", "pwritev2", "send", "sendto", "sendmsg"})
READS = frozenset({"read", "readv", "pread64", "preadv", "preadv2", "recvfrom", "recvmsg", "recv", "recvmmsg"})
# Waiting on a peer or on time: a thread that makes one of these is not in a tight output loop.
WAITS = frozenset({"poll", "ppoll", "select", "pselect6", "_newselect", "epoll_wait", "epoll_pwait", "epoll_pwait2",
                   "nanosleep", "clock_nanosleep", "wait4", "waitid", "io_uring_enter"})
ACCEPTS = frozenset({"accept", "accept4"})
FSYNCS = frozenset({"fsync", "fdatasync"})
GLOBAL_SYNCS = frozenset({"sync", "syncfs"})
RENAMES = frozenset({"rename", "renameat", "renameat2"})


@dataclass(slots=True)
class Wrote:
    call: Call
    task: Task
    fd: int
    info: FdInfo
    size: int  # bytes written (the result)


@dataclass(slots=True)
class Read:
    call: Call
    task: Task
    fd: Optional[int]
    info: Optional[FdInfo]
    size: int  # bytes read (the result; 0 at end of file)


@dataclass(slots=True)
class DirectIO:
    """A read or write on an fd opened with O_DIRECT, failed ones included: EINVAL is how the kernel
    refuses a transfer that is not aligned to the device's logical block size."""

    call: Call
    task: Task
    fd: int
    info: FdInfo
    write: bool


@dataclass(slots=True)
class Waited:
    """A poll/select/epoll wait, a sleep, a wait for a child, an accept: the thread blocked, or
    asked whether it would have to (a zero timeout)."""

    call: Call
    task: Task


@dataclass(slots=True)
class Synced:
    """fsync/fdatasync of one fd (info is None if the fd is unknown), or sync/syncfs (fd is None)."""

    call: Call
    task: Task
    fd: Optional[int]
    info: Optional[FdInfo]
    path: Optional[str]
    pending_writes: int  # writes to the file since its previous fsync
    pending_bytes: int


@dataclass(slots=True)
class Renamed:
    call: Call
    task: Task
    src: str
    dst: str
    info: Optional[FdInfo]  # the renamed file, if this trace saw it written; None otherwise
    dirty: bool  # written since its last fsync (and no sync()/syncfs() since)


@dataclass(slots=True)
class Accepted:
    call: Call
    task: Task
    fd: int


@dataclass(slots=True)
class Spawned:
    call: Call
    parent: Task
    child: Task
    thread: bool
    shares_memory: bool  # CLONE_VM without CLONE_THREAD: vfork or posix_spawn, about to exec


@dataclass(slots=True)
class Closed:
    call: Call
    task: Task
    fd: int
    info: Optional[FdInfo]


@dataclass(slots=True)
class Exited:
    exit: Exit
    task: Optional[Task]
    process: bool  # the thread-group leader: the whole process is gone


# handler name -> the syscalls the tracker needs to publish that event
SYSCALLS = {
    "on_write": WRITES,
    "on_read": READS,
    "on_wait": WAITS | ACCEPTS,
    "on_sync": FSYNCS | GLOBAL_SYNCS,
    "on_rename": RENAMES,
    "on_accept": ACCEPTS,
    "on_direct_io": READS | WRITES,
    "on_spawn": frozenset(),  # clone/fork are always traced: the tracker needs them
    "on_close": frozenset(),
    "on_exit": frozenset(),
}
