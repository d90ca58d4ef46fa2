"""The FdTracker: processes, threads, fd tables, cwd, and what each fd is, from the event stream.

It turns calls into typed events (events.py) for the rules that subscribe to them, and keeps only
live state (bounded, see state.py): memory is flat however long the log.
"""

from __future__ import annotations

import posixpath
import re
from typing import Optional

from syscall_lint.strace import args as A
from syscall_lint.strace import events as E
from syscall_lint.strace.parser import Call, Exit
from syscall_lint.strace.state import (DIRECTORY, FILE, OTHER, PIPE, SOCKET, TTY, UNKNOWN, FdInfo, Tasks,
                                       kind_from_note, resolve)

OPENS = {"open": (None, 0, 1), "openat": (0, 1, 2), "openat2": (0, 1, 2), "creat": (None, 0, None)}
CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
FD_MAKERS = frozenset({"eventfd", "eventfd2", "epoll_create", "epoll_create1", "signalfd", "signalfd4",
                       "timerfd_create", "inotify_init", "inotify_init1", "memfd_create", "pidfd_open", "userfaultfd",
                       "perf_event_open", "fanotify_init", "io_uring_setup"})
DUPS = frozenset({"dup", "dup2", "dup3", "fcntl", "fcntl64"})
# The calls the tracker always needs, whatever the rules: every call that makes, duplicates or closes
# fds, clone/fork/exec, and the cwd. Without them the fd state goes wrong.
TRACKED = (frozenset(OPENS) | CLONES | FD_MAKERS | DUPS | E.ACCEPTS |
           frozenset({"close", "close_range", "pipe", "pipe2", "socketpair", "socket", "chdir", "fchdir",
                      "execve", "execveat"}))

OPEN_ARGS_KEPT = 4096  # decoded open arguments kept for reuse (bounded: a log of distinct paths clears it)
OPEN_ARGS_LONGEST = 1024  # longer argument lists are decoded every time: the cache stays a few MB at most
_FLAGS = re.compile(rb"flags=([A-Z0-9_|]+)")
_INTS = re.compile(rb"-?\d{1,10}")
_SOCKET_TYPES = ((b"SOCK_STREAM", "TCP"), (b"SOCK_DGRAM", "UDP"))


class FdTracker:
    def __init__(self, ctx, observers: list):
        self.ctx = ctx
        self.tasks = Tasks()
        self.by_tid = self.tasks.by_tid  # the live tasks by tid: hot handlers look a task up without a call
        self.sync_gen = 0  # bumped by sync()/syncfs(): a file is dirty only if written since
        self.written: dict = {}  # path -> FdInfo of the last description written there (for renames)
        self.watched: dict = {}  # tid -> how many rules want every call of it (see watch())
        self.open_args: dict = {}  # (open call's name, its arguments) -> (dirfd, path, flags), see _open_args
        self.open_flags: dict = {}  # an open's flags -> what they say, see _open_flags
        self.observers = observers
        subs = {name: [getattr(o, name) for o in observers if getattr(o, name, None) is not None]
                for name in E.SYSCALLS}
        self.on_write_subs = subs["on_write"]
        self.on_read_subs = subs["on_read"]
        self.on_wait_subs = subs["on_wait"]
        self.on_sync_subs = subs["on_sync"]
        self.on_rename_subs = subs["on_rename"]
        self.on_accept_subs = subs["on_accept"]
        self.on_spawn_subs = subs["on_spawn"]
        self.on_close_subs = subs["on_close"]
        self.on_exit_subs = subs["on_exit"]
        self.on_direct_io_subs = subs["on_direct_io"]
        self.on_watched_subs = [o.on_watched for o in observers if getattr(o, "on_watched", None) is not None]
        self.handlers = self._handlers()

    # setup ---------------------------------------------------------------------
    def _handlers(self) -> dict:
        handlers = {name: self._open for name in OPENS}
        handlers.update({name: self._clone for name in CLONES})
        handlers.update({name: self._fd_maker for name in FD_MAKERS})
        handlers.update({name: self._dup for name in DUPS})
        handlers.update({"close": self._close, "close_range": self._close_range, "pipe": self._pipe,
                         "pipe2": self._pipe, "socketpair": self._pipe, "socket": self._socket,
                         "chdir": self._chdir, "fchdir": self._fchdir})
        handlers.update({name: self._accept for name in E.ACCEPTS})
        if self.on_write_subs or self.on_rename_subs or self.on_sync_subs or self.on_direct_io_subs:
            handlers.update({name: self._write for name in E.WRITES})
        if self.on_read_subs or self.on_direct_io_subs:
            handlers.update({name: self._read for name in E.READS})
        if self.on_wait_subs:
            handlers.update({name: self._wait for name in E.WAITS})
        if self.on_sync_subs or self.on_rename_subs:
            handlers.update({name: self._fsync for name in E.FSYNCS})
            handlers.update({name: self._global_sync for name in E.GLOBAL_SYNCS})
        if self.on_rename_subs:
            handlers.update({name: self._rename for name in E.RENAMES})
        raw: dict = {}
        for obs in self.observers:
            for name in obs.SYSCALLS:
                raw.setdefault(name, []).append(obs.on_call)
        for name, fns in raw.items():
            handlers[name] = self._with_raw(handlers.get(name), fns)
        return handlers

    def _with_raw(self, first, fns):
        tasks = self.tasks

        def both(call: Call) -> None:
            if first is not None:
                first(call)
            task = tasks.get(call.pid)
            for fn in fns:
                fn(call, task)

        return both

    @property
    def wanted(self) -> set:
        """The syscall names the parser must decode (bytes); it skips the rest cheaply."""
        return {name.encode() for name in self.handlers}

    def watch(self, tid: int) -> None:
        """Deliver every call of `tid` to on_watched (e.g. a child that may use an accepted socket)."""
        self.watched[tid] = self.watched.get(tid, 0) + 1
        if len(self.watched) > 1 << 16:
            self.ctx.room(self.watched, "children awaiting their first call")

    def unwatch(self, tid: int) -> None:
        n = self.watched.get(tid, 0) - 1
        if n > 0:
            self.watched[tid] = n
        else:
            self.watched.pop(tid, None)

    # the loop ------------------------------------------------------------------
    def feed(self, events) -> None:
        handlers = self.handlers
        watched = self.watched
        watchers = self.on_watched_subs
        for ev in events:
            if type(ev) is Call:
                if watched and ev.pid in watched:
                    for fn in watchers:
                        fn(ev)
                handler = handlers.get(ev.name)
                if handler is not None:
                    handler(ev)
            elif type(ev) is Exit:
                self._exit(ev)

    def finish(self) -> None:
        for obs in self.observers:
            obs.finish()

    # fds -----------------------------------------------------------------------
    def _info_for(self, task, num: int, note: Optional[str], line: int) -> FdInfo:
        """The description behind `num`; an fd this trace never saw made is described from -y, or unknown."""
        info = task.fds.get(num)
        if info is None:
            kind, sock = kind_from_note(note) if note else (UNKNOWN, "")
            info = FdInfo(note, kind, line, task.tid, socket=sock)
            task.fds.put(num, info)
        return info

    def _fd_arg(self, task, call: Call) -> tuple:
        """(fd, what it refers to) for a call whose first argument is an fd, or (None, None). The -y note
        is decoded only for an fd this trace has not seen made: the table already knows the rest."""
        num = A.fd_number(call.args)
        if num is not None:
            info = task.fds.get(num)
            if info is not None:
                return num, info
        num, note = A.fd(call.args)
        return (num, self._info_for(task, num, note, call.line)) if num is not None else (None, None)

    def _open(self, call: Call) -> None:
        ret = call.ret
        if ret is None or ret < 0:
            return
        task = self.by_tid.get(call.pid) or self.tasks.get(call.pid)
        _, note = A.fd(call.result)
        args = call.args
        if note is not None and note[:1] == "/" and call.name != "creat":
            # -y named the file: the path argument matters only to learn the cwd from a relative open
            q = args.find(b'"')
            if q >= 0 and (task.cwd[0] is not None or args[q + 1:q + 2] == b"/"):
                flags = args[args.rfind(b'"') + 1:]  # after the path: a path's own text is not a flag
                self._opened(call, task, ret, note, flags)
                return
        decoded = self.open_args.get((call.name, args))
        if decoded is None:
            decoded = self._open_args(call.name, args)
        dirfd, raw_path, flags = decoded
        if note and raw_path and not raw_path.startswith("/") and task.cwd[0] is None:
            rel = posixpath.normpath(raw_path)
            if note.endswith("/" + rel):
                task.cwd[0] = note[: -len(rel) - 1] or "/"  # learn the cwd from -y
        self._opened(call, task, ret, note or resolve(task, dirfd, raw_path), flags)

    def _open_args(self, name: str, args: bytes) -> tuple:
        """(dirfd, path, flags) of an open's arguments, kept: programs open the same paths again and again."""
        dirfd_i, path_i, flags_i = OPENS[name]
        parts = A.split_open(args) if name == "openat" else A.split(args)
        raw_path = A.string(parts[path_i]) if path_i < len(parts) else None
        flags = parts[flags_i] if flags_i is not None and flags_i < len(parts) else b""
        if name == "creat":
            flags = b"O_CREAT|O_WRONLY|O_TRUNC"
        dirfd = parts[dirfd_i] if dirfd_i is not None and dirfd_i < len(parts) else None
        decoded = (dirfd, raw_path, flags)
        if len(args) <= OPEN_ARGS_LONGEST:
            if len(self.open_args) >= OPEN_ARGS_KEPT:
                self.open_args.clear()
            self.open_args[(name, args)] = decoded
        return decoded

    def _opened(self, call: Call, task, ret: int, path: Optional[str], flags: bytes) -> None:
        seen = self.open_flags.get(flags)
        if seen is None:
            seen = self._open_flags(flags)
        directory, osync, direct = seen
        if directory:
            kind = DIRECTORY
        elif path is not None and (path.startswith(("/dev/pts/", "/dev/tty")) or path == "/dev/console"):
            kind = TTY
        else:
            kind = FILE
        info = FdInfo(path, kind, call.line, call.pid, osync=osync, direct=direct)
        task.fds.put(ret, info)  # (_put, inline: opens are the most frequent fd makers)

    def _open_flags(self, flags: bytes) -> tuple:
        """(O_DIRECTORY, O_SYNC or O_DSYNC, O_DIRECT) of an open's flags, kept: a program uses a few."""
        seen = (flags.find(b"O_DIRECTORY") >= 0, flags.find(b"O_SYNC") >= 0 or flags.find(b"O_DSYNC") >= 0,
                flags.replace(b"O_DIRECTORY", b"").find(b"O_DIRECT") >= 0)
        if len(flags) <= OPEN_ARGS_LONGEST:
            if len(self.open_flags) >= OPEN_ARGS_KEPT:
                self.open_flags.clear()
            self.open_flags[flags] = seen
        return seen

    @staticmethod
    def _put(task, num: int, info: FdInfo) -> None:
        task.fds.put(num, info)  # a written file stays in self.written after its close, for a later rename

    def _fd_maker(self, call: Call) -> None:
        if call.ret is not None and call.ret >= 0:
            task = self.tasks.get(call.pid)
            self._put(task, call.ret, FdInfo(None, OTHER, call.line, call.pid))

    def _socket(self, call: Call) -> None:
        if call.ret is not None and call.ret >= 0:
            sock = next((name for flag, name in _SOCKET_TYPES if flag in call.args), "")
            if call.args.find(b"AF_UNIX") >= 0 or call.args.find(b"AF_LOCAL") >= 0:
                sock = "UNIX"
            task = self.tasks.get(call.pid)
            self._put(task, call.ret, FdInfo(None, SOCKET, call.line, call.pid, socket=sock))

    def _pipe(self, call: Call) -> None:
        if call.ret != 0:
            return
        args = call.args
        bracket = args[args.find(b"[") + 1: args.find(b"]")]
        kind = SOCKET if call.name == "socketpair" else PIPE
        task = self.tasks.get(call.pid)
        for num in _INTS.findall(bracket)[:2]:
            self._put(task, int(num), FdInfo(None, kind, call.line, call.pid, socket="UNIX" if kind == SOCKET else ""))

    def _close(self, call: Call) -> None:
        num = A.fd_number(call.args)
        if num is None:
            num, _ = A.fd(call.args)
        if num is None:
            return
        task = self.by_tid.get(call.pid) or self.tasks.get(call.pid)
        info = task.fds.drop(num) if call.ret == 0 or call.ret is None else task.fds.get(num)
        if self.on_close_subs:
            ev = E.Closed(call, task, num, info)
            for fn in self.on_close_subs:
                fn(ev)

    def _close_range(self, call: Call) -> None:
        parts = A.split(call.args)
        if call.ret != 0 or len(parts) < 2:
            return
        lo = int(parts[0]) if parts[0].isdigit() and len(parts[0]) <= 10 else 0
        hi = int(parts[1]) if parts[1].isdigit() and len(parts[1]) <= 10 else 1 << 31
        task = self.tasks.get(call.pid)
        for num in [n for n in task.fds if lo <= n <= hi]:
            info = task.fds.drop(num)
            if self.on_close_subs:
                ev = E.Closed(call, task, num, info)
                for fn in self.on_close_subs:
                    fn(ev)

    def _dup(self, call: Call) -> None:
        if call.name.startswith("fcntl") and call.args.find(b"F_DUPFD") < 0:
            return
        num, note = A.fd(call.args)
        ret = call.ret
        if ret is None or ret < 0 or num is None or ret == num:
            return
        task = self.tasks.get(call.pid)
        self._put(task, ret, self._info_for(task, num, note, call.line))

    def _chdir(self, call: Call) -> None:
        if call.ret == 0:
            task = self.tasks.get(call.pid)
            task.cwd[0] = resolve(task, None, A.string(call.args))

    def _fchdir(self, call: Call) -> None:
        num, note = A.fd(call.args)
        if call.ret == 0:
            task = self.tasks.get(call.pid)
            info = task.fds.get(num)
            task.cwd[0] = note or (info.path if info else None)

    # processes -----------------------------------------------------------------
    def _accept(self, call: Call) -> None:
        task = self.tasks.get(call.pid)
        if call.ret is not None and call.ret >= 0:
            self._put(task, call.ret, FdInfo(None, SOCKET, call.line, call.pid))
            for fn in self.on_accept_subs:
                fn(E.Accepted(call, task, call.ret))
        if self.on_wait_subs:
            ev = E.Waited(call, task)
            for fn in self.on_wait_subs:
                fn(ev)

    def _clone(self, call: Call) -> None:
        if call.ret is None or call.ret <= 0:
            return
        flags = b"SIGCHLD" if call.name in ("fork", "vfork") else (m.group(1) if (m := _FLAGS.search(call.args)) else b"")
        thread = flags.find(b"CLONE_THREAD") >= 0
        parent = self.tasks.get(call.pid)
        child = self.tasks.clone(parent, call.ret, thread, flags.find(b"CLONE_FILES") >= 0,
                                 flags.find(b"CLONE_FS") >= 0)
        if self.on_spawn_subs:
            shares_memory = flags.find(b"CLONE_VM") >= 0 and not thread or call.name == "vfork"
            ev = E.Spawned(call, parent, child, thread, shares_memory)
            for fn in self.on_spawn_subs:
                fn(ev)

    def _exit(self, ev: Exit) -> None:
        task = self.tasks.by_tid.get(ev.pid)
        process = task is None or task.tgid == ev.pid
        if self.on_exit_subs:
            exited = E.Exited(ev, task, process)
            for fn in self.on_exit_subs:
                fn(exited)
        self.tasks.remove(ev.pid)

    # what rules subscribe to ---------------------------------------------------
    def _write(self, call: Call) -> None:
        task = self.by_tid.get(call.pid) or self.tasks.get(call.pid)
        num = A.fd_number(call.args)
        info = task.fds.get(num) if num is not None else None
        if info is None:  # an fd this trace has not seen made (or not a plain number): _fd_arg decides
            num, info = self._fd_arg(task, call)
            if info is None:
                return
        if info.direct and self.on_direct_io_subs:
            self._direct_io(call, task, num, info, True)
        ret = call.ret
        if ret is None or ret < 0:
            return
        if info.kind == FILE:
            if not info.writes and info.path:
                if info.path not in self.written:
                    self.ctx.room(self.written, "files written")
                self.written[info.path] = info
            info.writes += 1
            info.last_write_line = call.line
            if not info.pending_writes:
                info.pending_first = call.line
            info.pending_writes += 1
            info.pending_bytes += ret
            if not info.osync:
                info.dirty = True
                info.dirty_gen = self.sync_gen
        if self.on_write_subs:
            ev = E.Wrote(call, task, num, info, ret)
            for fn in self.on_write_subs:
                fn(ev)

    def _read(self, call: Call) -> None:
        ret = call.ret
        if ret is None:
            return
        task = self.by_tid.get(call.pid) or self.tasks.get(call.pid)
        num = A.fd_number(call.args)
        info = task.fds.get(num) if num is not None else None
        if info is None:  # as in _write
            num, info = self._fd_arg(task, call)
        if info is not None and info.direct and self.on_direct_io_subs:
            self._direct_io(call, task, num, info, False)
        if self.on_read_subs:
            ev = E.Read(call, task, num, info, ret)
            for fn in self.on_read_subs:
                fn(ev)

    def _direct_io(self, call: Call, task, num: int, info: FdInfo, write: bool) -> None:
        ev = E.DirectIO(call, task, num, info, write)
        for fn in self.on_direct_io_subs:
            fn(ev)

    def _wait(self, call: Call) -> None:
        ev = E.Waited(call, self.by_tid.get(call.pid) or self.tasks.get(call.pid))
        for fn in self.on_wait_subs:
            fn(ev)

    def _fsync(self, call: Call) -> None:
        num, note = A.fd(call.args)
        task = self.tasks.get(call.pid)
        info = task.fds.get(num) if num is not None else None
        path = note or (info.path if info else None)
        writes = nbytes = 0
        if info is not None and call.ret == 0:
            writes, nbytes = info.pending_writes, info.pending_bytes
            info.dirty = False
            info.synced = True
            info.pending_writes = info.pending_bytes = 0
        ev = E.Synced(call, task, num, info, path, writes, nbytes)
        for fn in self.on_sync_subs:
            fn(ev)

    def _global_sync(self, call: Call) -> None:
        if call.ret == 0 or call.ret is None:
            self.sync_gen += 1  # O(1): every file written before now is clean
        ev = E.Synced(call, self.tasks.get(call.pid), None, None, None, 0, 0)
        for fn in self.on_sync_subs:
            fn(ev)

    def _rename(self, call: Call) -> None:
        if call.ret != 0:
            return
        parts = A.split(call.args)
        task = self.tasks.get(call.pid)
        if call.name == "rename":
            if len(parts) < 2:
                return
            src = resolve(task, None, A.string(parts[0]))
            dst = resolve(task, None, A.string(parts[1]))
        else:
            if len(parts) < 4:
                return
            src = resolve(task, parts[0], A.string(parts[1]))
            dst = resolve(task, parts[2], A.string(parts[3]))
        if src is None or dst is None:
            return
        info = self.written.pop(src, None)
        dirty = info is not None and info.dirty and info.dirty_gen == self.sync_gen
        ev = E.Renamed(call, task, src, dst, info, dirty)
        for fn in self.on_rename_subs:
            fn(ev)

