"""A trace's analysis: the FdTracker and the enabled rules' observers over one event stream.

The tracker (tracker.py) follows processes and fds and publishes typed events; each rule is an
observer in syscall_lint/strace/observers/. Calls no enabled rule needs are skipped by the parser.
"""

from __future__ import annotations

from syscall_lint.strace.observer import Context, observer_classes
from syscall_lint.strace.tracker import FdTracker


class TraceAnalyzer:
    def __init__(self, settings, path: str):
        self.ctx = Context(settings, path)
        self.observers = [cls(self.ctx) for cls in observer_classes() if cls.CODE in self.ctx.enabled]
        self.tracker = FdTracker(self.ctx, self.observers)
        self.ctx.tracker = self.tracker

    @property
    def wanted(self) -> set:
        """The syscall names (bytes) the tracker and the enabled rules need; the parser skips the rest."""
        return self.tracker.wanted

    @property
    def watched(self) -> dict:
        """Tids whose every call must be seen (children that may use an accepted connection)."""
        return self.tracker.watched

    def feed(self, events, path: str | None = None) -> None:
        if path is not None:
            self.ctx.path = path
        self.tracker.feed(events)

    def finish(self) -> list:
        self.tracker.finish()
        return self.ctx.findings()

    def notes(self) -> list:
        """What the bounds made this analysis forget, one sentence each (empty on ordinary traces)."""
        return self.tracker.tasks.notes() + self.ctx.notes()
