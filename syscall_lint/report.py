"""A run's result: findings, input errors, and what was looked at."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    findings: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    sources: set = field(default_factory=set)  # python | strace | elf, for SARIF runs
    preamble: list = field(default_factory=list)  # text shown after the findings (audit profiles, --profile)
    extra: dict = field(default_factory=dict)  # per-source summaries for JSON (profiles, exit status)
    warnings: list = field(default_factory=list)  # one-line notes on stderr: nothing matched, state dropped

    def merge(self, other: "Report") -> None:
        self.findings.extend(other.findings)
        self.errors.extend(other.errors)
        self.sources |= other.sources
        self.preamble.extend(other.preamble)
        self.extra.update(other.extra)
        self.warnings.extend(other.warnings)
