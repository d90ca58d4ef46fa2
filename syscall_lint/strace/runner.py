"""`syscall-lint trace`: open each log (plain, gzip, stdin, strace-parser JSONL, -ff sets) and lint it."""

from __future__ import annotations

import glob
import io
import os
import re
from pathlib import Path

from syscall_lint.findings import InputError
from syscall_lint.report import Report
from syscall_lint.strace.analyzer import TraceAnalyzer
from syscall_lint.strace.parser import Stats, open_log, parse, parse_jsonl

_PER_PID = re.compile(r"^(.*)\.(\d+)$")
TRACE_SUFFIXES = (".strace", ".strace.gz", ".trace", ".trace.gz", ".jsonl", ".log", ".log.gz")


def _groups(paths):
    """Yield (display path, [(file, pid)]). `-ff` sets — given as a prefix or as their files — go together."""
    sets: dict = {}
    order = []
    for arg in paths:
        if arg != "-" and not os.path.exists(arg):
            members = sorted((p for p in glob.glob(glob.escape(arg) + ".*") if _PER_PID.match(p)),
                             key=lambda p: int(_PER_PID.match(p).group(2)))
            if members:
                order.append((arg, [(p, int(_PER_PID.match(p).group(2))) for p in members]))
                continue
            order.append((arg, None))
            continue
        if os.path.isdir(arg):
            # in a directory, the files that look like traces: *.strace[.gz], *.jsonl, -ff sets
            yield from _groups([os.path.join(arg, name) for name in sorted(os.listdir(arg))
                                if os.path.isfile(os.path.join(arg, name))
                                and (name.endswith(TRACE_SUFFIXES) or _PER_PID.match(name))])
            continue
        m = _PER_PID.match(arg)
        if m and arg != "-":
            key = m.group(1)
            if key not in sets:
                sets[key] = []
                order.append((key, sets[key]))
            sets[key].append((arg, int(m.group(2))))
        else:
            order.append((arg, [(arg, 0)]))
    for display, members in order:
        if members is not None and len(members) > 1:
            members.sort(key=lambda m: m[1])
        elif members is not None and len(members) == 1:
            display = members[0][0]
            members = [(members[0][0], 0 if not _PER_PID.match(display) else members[0][1])]
        yield display, members


def _events(stream, stats, pid, analyzer):
    head = stream.peek(1)[:1] if hasattr(stream, "peek") else b""
    if head == b"{":
        return parse_jsonl(stream, stats)
    # children awaiting their first use of an accepted fd must be seen whatever they call
    return parse(stream, stats, default_pid=pid, wanted=analyzer.wanted, watched=analyzer.awaiting)


def lint_stream_set(display, members, settings, report: Report, stdin=None) -> None:
    analyzer = TraceAnalyzer(settings, display)
    stats = Stats()
    for path, pid in members:
        try:
            stream = stdin if (path == "-" and stdin is not None) else open_log(path)
        except OSError as exc:
            report.errors.append(InputError(path, f"cannot read: {exc.strerror or exc}"))
            return
        try:
            analyzer.feed(_events(stream, stats, pid, analyzer), path)
        except (OSError, EOFError) as exc:  # e.g. a truncated gzip stream
            report.errors.append(InputError(path, f"cannot read: {exc}"))
        finally:
            if stream is not getattr(stdin, "raw", stdin) and path != "-":
                stream.close()
    if stats.calls == 0:
        report.errors.append(InputError(display, f"not an strace log: no syscall line in {stats.lines} lines"))
        return
    report.findings.extend(analyzer.finish())
    if stats.malformed:
        first = "; ".join(f"line {n}: {why}" for n, why in stats.malformed_examples)
        report.errors.append(InputError(display, f"{stats.malformed} malformed line(s) skipped ({first})"))
    report.extra.setdefault("traces", []).append(
        {"path": display, "lines": stats.lines, "syscalls": stats.calls, "malformed": stats.malformed})


def lint_traces(paths, resolver) -> Report:
    report = Report(sources={"strace"})
    for display, members in _groups(paths):
        if members is None:
            report.errors.append(InputError(display, "no such file or directory"))
            continue
        settings = resolver.for_path(Path(display if display != "-" else "."))
        lint_stream_set(display, members, settings, report)
    return report


def lint_text(text: str, path: str, settings) -> list:
    """Findings for a trace given as text (catalog examples, tests, the editor)."""
    report = Report()
    stream = io.BufferedReader(io.BytesIO(text.encode()))
    lint_stream_set(path, [("-", 0)], settings, report, stdin=stream)
    if report.errors:
        raise ValueError("; ".join(e.message for e in report.errors))
    return report.findings
