"""`syscall-lint record -- CMD`: run CMD under strace with the flags the parser wants, keep the log, lint it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from syscall_lint.findings import InputError
from syscall_lint.report import Report

# Only the syscalls the rules and the fd/process state need (every call that creates, duplicates or
# closes fds, clone/fork/exec); --seccomp-bpf keeps the overhead near 1x instead of ~150x.
TRACE_SET = "%file,%desc,%network,%process,sync,syncfs,clock_gettime,gettimeofday,time"
FLAGS = ["-f", "-qq", "-ttt", "-T", "-y", "-s", "64", "-e", f"trace={TRACE_SET}"]


def record(cmd, log_path, resolver):
    from syscall_lint.strace.runner import lint_traces

    report = Report(sources={"strace"})
    strace = shutil.which("strace")
    if strace is None:
        report.errors.append(InputError(cmd[0], "strace is not installed (Debian: apt-get install strace)"))
        return report, None
    keep = log_path is not None
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="syscall-lint-", suffix=".strace")
        os.close(fd)
    status, problem = _run(strace, ["--seccomp-bpf", *FLAGS], log_path, cmd)
    if problem == "seccomp":
        status, problem = _run(strace, FLAGS, log_path, cmd)
    if problem:
        report.errors.append(InputError(cmd[0], problem))
        return report, status
    print(f"syscall-lint: recorded {' '.join(cmd)!s} to {log_path}", file=sys.stderr)
    report = lint_traces([log_path], resolver)
    report.extra["recorded"] = {"command": cmd, "trace": log_path, "exit_status": status, "kept": keep}
    return report, status


def _run(strace, flags, log_path, cmd):
    try:
        proc = subprocess.run([strace, *flags, "-o", log_path, "--", *cmd], stderr=subprocess.PIPE)
    except OSError as exc:
        return None, f"cannot run strace: {exc.strerror}"
    err = proc.stderr.decode("utf-8", "replace")
    own = [line for line in err.splitlines() if line.startswith("strace: ")]
    sys.stderr.write("\n".join(line for line in err.splitlines() if not line.startswith("strace: ")) +
                     ("\n" if err and not err.endswith("\n") and not own else ""))
    if any("seccomp" in line for line in own) and "--seccomp-bpf" in flags:
        return None, "seccomp"
    if any("PTRACE" in line or "Operation not permitted" in line for line in own):
        return proc.returncode, ("ptrace is not permitted here (" + own[0][8:] + "); in a container, allow "
                                 "ptrace (e.g. --cap-add SYS_PTRACE) or set kernel.yama.ptrace_scope=0")
    if any("Can't stat" in line or "No such file" in line for line in own) or (
            not Path(log_path).exists() or Path(log_path).stat().st_size == 0):
        return proc.returncode, own[0][8:] if own else "strace wrote no log"
    return proc.returncode, None
