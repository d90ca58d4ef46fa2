"""`syscall-lint audit`: walk the paths (never following links out of the tree), read each ELF file
in a worker with a time limit, build the profile and findings. Nothing audited is ever executed."""

from __future__ import annotations

import os
import signal
import stat
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from syscall_lint.discover import walk
from syscall_lint.findings import Finding, InputError
from syscall_lint.report import Report

TIME_LIMIT = 30  # seconds per file


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def audit_file(path: str, settings):
    """(findings, profile lines, profile dict) for one file; raises nothing for bad input."""
    from syscall_lint.elf import profile, reader, rules

    with reader.holding(path):  # one open file and one parse of its tables for every reader
        info = reader.read(path)
        found, prof, notes = rules.audit(info, settings, path)
    return found, profile.render(info, prof, notes, rules.SHARED_NOTES), {
        "path": path, "machine": info.machine, "kind": info.kind, "static": info.static, "needed": info.needed,
        "runtime": info.runtime, "surface": prof, "notes": notes}


@dataclass
class _Audited:
    """One file's result as a worker sends it back: its summary comes JSON-encoded (the main
    process only places it; see output.json_out.Encoded)."""

    path: str
    findings: list = None  # Finding fields as dicts
    profile_lines: list = None
    summary_json: str = ""
    notes: list = None
    error: str | None = None


def _work(item) -> _Audited:
    """One file, under _audit_all's SIGALRM handler (never called without it: the alarm would kill)."""
    from syscall_lint.output.json_out import encode

    path, settings = item
    signal.alarm(TIME_LIMIT)  # the handler is _audit_all's
    try:
        found, lines, prof = audit_file(path, settings)
        return _Audited(path, [f.__dict__ for f in found], lines, encode(prof), prof["notes"])
    except _Timeout:
        return _Audited(path, error=f"gave up after {TIME_LIMIT} s")
    except MemoryError:
        return _Audited(path, error="corrupt ELF: absurd sizes (out of memory)")
    except Exception as exc:  # pyelftools raises many kinds on hostile input; each is one line here
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        prefix = "" if type(exc).__name__ == "NotElf" else "corrupt ELF: "
        return _Audited(path, error=prefix + reason)
    finally:
        signal.alarm(0)


def _audit_all(items) -> list:
    """_work for each item, under one SIGALRM handler (installed once, not once per file)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        return [_work(item) for item in items]
    finally:
        signal.signal(signal.SIGALRM, old)


def _work_batch(batch):
    return list(zip((index for index, _item in batch), _audit_all([item for _index, item in batch])))


# what reading a file costs before its size counts (open, headers, imports, profile): about the
# time of 128 KiB of code, measured on /usr/bin + /usr/lib/x86_64-linux-gnu
FILE_COST = 128 << 10


def _batches(items, jobs: int) -> list:
    """(index, item) batches, largest files first, each about 1/(32 * jobs) of the whole cost (bytes,
    plus FILE_COST a file): the workers finish together however the files are ordered (a tree's
    large libraries sit side by side, and one of them costs as much as hundreds of small programs;
    and a batch of 500 small programs costs more than their bytes say)."""
    sizes = []
    for index, item in enumerate(items):
        try:
            sizes.append((os.path.getsize(item[0]), index))
        except OSError:
            sizes.append((0, index))
    sizes.sort(key=lambda pair: (-pair[0], pair[1]))
    share = max(1, sum(size + FILE_COST for size, _ in sizes) // (32 * jobs))
    batches, batch, held = [], [], 0
    for size, index in sizes:
        batch.append((index, items[index]))
        held += size + FILE_COST
        if held >= share:
            batches.append(batch)
            batch, held = [], 0
    if batch:
        batches.append(batch)
    return batches


def audit(paths, resolver, jobs: int | None = None, profiles: bool = False) -> Report:
    """Findings for every ELF file named or found under the paths; with `profiles`, each binary's
    syscall-surface profile too (text output shows it after the findings)."""
    from syscall_lint.elf.notes import SHARED_NOTES
    from syscall_lint.output.json_out import Encoded

    report = Report(sources={"elf"})
    items, argument_of = [], []  # argument_of[i]: the position of the argument items[i] came from
    placed = []  # (argument position, InputError)
    by_dir = {}  # directory named in the arguments → settings (resolved once, not once per file)
    for position, arg in enumerate(paths):
        before = len(report.errors)
        found = _inputs(arg, resolver, report, by_dir)
        items.extend(found)
        argument_of.extend([position] * len(found))
        placed.extend((position, error) for error in report.errors[before:])
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(items) > 4:
        import multiprocessing

        from syscall_lint.elf import rules  # noqa: F401 (imported once, before the workers fork)

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            results = [None] * len(items)
            for batch in pool.map(_work_batch, _batches(items, jobs)):
                for index, result in batch:
                    results[index] = result
    else:
        results = _audit_all(items)
    summaries, shared = Encoded(), []
    for position, done in zip(argument_of, results):
        if done.error is not None:
            placed.append((position, InputError(done.path, done.error)))
            continue
        report.findings.extend(Finding(**f) for f in done.findings)
        if profiles:
            report.preamble.extend(done.profile_lines)
        shared.extend(n for n in done.notes if n in SHARED_NOTES and n not in shared)
        summaries.append(done.summary_json)
    # errors in the order of the arguments, as the walk met them (a named file's magic is only
    # checked by its worker, after the errors found while listing the arguments)
    placed.sort(key=lambda pair: pair[0])
    report.errors = [error for _, error in placed]
    if profiles:
        report.preamble.extend(f"note: {note}" for note in shared)
    report.extra["binaries"] = summaries
    return report


def _settings(arg: str, resolver, by_dir: dict, is_link: bool):
    """resolver.for_path for a file named on the command line. A file that is not a symbolic link
    resolves to its resolved directory, so the files of one directory share one lookup (an audit
    of /usr/bin names thousands)."""
    if is_link:
        return resolver.for_path(Path(arg))
    directory = os.path.dirname(arg)
    found = by_dir.get(directory)
    if found is None:
        found = by_dir[directory] = resolver.for_path(Path(arg))
    return found


def _walked_elf(path: str) -> bool:
    """A regular file (not a link: a walk never follows one) that starts with the ELF magic."""
    from syscall_lint.elf.magic import is_elf

    try:
        return stat.S_ISREG(os.lstat(path).st_mode) and is_elf(path)
    except OSError:
        return False


def _inputs(arg: str, resolver, report: Report, by_dir: dict | None = None) -> list:
    """(path, settings) to audit for one command-line argument; its errors go to the report.

    Named on the command line, a FIFO, device or socket is a one-line error (opening it could block
    or never end); in a directory walk it is skipped like any other file that is not ELF."""
    from syscall_lint.inputs import not_regular_reason, refusal

    try:
        mode = os.lstat(arg).st_mode
    except OSError:
        mode = None
    is_link = mode is not None and stat.S_ISLNK(mode)
    if mode is not None and not stat.S_ISDIR(mode) and not (is_link and os.path.isdir(arg)):
        # the lstat answers for a named file that is not a link; the magic is checked by the worker
        # (its open reads it first, with the same one-line error), so an audit of a long list does
        # not open every file twice
        reason = refusal(arg) if is_link else not_regular_reason(mode)
        if reason is not None:
            report.errors.append(InputError(arg, reason))
            return []
        return [(arg, _settings(arg, resolver, {} if by_dir is None else by_dir, is_link))]
    settings = resolver.for_path(Path(arg)) if os.path.exists(arg) else None
    found = []
    for item in walk(arg, _walked_elf, lambda p: False):
        if isinstance(item, InputError):
            report.errors.append(item)
        else:
            found.append((item, settings))
    if not found and os.path.isdir(arg):
        # as ruff says "No Python files found": an empty audit is not silently clean
        report.warnings.append(f"no ELF files found under {arg}")
    return found
