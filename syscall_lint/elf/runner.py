"""`syscall-lint audit`: walk the paths (never following links out of the tree), read each ELF file
in a worker with a time limit, build the profile and findings. Nothing audited is ever executed."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor
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

    info = reader.read(path)
    found, prof, notes = rules.audit(info, settings, path)
    return found, profile.render(info, prof, notes), {"path": path, "machine": info.machine, "kind": info.kind,
                                                      "static": info.static, "needed": info.needed,
                                                      "runtime": info.runtime, "surface": prof, "notes": notes}


def _work(item):
    path, settings = item
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT)
    try:
        found, lines, prof = audit_file(path, settings)
        return path, [f.__dict__ for f in found], lines, prof, None
    except _Timeout:
        return path, None, None, None, f"gave up after {TIME_LIMIT} s"
    except MemoryError:
        return path, None, None, None, "corrupt ELF: absurd sizes (out of memory)"
    except Exception as exc:  # pyelftools raises many kinds on hostile input; each is one line here
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        prefix = "" if type(exc).__name__ == "NotElf" else "corrupt ELF: "
        return path, None, None, None, prefix + reason
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def audit(paths, resolver, jobs: int | None = None) -> Report:
    from syscall_lint.elf.reader import is_elf

    report = Report(sources={"elf"})
    items = []
    for arg in paths:
        explicit = os.path.isfile(arg)
        settings = resolver.for_path(Path(arg)) if os.path.exists(arg) else None
        for item in walk(arg, lambda p: os.path.isfile(p) and not os.path.islink(p) and is_elf(p), lambda p: False):
            if isinstance(item, InputError):
                report.errors.append(item)
            elif explicit and not is_elf(item):
                report.errors.append(InputError(item, "not an ELF file (wrong magic)"))
            else:
                items.append((item, settings))
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(items) > 4:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_work, items, chunksize=max(1, len(items) // (jobs * 16))))
    else:
        results = [_work(item) for item in items]
    profiles = []
    for path, found, lines, prof, error in results:
        if error is not None:
            report.errors.append(InputError(path, error))
            continue
        report.findings.extend(Finding(**f) for f in found)
        report.preamble.extend(lines)
        profiles.append(prof)
    report.extra["binaries"] = profiles
    return report
