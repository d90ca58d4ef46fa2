"""Trace rules over the event stream: durability (SCL101/102), batching (SCL201), connections
(SCL301/302) and zero-copy (SCL401). Each handler is keyed by syscall name; calls no rule needs
are counted and skipped without decoding their arguments.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict

from syscall_lint import findings as fmodel
from syscall_lint.strace import args as A
from syscall_lint.strace.parser import Call, Exit
from syscall_lint.strace.state import FdInfo, State, dirname

COST_NS = 170
_FLAGS = re.compile(rb"flags=([A-Z0-9_|]+)")
_INTS = re.compile(rb"-?\d+")
OPENS = {"open": (None, 0, 1), "openat": (0, 1, 2), "openat2": (0, 1, 2), "creat": (None, 0, None)}
WRITES = {"write", "writev", "pwrite64", "pwritev", "pwritev2", "send", "sendto", "sendmsg"}
READS = {"read", "readv", "pread64", "preadv", "preadv2", "recvfrom", "recvmsg", "recv", "recvmmsg"}
WAITS = {"accept", "accept4", "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait",
         "epoll_pwait2", "nanosleep", "clock_nanosleep", "wait4", "waitid", "io_uring_enter"}
CLOCKS = {"clock_gettime", "clock_gettime64", "gettimeofday", "time"}
FD_MAKERS = {"socket", "eventfd", "eventfd2", "epoll_create", "epoll_create1", "signalfd", "signalfd4",
             "timerfd_create", "inotify_init", "inotify_init1", "memfd_create", "pidfd_open", "userfaultfd",
             "perf_event_open", "fanotify_init", "io_uring_setup"}


class Run:
    __slots__ = ("count", "bytes", "first_line", "last_line", "first_ts", "last_ts", "fd", "path", "pid", "file")

    def __init__(self, call: Call, fd, path, file):
        self.file = file
        self.count = 0
        self.bytes = 0
        self.first_line = call.line
        self.first_ts = call.ts
        self.fd, self.path, self.pid = fd, path, call.pid
        self.last_line, self.last_ts = call.line, call.ts


class TraceAnalyzer:
    def __init__(self, settings, path: str):
        self.settings = settings
        self.path = path
        self.enabled = settings.enabled_codes(path)
        self.state = State()
        self.closed: dict = {}  # path -> FdInfo of written files already closed
        self.pending_dir: dict = {}  # directory -> list of (Call, src, dst, pid)
        self.findings: list = []
        self.emitted: dict = {}
        opt = settings.options
        self.min_calls = opt["SCL201"]["min-calls"]
        self.max_size = opt["SCL201"]["max-size"]
        self.rate_limit = opt["SCL201"]["rate-per-second"]
        self.min_pairs = opt["SCL401"]["min-pairs"]
        self.runs: dict = defaultdict(dict)  # tid -> fd -> Run
        self.best_runs: dict = {}  # (tgid, fd identity, file) -> [longest Run, total small writes]
        self.accepts: dict = {}  # tid -> (fd, Call)
        self.spawns: dict = defaultdict(list)  # parent tid -> [(accept call, clone call, child, fd, thread)]
        self.spawn_counts: dict = defaultdict(int)
        self.awaiting: dict = {}  # child tid -> (parent tid, fd, record)
        self.seen_tids: set = set()
        self.last_read: dict = {}  # tid -> (fd, size, line)
        self.copies: dict = {}  # (tid, src fd, dst fd) -> [pairs, bytes, first line, src path]
        self.small_syncs: dict = {}  # (tgid, file, log) -> [syncs, writes, bytes, first line, fd, path, pid]
        self.clock_calls: dict = {}  # (tgid, log) -> [count, first line, names, pid]
        self.min_syncs = opt["SCL103"]["min-syncs"]
        self.min_relay = opt["SCL402"]["min-pairs"]
        self.min_clock = opt["SCL202"]["min-calls"]
        self.handlers = {name: getattr(self, "on_" + name) for name in (
            "close", "close_range", "dup", "dup2", "dup3", "fcntl", "pipe", "pipe2", "socketpair",
            "accept", "accept4", "fsync", "fdatasync", "sync", "syncfs", "rename", "renameat", "renameat2",
            "chdir", "fchdir", "clone", "clone3", "fork", "vfork")}
        for name in OPENS:
            self.handlers[name] = self.on_open
        for name in WRITES:
            self.handlers[name] = self.on_write
        for name in READS:
            self.handlers[name] = self.on_read
        for name in WAITS - {"accept", "accept4"}:
            self.handlers[name] = self.on_wait
        for name in FD_MAKERS:
            self.handlers[name] = self.on_fd_maker
        for name in CLOCKS:
            self.handlers[name] = self.on_clock

    @property
    def wanted(self) -> set:
        """The syscall names the handlers need, for the parser to skip the rest cheaply."""
        return {name.encode() for name in self.handlers}

    # the loop ----------------------------------------------------------------
    def feed(self, events, path: str | None = None) -> None:
        if path is not None:
            self.path = path
        handlers = self.handlers
        seen = self.seen_tids
        awaiting = self.awaiting
        for ev in events:
            if type(ev) is Call:
                tid = ev.pid
                if tid not in seen:
                    seen.add(tid)
                handler = handlers.get(ev.name)
                if handler is not None:
                    handler(ev)
                elif tid in awaiting:
                    self._child_used(ev)
            elif type(ev) is Exit:
                self.on_exit(ev)

    # fds -----------------------------------------------------------------------
    def _task(self, call):
        return self.state.task(call.pid)

    def on_open(self, call: Call) -> None:
        if call.ret is None or call.ret < 0:
            return
        dirfd_i, path_i, flags_i = OPENS[call.name]
        parts = A.split_open(call.args) if call.name == "openat" else A.split(call.args)
        task = self._task(call)
        raw_path = A.string(parts[path_i]) if path_i < len(parts) else None
        flags = parts[flags_i] if flags_i is not None and flags_i < len(parts) else b""
        if call.name == "creat":
            flags = b"O_CREAT|O_WRONLY|O_TRUNC"
        _, note = A.fd(call.result)
        if note and raw_path and not raw_path.startswith("/") and task.cwd[0] is None:
            rel = posixpath.normpath(raw_path)
            if note.endswith("/" + rel):
                task.cwd[0] = note[: -len(rel) - 1] or "/"  # learn the cwd from -y
        path = note or self.state.resolve(task, parts[dirfd_i] if dirfd_i is not None else None, raw_path)
        task.fds[call.ret] = FdInfo(path, "file", call.line, osync=b"O_SYNC" in flags or b"O_DSYNC" in flags,
                                    is_dir=b"O_DIRECTORY" in flags, pid=call.pid)
        self._child_used(call)

    def on_fd_maker(self, call: Call) -> None:
        if call.ret is not None and call.ret >= 0:
            self._task(call).fds[call.ret] = FdInfo(None, "socket" if call.name == "socket" else "other", call.line)

    def on_socketpair(self, call: Call) -> None:
        self._pair(call, "socket")

    def on_pipe(self, call: Call) -> None:
        self._pair(call, "pipe")

    on_pipe2 = on_pipe

    def _pair(self, call: Call, kind: str) -> None:
        if call.ret != 0:
            return
        bracket = call.args[call.args.find(b"[") + 1: call.args.find(b"]")]
        fds = self._task(call).fds
        for num in _INTS.findall(bracket)[:2]:
            fds[int(num)] = FdInfo(None, kind, call.line)

    def _close_fd(self, fds: dict, num: int) -> None:
        info = fds.pop(num, None)
        if info is not None and info.kind == "file" and info.writes and info.path and info not in fds.values():
            self.closed[info.path] = info

    def on_close(self, call: Call) -> None:
        num, _ = A.fd(call.args)
        if num is None:
            return
        self._end_run(call.pid, num)
        self._child_used(call, num)
        if call.ret == 0 or call.ret is None:
            self._close_fd(self._task(call).fds, num)

    def on_close_range(self, call: Call) -> None:
        parts = A.split(call.args)
        if call.ret != 0 or len(parts) < 2:
            return
        lo = int(parts[0]) if parts[0].isdigit() else 0
        hi = int(parts[1]) if parts[1].isdigit() else 1 << 31
        fds = self._task(call).fds
        for num in [n for n in fds if lo <= n <= hi]:
            self._close_fd(fds, num)

    def on_dup(self, call: Call) -> None:
        num, _ = A.fd(call.args)
        if call.ret is None or call.ret < 0 or num is None:
            return
        fds = self._task(call).fds
        if call.ret in fds and call.ret != num:
            self._close_fd(fds, call.ret)
        info = fds.get(num)
        if info is not None:
            fds[call.ret] = info

    on_dup2 = on_dup3 = on_dup

    def on_fcntl(self, call: Call) -> None:
        if b"F_DUPFD" in call.args:
            self.on_dup(call)

    def on_chdir(self, call: Call) -> None:
        if call.ret == 0:
            task = self._task(call)
            task.cwd[0] = self.state.resolve(task, None, A.string(call.args))

    def on_fchdir(self, call: Call) -> None:
        num, note = A.fd(call.args)
        if call.ret == 0:
            task = self._task(call)
            info = task.fds.get(num)
            task.cwd[0] = note or (info.path if info else None)

    # durability ----------------------------------------------------------------
    def on_write(self, call: Call) -> None:
        num, note = A.fd(call.args)
        task = self._task(call)
        info = task.fds.get(num)
        if info is None and num is not None:
            # inherited (stdout) or opened before strace attached; with -y we still know what it is
            kind = ("socket" if ":[" in note else "file" if note.startswith("/") else "other") if note else "inherited"
            info = task.fds[num] = FdInfo(note, kind, call.line)
        if call.pid in self.awaiting:
            self._child_used(call, num)
        if call.ret is None or call.ret < 0 or info is None:
            return
        if info.kind == "file":
            info.writes += 1
            info.last_write_line = call.line
            if not info.pending_writes:
                info.pending_first = call.line
            info.pending_writes += 1
            info.pending_bytes += call.ret
            if not info.osync:
                info.dirty = True
        self._small_write(call, num, info)
        self._copy_pair(call, num, info)

    def on_fsync(self, call: Call) -> None:
        num, note = A.fd(call.args)
        info = self._task(call).fds.get(num)
        path = note or (info.path if info else None)
        if info is not None and call.ret == 0:
            info.dirty = False
            info.synced = True
            if 0 < info.pending_writes <= 2 and info.pending_bytes <= self.max_size * info.pending_writes:
                key = (self.state.task(call.pid).tgid, info.path or num, self.path)
                rec = self.small_syncs.setdefault(key, [0, 0, 0, info.pending_first, num, info.path, call.pid])
                rec[0] += 1
                rec[1] += info.pending_writes
                rec[2] += info.pending_bytes
            info.pending_writes = info.pending_bytes = 0
        if path is not None and call.ret == 0:
            self.pending_dir.pop(path, None)

    on_fdatasync = on_fsync

    def on_sync(self, call: Call) -> None:
        for task in self.state.tasks.values():
            for info in task.fds.values():
                info.dirty = False
        for info in self.closed.values():
            info.dirty = False
            info.synced = True

    on_syncfs = on_sync

    def on_rename(self, call: Call) -> None:
        if call.ret != 0:
            return
        parts = A.split(call.args)
        task = self._task(call)
        if call.name == "rename":
            src = self.state.resolve(task, None, A.string(parts[0]) if parts else None)
            dst = self.state.resolve(task, None, A.string(parts[1]) if len(parts) > 1 else None)
        else:
            if len(parts) < 4:
                return
            src = self.state.resolve(task, parts[0], A.string(parts[1]))
            dst = self.state.resolve(task, parts[2], A.string(parts[3]))
        if src is None or dst is None:
            return
        info = self.closed.pop(src, None)
        if info is None:
            info = next((i for i in task.fds.values() if i.path == src and i.kind == "file" and i.writes), None)
        if info is None:
            return  # a rename of a file this trace did not see written: out of scope
        story = {"open_line": info.open_line, "last_write_line": info.last_write_line, "rename_line": call.line,
                 "pid": call.pid, "src": src, "dst": dst}
        if info.dirty:
            self._emit("SCL101", call, evidence=dict(story, missing="fsync/fdatasync after the last write"), path=self.path,
                       text=f"{call.name} {dst}", call=call.name + "()", src=repr(src), pid=call.pid,
                       write_line=info.last_write_line)
        else:
            self.pending_dir.setdefault(dirname(dst), []).append((call, src, dst, story, self.path))

    on_renameat = on_renameat2 = on_rename

    def _flush_pending(self, tgid=None) -> None:
        for directory in list(self.pending_dir):
            keep = []
            for call, src, dst, story, log in self.pending_dir[directory]:
                if tgid is not None and self.state.task(call.pid).tgid != tgid:
                    keep.append((call, src, dst, story, log))
                    continue
                self._emit("SCL102", call, evidence=dict(story, missing=f"fsync of directory {directory}"), path=log,
                           text=f"{call.name} {dst}", call=call.name + "()", pid=call.pid, dir=repr(directory))
            if keep:
                self.pending_dir[directory] = keep
            else:
                del self.pending_dir[directory]

    # batching ------------------------------------------------------------------
    def _small_write(self, call: Call, num, info: FdInfo) -> None:
        runs = self.runs[call.pid]
        run = runs.get(num)
        if call.ret > self.max_size:
            if run is not None:
                self._end_run(call.pid, num)
            return
        if run is None or (run.path != info.path):
            if run is not None:
                self._end_run(call.pid, num)
            run = runs[num] = Run(call, num, info.path, self.path)
        run.count += 1
        run.bytes += call.ret
        run.last_line, run.last_ts = call.line, call.ts

    def _end_run(self, tid, num) -> None:
        runs = self.runs.get(tid)
        run = runs.pop(num, None) if runs else None
        if run is None or run.count < self.min_calls:
            return
        key = (self.state.task(tid).tgid, run.path or num, run.file)
        best = self.best_runs.get(key)
        if best is None:
            self.best_runs[key] = [run, run.count]
        else:
            best[1] += run.count
            if run.count > best[0].count:
                best[0] = run

    def on_read(self, call: Call) -> None:
        num, _ = A.fd(call.args)
        if call.pid in self.awaiting:
            self._child_used(call, num)
        self._end_all_runs(call.pid)
        info = self._task(call).fds.get(num)
        if call.ret and call.ret > 0 and info is not None and (
                (info.kind == "file" and call.name in ("read", "pread64")) or
                (info.kind == "socket" and call.name in ("read", "recvfrom", "recv"))):
            self.last_read[call.pid] = (num, call.ret, call.line, info.path, info.kind)
        else:
            self.last_read.pop(call.pid, None)

    def on_wait(self, call: Call) -> None:
        self._end_all_runs(call.pid)

    def _end_all_runs(self, tid) -> None:
        runs = self.runs.get(tid)
        if runs:
            for num in list(runs):
                self._end_run(tid, num)

    def _copy_pair(self, call: Call, num, info: FdInfo) -> None:
        last = self.last_read.pop(call.pid, None)
        if last is None or info.kind != "socket" or last[1] != call.ret:
            return
        if last[0] == num:
            return  # an echo on one socket is a protocol, not a relay
        key = (call.pid, last[0], num)
        rec = self.copies.get(key)
        if rec is None:
            rec = self.copies[key] = [0, 0, last[2], last[3], self.path, last[4]]
        rec[0] += 1
        rec[1] += call.ret

    def on_clock(self, call: Call) -> None:
        key = (self.state.task(call.pid).tgid, self.path)
        rec = self.clock_calls.get(key)
        if rec is None:
            rec = self.clock_calls[key] = [0, call.line, set(), call.pid]
        rec[0] += 1
        rec[2].add(call.name)

    # connections ---------------------------------------------------------------
    def on_accept(self, call: Call) -> None:
        self._end_all_runs(call.pid)
        if call.ret is not None and call.ret >= 0:
            self._task(call).fds[call.ret] = FdInfo(None, "socket", call.line)
            self.accepts[call.pid] = (call.ret, call)

    on_accept4 = on_accept

    def on_clone(self, call: Call) -> None:
        if call.ret is None or call.ret <= 0:
            return
        if call.name in ("fork", "vfork"):
            flags = b"SIGCHLD"
        else:
            m = _FLAGS.search(call.args)
            flags = m.group(1) if m else b""
        parent = self._task(call)
        self.state.clone(parent, call.ret, flags)
        accepted = self.accepts.pop(call.pid, None)
        if accepted is None or b"CLONE_VM" in flags and b"CLONE_THREAD" not in flags:
            return  # vfork+exec helpers (posix_spawn) are not connection handlers
        record = [accepted[1], call, call.ret, accepted[0], b"CLONE_THREAD" in flags, None, self.path]
        records = self.spawns[call.pid]
        if len(records) < 64:  # enough to judge and to show; the count goes on in spawn_counts
            records.append(record)
            self.awaiting[call.ret] = record
        self.spawn_counts[(call.pid, b"CLONE_THREAD" in flags)] += 1

    on_clone3 = on_fork = on_vfork = on_clone

    def _child_used(self, call: Call, num=None) -> None:
        record = self.awaiting.get(call.pid)
        if record is None:
            return
        if num is None:
            num, _ = A.fd(call.args)
        if num == record[3]:
            record[5] = True
            del self.awaiting[call.pid]

    def on_exit(self, ev: Exit) -> None:
        task = self.state.tasks.get(ev.pid)
        record = self.awaiting.pop(ev.pid, None)
        if record is not None:
            record[5] = False  # the child ended without touching the connection
        self._end_all_runs(ev.pid)
        self.runs.pop(ev.pid, None)
        self.last_read.pop(ev.pid, None)
        self.accepts.pop(ev.pid, None)
        if task is not None and task.tgid == ev.pid:
            self._flush_pending(task.tgid)
            for num in list(task.fds):
                self._close_fd(task.fds, num)
        self.state.tasks.pop(ev.pid, None)

    # results -------------------------------------------------------------------
    def _emit(self, code, call_or_line, evidence, text, path=None, **fields) -> None:
        if code not in self.enabled:
            return
        line = call_or_line if isinstance(call_or_line, int) else call_or_line.line
        pid = fields.get("pid")
        fields["who"] = f"pid {pid}" if pid else "the traced process"
        path = path or self.path
        # The same problem again (a loop, a long-running server): one finding that counts them, so
        # memory grows with distinct problems, not with the length of the log.
        key = (code, path, text)
        seen = self.emitted.get(key)
        if seen is not None:
            seen.evidence["occurrences"] = seen.evidence.get("occurrences", 1) + 1
            more = seen.evidence.setdefault("more_lines", [])
            if len(more) < 10:
                more.append(line)
            return
        finding = fmodel.make(code, "strace", path, line=line, evidence=evidence, fingerprint_text=text, **fields)
        self.emitted[key] = finding
        self.findings.append(finding)

    def finish(self) -> list:
        for tid in list(self.runs):
            self._end_all_runs(tid)
        self._flush_pending()
        for (tgid, ident, path), (run, total) in self.best_runs.items():
            mean = run.bytes / run.count
            rate = ""
            per_second = None
            if run.first_ts is not None and run.last_ts is not None and run.last_ts > run.first_ts:
                per_second = run.count / (run.last_ts - run.first_ts)
                over = " — over the seed's 10K/s threshold" if per_second > self.rate_limit else ""
                rate = f", {per_second:,.0f} calls/s{over}"
            fdname = f" ({run.path})" if run.path else ""
            self._emit("SCL201", run.first_line, text=f"small writes fd {run.path or run.fd}", path=path,
                       evidence={"pid": run.pid, "fd": run.fd, "path": run.path, "count": run.count,
                                 "total_small_writes": total, "mean_size": round(mean, 1), "first_line": run.first_line,
                                 "last_line": run.last_line, "calls_per_second": per_second,
                                 "estimated_syscall_cost_ms": round(total * COST_NS / 1e6, 3)},
                       pid=run.pid, count=run.count, calls="write", fd=run.fd, fdname=fdname,
                       mean_size=f"{mean:.0f}", rate=rate, cost_ms=f"{total * COST_NS / 1e6:.2f}")
        for parent, records in self.spawns.items():
            used = [r for r in records if r[5] is True or (r[5] is None and r[2] not in self.seen_tids)]
            for code, thread in (("SCL301", True), ("SCL302", False)):
                mine = [r for r in used if r[4] == thread]
                if len(mine) >= 2:
                    first = mine[0]
                    total = max(len(mine), self.spawn_counts[(parent, thread)] if len(records) >= 64 else 0)
                    self._emit(code, first[1], text=f"accept→{'thread' if thread else 'fork'}", path=first[6],
                               evidence={"pid": parent, "connections": total,
                                         "pairs": [{"accept_line": r[0].line, "clone_line": r[1].line, "child": r[2],
                                                    "fd": r[3]} for r in mine[:20]]},
                               pid=parent, count=total, first_line=first[1].line)
        for (tid, src, dst), (pairs, total, first_line, src_path, path, kind) in self.copies.items():
            if kind == "socket":
                if pairs >= self.min_relay:
                    self._emit("SCL402", first_line, text=f"relay {src}->{dst}", path=path,
                               evidence={"pid": tid, "src_fd": src, "dst_fd": dst, "pairs": pairs, "bytes": total},
                               pid=tid, count=pairs, total=f"{total:,}", src=src, dst=dst)
                continue
            if pairs >= self.min_pairs:
                self._emit("SCL401", first_line, text=f"copy {src_path}", path=path,
                           evidence={"pid": tid, "src_fd": src, "src_path": src_path, "dst_fd": dst, "pairs": pairs,
                                     "bytes": total},
                           pid=tid, count=pairs, total=f"{total:,}", src=src, dst=dst)
        for (tgid, ident, path), (syncs, writes, nbytes, first, fd, fpath, pid) in self.small_syncs.items():
            if syncs >= self.min_syncs:
                self._emit("SCL103", first, text=f"fsync per write {fpath or fd}", path=path,
                           evidence={"pid": pid, "fd": fd, "path": fpath, "syncs": syncs, "writes": writes, "bytes": nbytes},
                           pid=pid, fd=fd, fdname=f" ({fpath})" if fpath else "", count=syncs,
                           mean_writes=f"{writes / syncs:.1f}", mean_size=f"{nbytes / max(writes, 1):.0f}")
        for (tgid, path), (count, first, names, pid) in self.clock_calls.items():
            if count >= self.min_clock:
                self._emit("SCL202", first, text="clock syscalls", path=path,
                           evidence={"pid": pid, "count": count, "syscalls": sorted(names)},
                           pid=pid, count=count, calls=", ".join(sorted(names)))
        self.findings.sort(key=lambda f: (f.path, f.line or 0, f.code))
        return self.findings


