"""The one findings model every analyser produces and every output format reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from syscall_lint import catalog


@dataclass
class Finding:
    code: str
    name: str
    severity: str
    message: str
    source: str  # python | strace | elf
    path: str
    line: Optional[int]
    column: Optional[int]
    end_line: Optional[int]
    end_column: Optional[int]
    decision_tree: dict
    fix: str
    evidence: dict = field(default_factory=dict)
    url: str = ""
    # The normalised text a baseline keys on: the source line, the syscall, or the symbols.
    fingerprint_text: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("fingerprint_text")
        return data

    def sort_key(self):
        return (self.path, self.line or 0, self.column or 0, self.code)


@dataclass
class InputError:
    path: str
    message: str

    def to_json(self) -> dict:
        return {"path": self.path, "message": self.message}


def make(
    code: str,
    source: str,
    path: str,
    *,
    line: int | None = None,
    column: int | None = None,
    end_line: int | None = None,
    end_column: int | None = None,
    evidence: dict | None = None,
    fingerprint_text: str = "",
    **fields: Any,
) -> Finding:
    """Build a finding from the catalog: message, severity, tree and fix all come from rules/."""
    rule = catalog.load().rules[code]
    template = rule.messages[source]
    return Finding(
        code=code,
        name=rule.name,
        severity=rule.severity,
        message=template.format(**fields),
        source=source,
        path=path,
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_column,
        decision_tree={"id": rule.tree.id, "question": rule.tree.question, "answer": rule.branch},
        fix=rule.fix.format(**fields) if "{" in rule.fix else rule.fix,
        evidence=evidence or {},
        url=rule.url,
        fingerprint_text=fingerprint_text,
    )
