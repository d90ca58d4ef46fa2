"""`syscall-lint trace`: open each log (plain, gzip, stdin, strace-parser JSONL, -ff sets) and lint it."""

from __future__ import annotations

import glob
import gzip
import io
import os
import re
import zlib
from pathlib import Path

from syscall_lint.findings import InputError
from syscall_lint.inputs import InputRefused
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
                                if _looks_like_trace(arg, name)])
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
    return parse(stream, stats, default_pid=pid, wanted=analyzer.wanted, watched=analyzer.watched)


def lint_stream_set(display, members, settings, report: Report, stdin=None) -> None:
    """Lint one input (a log, or an -ff set as one): its findings, at most one error line, and notes."""
    analyzer = TraceAnalyzer(settings, display)
    stats = Stats()
    failure = None  # why a member could not be read to its end; the findings before it still count
    for path, pid in members:
        try:
            stream = stdin if (path == "-" and stdin is not None) else open_log(path)
        except InputRefused as exc:
            failure = _where(display, path, str(exc))
            break
        except OSError as exc:
            failure = _where(display, path, f"cannot read: {exc.strerror or exc}")
            break
        try:
            analyzer.feed(_events(stream, stats, pid, analyzer), path)
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream, a read error
            failure = _where(display, path, f"cannot read: {_read_error(exc)} (after line {stats.lines})")
        finally:
            if stream is not getattr(stdin, "raw", stdin) and path != "-":
                stream.close()
        if failure:
            break
    malformed = ""
    if stats.malformed:
        first = "; ".join(f"line {n}: {why}" for n, why in stats.malformed_examples)
        malformed = f"{stats.malformed} malformed line(s) skipped ({first})"
    if failure is None and stats.calls == 0:
        report.errors.append(InputError(display, f"not an strace log: no syscall line in {stats.lines} lines"))
        return
    if stats.calls:
        report.findings.extend(analyzer.finish())
    if failure is not None or malformed:
        report.errors.append(InputError(display, "; ".join(m for m in (failure, malformed) if m)))
    notes = analyzer.notes()
    if stats.dropped_unfinished:
        notes.insert(0, f"more processes with an unfinished call than the parser keeps: forgot the first half of "
                        f"{stats.dropped_unfinished:,} call(s)")
    entry = {"path": display, "lines": stats.lines, "syscalls": stats.calls, "malformed": stats.malformed}
    if notes:
        entry["notes"] = notes
        report.warnings.extend(f"{display}: {note}" for note in notes)
    report.extra.setdefault("traces", []).append(entry)


def _where(display: str, path: str, reason: str) -> str:
    """The reason, naming the member of an -ff set that failed (the input itself is named by the error)."""
    return reason if path == display else f"{path}: {reason}"


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)):
        return f"corrupt gzip data ({exc})"
    if isinstance(exc, EOFError):
        return f"truncated gzip data ({exc})"
    return str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)


def _looks_like_trace(folder: str, name: str) -> bool:
    return os.path.isfile(os.path.join(folder, name)) and bool(name.endswith(TRACE_SUFFIXES) or _PER_PID.match(name))


def lint_traces(paths, resolver) -> Report:
    report = Report(sources={"strace"})
    for arg in paths:
        if arg != "-" and os.path.isdir(arg) and not any(_looks_like_trace(arg, n) for n in os.listdir(arg)):
            report.warnings.append(f"no strace logs found under {arg} (*.strace, *.strace.gz, *.jsonl, -ff sets)")
    for display, members in _groups(paths):
        if members is None:
            report.errors.append(InputError(display, "no such file or directory"))
            continue
        settings = resolver.for_path(Path(display if display != "-" else "."))
        if display != "-" and settings.force_exclude and settings.is_excluded(display):
            continue  # --force-exclude: the project's exclude applies to named logs too (pre-commit)
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
