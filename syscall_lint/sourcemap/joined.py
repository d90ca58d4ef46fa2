"""`record --check PATH -- CMD`: record the run with source evidence, analyse PATH statically, join.

PATH may be Python sources (analysed by `check`) or ELF binaries (analysed by `audit`): a binary's
static findings have no line, and are confirmed by any mapped call from inside that binary.
"""

from __future__ import annotations

import os

from syscall_lint.inputs import refusal
from syscall_lint.report import Report
from syscall_lint.sourcemap import attach, recording


def _is_elf(path: str) -> bool:
    if refusal(path):
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def static_report(paths, resolver, jobs=None) -> Report:
    from syscall_lint.elf.runner import audit
    from syscall_lint.python.runner import check

    binaries = [p for p in paths if os.path.isfile(p) and _is_elf(p)]
    sources = [p for p in paths if p not in binaries]
    report = Report()
    if sources:
        report.merge(check(sources, resolver, jobs=jobs, cache_dir=None))
    if binaries:
        report.merge(audit(binaries, resolver, jobs=jobs))
    return report


def record_with_sources(cmd, log_path, resolver, check_paths=(), source_map=True, jobs=None):
    """(report, the command's exit status) for `record`, mapped and joined as asked."""
    from syscall_lint.strace.record import record

    flags, env = (), None
    if source_map:
        flags = recording.STACK_FLAGS if recording.wants_stacks(cmd) else ()
        env = recording.shim_environment(os.environ)
    mapper = (lambda found: attach.attach(found) if found.findings else 0) if source_map else None
    report, status = record(cmd, log_path, resolver, extra_flags=flags, env=env, inspect=mapper)
    if check_paths:
        report = attach.join(static_report(check_paths, resolver, jobs), report)
        if log_path is None:
            _forget_deleted_log(report)
        from syscall_lint.sourcemap import runstore

        try:
            runstore.save(report, runstore.default_dir())  # for the editor's diagnostics
        except OSError as exc:
            report.warnings.append(f"could not keep the run for the editor: {exc.strerror or exc}")
    return report, status


def _forget_deleted_log(report) -> None:
    """Without -o the log is deleted after the run: evidence must not point into a file that is gone."""
    for finding in report.findings:
        confirmed = finding.evidence.get("confirmed")
        if confirmed:
            confirmed["trace"] = None
        if finding.evidence.get("static_miss"):
            finding.evidence["trace"]["path"] = None
