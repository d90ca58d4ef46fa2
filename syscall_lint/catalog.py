"""The rule catalog: rules/*.toml and rules/decision_trees.toml, loaded once.

The catalog is the single source of truth for codes, names, severities, messages, decision-tree
branches, docs and examples. In a source checkout it is read from the repository's rules/ folder;
in an installed wheel from the syscall_lint.catalog_data package.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syscall_lint._toml import toml

DOCS_URL = "https://github.com/syscall-lint/syscall-lint/blob/main/docs/rules/{code}.md"
SEVERITIES = ("error", "warning", "info")
CONFIDENCES = ("low", "medium", "high")


@dataclass(frozen=True)
class DecisionTree:
    id: str
    title: str
    question: str
    tree: str


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    severity: str
    confidence: str
    sources: tuple
    tree: DecisionTree
    branch: str
    fix: str
    messages: dict
    doc: dict
    examples: tuple
    options: dict = field(default_factory=dict)
    default: bool = True
    fix_safety: str | None = None
    confidence_by_source: dict = field(default_factory=dict)  # source -> confidence, where they differ

    def confidence_for(self, source: str) -> str:
        """How sure a finding from `source` is: `confidence = { python = "high", elf = "medium" }`
        in the TOML, or the rule's single `confidence` for every source."""
        return self.confidence_by_source.get(source, self.confidence)

    @property
    def url(self) -> str:
        return DOCS_URL.format(code=self.code)

    def option_defaults(self) -> dict:
        return {key: spec["default"] for key, spec in self.options.items()}


def _catalog_dir():
    """The catalog folder: the checkout's rules/, or the installed package data (a Traversable)."""
    checkout = Path(__file__).resolve().parent.parent / "rules"
    if (checkout / "decision_trees.toml").is_file():
        return checkout
    from importlib import resources

    return resources.files("syscall_lint.catalog_data")


class Catalog:
    def __init__(self, directory):
        self.directory = directory
        digest = hashlib.sha256()
        raw = (directory / "decision_trees.toml").read_bytes()
        digest.update(raw)
        self.trees = {
            key: DecisionTree(key, v["title"], v["question"], v["tree"].strip("\n"))
            for key, v in toml.loads(raw.decode()).items()
        }
        self.rules: dict[str, Rule] = {}
        files = sorted((p for p in directory.iterdir() if p.name.startswith("SCL") and p.name.endswith(".toml")),
                       key=lambda p: p.name)
        for path in files:
            raw = path.read_bytes()
            digest.update(raw)
            rule = self._rule(toml.loads(raw.decode()), path.name)
            self.rules[rule.code] = rule
        self.by_name = {rule.name: rule for rule in self.rules.values()}
        self.fingerprint = digest.hexdigest()[:16]

    def _rule(self, data: dict[str, Any], filename: str) -> Rule:
        code = data["code"]
        if filename != f"{code}.toml":
            raise ValueError(f"{filename}: code {code} does not match the file name")
        if data["severity"] not in SEVERITIES:
            raise ValueError(f"{filename}: severity must be one of {SEVERITIES}")
        if data["tree"] not in self.trees:
            raise ValueError(f"{filename}: unknown decision tree {data['tree']!r}")
        confidence, by_source = _confidence(data.get("confidence", "medium"), filename)
        return Rule(
            code=code,
            name=data["name"],
            summary=data["summary"],
            severity=data["severity"],
            confidence=confidence,
            sources=tuple(data["sources"]),
            tree=self.trees[data["tree"]],
            branch=data["branch"],
            fix=data["fix"],
            messages=dict(data["message"]),
            doc=dict(data["doc"]),
            examples=tuple(data.get("examples", ())),
            options=dict(data.get("options", {})),
            default=data.get("default", True),
            fix_safety=data.get("fix_safety"),
            confidence_by_source=by_source,
        )

    def resolve(self, code_or_name: str) -> Rule | None:
        key = code_or_name.strip()
        return self.rules.get(key.upper()) or self.by_name.get(key.lower())

    def default_codes(self) -> set:
        return {code for code, rule in self.rules.items() if rule.default}


def _confidence(value, filename: str) -> tuple:
    """(the rule's overall confidence, per-source confidences). A table's overall value is its lowest."""
    by_source = dict(value) if isinstance(value, dict) else {}
    values = list(by_source.values()) if by_source else [value]
    for v in values:
        if v not in CONFIDENCES:
            raise ValueError(f"{filename}: confidence must be one of {CONFIDENCES}, got {v!r}")
    return min(values, key=CONFIDENCES.index), by_source


@functools.lru_cache(maxsize=1)
def load() -> Catalog:
    return Catalog(_catalog_dir())
