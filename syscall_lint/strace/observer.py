"""Trace rules as observers of the FdTracker's events, and how they are found.

A trace rule is one TOML file in rules/ plus one module in syscall_lint/strace/observers/ that
defines a subclass of Observer with CODE set. The module is found by name; the rule's handlers
(on_write, on_read, ... see events.SYSCALLS) and its SYSCALLS (raw calls it reads itself, given to
on_call) decide what the parser keeps and what `record` traces. Nothing else needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Optional

from syscall_lint import findings as fmodel
from syscall_lint.strace import events as E

MAX_KEYS = 1 << 16  # entries per rule table (threads, files, loops...); the oldest quarter goes beyond
MAX_FINDINGS = 2000  # per trace: more distinct problems than this are counted in a note, not held
MAX_LINES_SHOWN = 10  # lines of further occurrences kept in a finding's evidence


class Observer:
    """One trace rule. Subclasses set CODE (and SYSCALLS for raw calls) and define handlers."""

    CODE = ""
    SYSCALLS: frozenset = frozenset()  # raw syscalls delivered to on_call(call, task)

    def __init__(self, ctx: "Context"):
        self.ctx = ctx
        self.options = ctx.options(self.CODE)

    def finish(self) -> None:
        """The trace is over: report what is left."""

    @classmethod
    def handlers(cls) -> list:
        """The event handlers this rule defines (on_write, on_read...)."""
        return [name for name in E.SYSCALLS if getattr(cls, name, None) is not None]

    @classmethod
    def syscalls(cls) -> frozenset:
        """Every syscall this rule needs to see, beyond the ones the tracker always keeps."""
        names = set(cls.SYSCALLS)
        for handler in cls.handlers():
            names |= E.SYSCALLS[handler]
        return frozenset(names)


@dataclass
class Occurrence:
    """One problem (code, process, target) and how often it happened."""

    code: str
    line: int
    evidence: dict
    fields: dict
    text: str
    path: str
    count: int = 1
    more_lines: list = field(default_factory=list)


class Context:
    """What observers share: the settings, the log's display path, bounded tables, and the folding of
    the same problem into one finding per process and target (with its number of occurrences)."""

    def __init__(self, settings, path: str):
        self.settings = settings
        self.path = path  # the file being read now (an -ff member), for findings' paths
        self.display = path
        self.enabled = settings.enabled_codes(path)
        self.occurrences: dict = {}
        self.dropped: dict = {}

    def options(self, code: str) -> dict:
        return self.settings.options.get(code, {})

    def room(self, table: dict, what: str) -> None:
        """Make room for one more key in a rule's `table`: a hostile stream must not grow it without end."""
        if len(table) >= MAX_KEYS:
            from syscall_lint.strace.state import evict_oldest

            self.dropped[what] = self.dropped.get(what, 0) + evict_oldest(table, table.__delitem__)

    def report(self, code: str, line: int, pid: Optional[int], target: str, evidence: dict, path: Optional[str] = None,
               **fields) -> None:
        """One occurrence of a problem. The same code, process and target again is counted, not repeated:
        memory grows with distinct problems, not with the length of the log."""
        if code not in self.enabled:
            return
        path = path or self.path
        key = (code, path, pid, target)
        seen = self.occurrences.get(key)
        if seen is not None:
            seen.count += 1
            if len(seen.more_lines) < MAX_LINES_SHOWN:
                seen.more_lines.append(line)
            return
        if len(self.occurrences) >= MAX_FINDINGS:
            self.dropped["findings"] = self.dropped.get("findings", 0) + 1
            return
        fields["who"] = f"pid {pid}" if pid else "the traced process"
        self.occurrences[key] = Occurrence(code, line, evidence, fields, f"{target}", path)

    def findings(self) -> list:
        out = []
        for occ in self.occurrences.values():
            evidence = dict(occ.evidence)
            if occ.count > 1:
                evidence["occurrences"] = occ.count
                evidence["more_lines"] = occ.more_lines
            fields = dict(occ.fields)
            if "times" in fields:
                fields["times"] = f" (seen {occ.count} times)" if occ.count > 1 else ""
            out.append(fmodel.make(occ.code, "strace", occ.path, line=occ.line, evidence=evidence,
                                   fingerprint_text=occ.text, **fields))
        out.sort(key=lambda f: (f.path, f.line or 0, f.code))
        return out

    def notes(self) -> list:
        dropped = dict(self.dropped)
        extra = dropped.pop("findings", 0)
        notes = []
        if dropped:
            forgotten = ", ".join(f"{n:,} {what}" for what, n in sorted(dropped.items()))
            notes.append(f"rule state is bounded to {MAX_KEYS:,} entries per table: forgot {forgotten}; "
                         f"findings about them may be missing")
        if extra:
            notes.append(f"{extra:,} more distinct finding(s) not reported: at most {MAX_FINDINGS:,} per trace")
        return notes


def observer_classes() -> list:
    """Every trace rule's observer, found in syscall_lint/strace/observers/ (sorted by code)."""
    from syscall_lint.strace import observers

    found = {}
    for module in pkgutil.iter_modules(observers.__path__):
        if module.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{observers.__name__}.{module.name}")
        for value in vars(mod).values():
            if isinstance(value, type) and issubclass(value, Observer) and value.CODE and value.__module__ == mod.__name__:
                found[value.CODE] = value
    return [found[code] for code in sorted(found)]


def trace_syscalls(codes=None) -> list:
    """The syscalls `record` traces for these rule codes (default: every trace rule): the tracker's own
    (every call that makes, duplicates or closes fds, and clone/fork/exec) and each rule's."""
    from syscall_lint.strace.tracker import TRACKED

    names = set(TRACKED)
    for cls in observer_classes():
        if codes is None or cls.CODE in codes:
            names |= cls.syscalls()
    return sorted(names)
