"""`syscall-lint rule`: the catalog as a table, one rule's page, or markdown for docs/rules/."""

from __future__ import annotations

import json
import sys

from syscall_lint import catalog
from syscall_lint.findings import placeholders


def readable_fix(rule) -> str:
    """The fix for a page: a template's fields ({handle}) shown as <handle>, not as raw braces."""
    text = rule.fix
    for name in placeholders(text):
        text = text.replace("{" + name + "}", f"<{name}>")
    return text


def page(rule) -> str:
    """A rule's page in markdown, ruff-style: what / why / example / use instead / references."""
    doc = rule.doc
    refs = "\n".join(f"- {r}" for r in rule.doc.get("references", []))
    return f"""# {rule.code} {rule.name}

{rule.summary}

Severity: {rule.severity} · Confidence: {rule.confidence} · Sources: {", ".join(rule.sources)}{" · Opt-in" if not rule.default else ""}{f" · Fix: {rule.fix_safety}" if rule.fix_safety else ""}

## What it does
{doc["what"].strip()}

## Why is this bad?
{doc["why"].strip()}

## Example
{doc["example"].strip()}

## Use instead
{doc["use_instead"].strip()}

## Decision tree: {rule.tree.title} — {rule.tree.question}
Branch: **{rule.branch}**

```
{rule.tree.tree}
```

## Fix
{readable_fix(rule)}

## References
{refs}
"""


def table(cat) -> str:
    rows = ["| code | name | severity | sources | decision tree | summary |", "|---|---|---|---|---|---|"]
    for rule in cat.rules.values():
        opt = " (opt-in)" if not rule.default else ""
        rows.append(f"| [{rule.code}](docs/rules/{rule.code}.md) | {rule.name}{opt} | {rule.severity} | "
                    f"{', '.join(rule.sources)} | {rule.tree.id} | {rule.summary} |")
    return "\n".join(rows) + "\n"


def command(code: str | None, fmt: str) -> int:
    cat = catalog.load()
    if code is None:
        if fmt == "json":
            print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity, "sources": r.sources,
                               "decision_tree": r.tree.id, "summary": r.summary, "url": r.url}
                              for r in cat.rules.values()], indent=2))
        elif fmt == "markdown":
            sys.stdout.write(table(cat))
        else:
            for r in cat.rules.values():
                opt = " (opt-in)" if not r.default else ""
                print(f"{r.code}  {r.name:<26} {r.severity:<8} {','.join(r.sources):<20} {r.summary}{opt}")
        return 0
    rule = cat.resolve(code)
    if rule is None:
        print(f"syscall-lint: unknown rule {code!r}; `syscall-lint rule` lists them", file=sys.stderr)
        return 2
    if fmt == "json":
        print(json.dumps({"code": rule.code, "name": rule.name, "doc": rule.doc, "fix": readable_fix(rule),
                          "decision_tree": {"id": rule.tree.id, "question": rule.tree.question,
                                            "answer": rule.branch, "tree": rule.tree.tree}, "url": rule.url}, indent=2))
    else:
        sys.stdout.write(page(rule))
    return 0


def write_docs(directory: str = "docs/rules") -> None:
    """Regenerate docs/rules/SCLxxx.md from the catalog."""
    import os

    os.makedirs(directory, exist_ok=True)
    for rule in catalog.load().rules.values():
        with open(os.path.join(directory, f"{rule.code}.md"), "w", encoding="utf-8") as fh:
            fh.write(page(rule))


if __name__ == "__main__":
    write_docs()
