"""The one findings model every analyser produces and every output format reads."""

from __future__ import annotations

import os
import string
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from syscall_lint import catalog

# When on, make() also refuses fields that neither the message nor the fix uses, so an emit site
# and its template cannot drift apart unnoticed. The tests turn it on; users never pay for it.
STRICT_FIELDS = os.environ.get("SYSCALL_LINT_STRICT_FIELDS") == "1"


class TemplateFieldError(ValueError):
    """An emit site and its catalog template disagree on the fields."""


def placeholders(template: str) -> set:
    """The field names a str.format template uses: "{call}() on line {line}" -> {"call", "line"}."""
    names = set()
    for _, name, spec, _ in string.Formatter().parse(template):
        if name:
            names.add(name.split(".")[0].split("[")[0])
        if spec:
            names |= placeholders(spec)
    return names


def message_key(source: str, variant: str = "") -> str:
    """The catalog's key for a message: `python`, or `python-<variant>` for one of its shapes."""
    return f"{source}-{variant}" if variant else source


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
    # The edit plan `check --fix` applies (internal: never part of the JSON/SARIF output, whose
    # `evidence` is for users).
    autofix: Optional[dict] = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("fingerprint_text")
        data.pop("autofix")
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
    variant: str = "",
    autofix: dict | None = None,
    **fields: Any,
) -> Finding:
    """Build a finding from the catalog: message, severity, tree and fix all come from rules/.

    `variant` picks one of a rule's message shapes (`[message] python-class = ...`)."""
    rule = catalog.load().rules[code]
    key = message_key(source, variant)
    template = rule.messages.get(key)
    if template is None:
        raise TemplateFieldError(f"{code}: no message {key!r} in rules/{code}.toml")
    wanted = placeholders(template) | placeholders(rule.fix)
    missing = placeholders(template) - set(fields)
    if missing:
        raise TemplateFieldError(f"{code} {key}: the emitter does not supply {sorted(missing)}")
    if STRICT_FIELDS and set(fields) - wanted:
        raise TemplateFieldError(f"{code} {key}: fields {sorted(set(fields) - wanted)} are used by no template")
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
        fix=_fix_text(rule.fix, fields),
        evidence=evidence or {},
        url=rule.url,
        fingerprint_text=fingerprint_text,
        autofix=autofix,
    )


def _fix_text(fix: str, fields: dict) -> str:
    """The fix with this finding's names filled in; a field it needs but this emitter lacks (another
    source's finding) is shown as <name>, never as a raw {name}."""
    if "{" not in fix:
        return fix
    return fix.format_map(_Missing(fields))


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return f"<{key}>"
