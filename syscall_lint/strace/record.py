"""`syscall-lint record -- CMD`: run CMD under strace with the flags the parser wants, lint the log.

The syscalls traced are the tracker's own plus what each enabled trace rule declares (observer.py):
a new rule's calls are traced without editing this file. The log is a temporary file, deleted
afterwards, unless `-o FILE` keeps it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from syscall_lint.findings import InputError
from syscall_lint.report import Report

BASE_FLAGS = ["-f", "-qq", "-ttt", "-T", "-y", "-s", "64"]


def trace_flags(codes=None) -> list:
    """strace's flags for these rule codes: `?name` so a syscall this architecture lacks (aarch64 has no
    `open` or `rename`) is skipped rather than refused."""
    from syscall_lint.strace.observer import trace_syscalls

    return [*BASE_FLAGS, "-e", "trace=" + ",".join("?" + name for name in trace_syscalls(codes))]


def cannot_start(cmd: list) -> str | None:
    """Why `cmd` cannot be started (missing, not executable), or None. Checked before strace runs:
    strace reports both as its own failure, indistinguishable from the command's exit status 1."""
    program = cmd[0]
    if "/" in program:
        if not os.path.exists(program):
            return "no such file or directory"
        if os.path.isdir(program):
            return "is a directory, not a command"
        if not os.access(program, os.X_OK) or not os.stat(program).st_mode & 0o111:  # root passes access()
            return "not executable (permission denied)"
        return None
    return None if shutil.which(program) else "command not found"


def record(cmd, log_path, resolver, extra_flags=(), env=None, inspect=None):
    """(report, the command's exit status). `extra_flags` go to strace (e.g. -k for stacks) and `env`
    is the command's environment (the source map's shim), both from sourcemap.joined; `inspect(report)`
    runs while the log still exists (the source map reads it again)."""
    from syscall_lint.strace.runner import lint_traces

    report = Report(sources={"strace"})
    strace = shutil.which("strace")
    if strace is None:
        report.errors.append(InputError(cmd[0], "strace is not installed (Debian: apt-get install strace)"))
        return report, None
    problem = cannot_start(cmd)
    if problem:
        report.errors.append(InputError(cmd[0], f"cannot run the command: {problem}"))
        return report, None
    keep = log_path is not None
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="syscall-lint-", suffix=".strace")
        os.close(fd)
    try:
        settings = resolver.for_path(Path("."))
        flags = [*trace_flags(settings.enabled_codes()), *extra_flags]
        status, problem = _run(strace, ["--seccomp-bpf", *flags], log_path, cmd, env)
        if problem == "seccomp":
            status, problem = _run(strace, flags, log_path, cmd, env)
        if problem:
            report.errors.append(InputError(cmd[0], problem))
            return report, status
        where = f"to {log_path}" if keep else "(temporary log, deleted afterwards; -o FILE keeps it)"
        print(f"syscall-lint: recorded {shlex.join(cmd)} {where}", file=sys.stderr)
        report = lint_traces([log_path], resolver)
        if inspect is not None:
            inspect(report)
        report.extra["recorded"] = {"command": cmd, "trace": log_path if keep else None, "exit_status": status,
                                    "kept": keep}
        return report, status
    finally:
        if not keep:
            try:
                os.unlink(log_path)
            except OSError:
                pass


def _run(strace, flags, log_path, cmd, env=None):
    try:
        proc = subprocess.run([strace, *flags, "-o", log_path, "--", *cmd], stderr=subprocess.PIPE, env=env)
    except OSError as exc:
        return None, f"cannot run strace: {exc.strerror}"
    err = proc.stderr.decode("utf-8", "replace")
    # strace names itself as it was started: `/usr/bin/strace: exec: ...`, not `strace: ...`
    prefixes = (f"{strace}: ", "strace: ")
    own = ["strace: " + line.split(": ", 1)[1] for line in err.splitlines() if line.startswith(prefixes)]
    sys.stderr.write("\n".join(line for line in err.splitlines() if not line.startswith(prefixes)) +
                     ("\n" if err and not err.endswith("\n") and not own else ""))
    if any("seccomp" in line for line in own) and "--seccomp-bpf" in flags:
        return None, "seccomp"
    if any("PTRACE" in line or "Operation not permitted" in line for line in own):
        return proc.returncode, ("ptrace is not permitted here (" + own[0][8:] + "); in a container, allow "
                                 "ptrace (e.g. --cap-add SYS_PTRACE) or set kernel.yama.ptrace_scope=0")
    if any("Can't stat" in line or "exec:" in line for line in own):
        return None, "cannot run the command: " + own[0][8:]
    if not Path(log_path).exists() or Path(log_path).stat().st_size == 0:
        return proc.returncode, own[0][8:] if own else "strace wrote no log"
    return proc.returncode, None
