"""SARIF 2.1.0 for GitHub code scanning: one run per source (python, strace, elf), each with its
own automationDetails.id, rules with their docs and decision tree, repo-relative URIs, exclusive end
columns and primaryLocationLineHash fingerprints that survive unrelated edits."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import quote

from syscall_lint import __version__, catalog
from syscall_lint.rule_docs import page

LEVELS = {"error": "error", "warning": "warning", "info": "note"}
INFO_URI = "https://github.com/syscall-lint/syscall-lint"


def artifact(path: str) -> dict:
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(Path.cwd())
        return {"uri": quote(rel.as_posix()), "uriBaseId": "%SRCROOT%"}
    except ValueError:
        return {"uri": absolute.as_uri()}


def _rule(rule) -> dict:
    return {
        "id": rule.code,
        "name": "".join(part.capitalize() for part in rule.name.split("-")),
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": " ".join(rule.doc["what"].split())},
        "help": {"text": f"{' '.join(rule.doc['why'].split())}\nFix: {rule.fix}\nDecision tree: {rule.tree.title} → "
                         f"{rule.branch}\n{rule.url}",
                 "markdown": page(rule) + f"\n[Rule documentation]({rule.url})\n"},
        "helpUri": rule.url,
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"tags": [rule.tree.id, *rule.sources], "precision": rule.confidence if rule.confidence in (
            "high", "medium", "low") else "medium", "decision_tree": rule.tree.id},
    }


def _result(f, rule_index: dict, seen: dict) -> dict:
    location = {"physicalLocation": {"artifactLocation": artifact(f.path)}}
    if f.line is not None:
        region = {"startLine": f.line}
        if f.column is not None:
            region["startColumn"] = f.column
        if f.end_line is not None:
            region["endLine"] = f.end_line
        if f.end_column is not None:
            region["endColumn"] = f.end_column  # exclusive, as SARIF wants
        location["physicalLocation"]["region"] = region
    key = hashlib.sha256(f"{f.code}\0{f.fingerprint_text or f.message}".encode()).hexdigest()[:16]
    seen[key] = seen.get(key, 0) + 1
    return {
        "ruleId": f.code,
        "ruleIndex": rule_index[f.code],
        "level": LEVELS[f.severity],
        "message": {"text": f"{f.message}\nFix: {f.fix}"},
        "locations": [location],
        "partialFingerprints": {"primaryLocationLineHash": f"{key}:{seen[key]}"},
        "properties": {"decision_tree": f.decision_tree, "fix": f.fix, "evidence": f.evidence,
                       # joined with a recorded run (record --check): the run reached this line
                       "confirmed": "confirmed" in f.evidence, "seenInRecordedRun": bool(f.evidence.get("static_miss"))},
    }


def document(report) -> dict:
    cat = catalog.load()
    sources = sorted(report.sources) or ["python"]
    runs = []
    for source in sources:
        rules = [r for r in cat.rules.values() if source in r.sources]
        index = {r.code: i for i, r in enumerate(rules)}
        seen: dict = {}
        mine = [f for f in report.findings if f.source == source]
        errors = [e for e in report.errors]
        runs.append({
            "tool": {"driver": {"name": "syscall-lint", "version": __version__, "semanticVersion": __version__,
                                "informationUri": INFO_URI, "rules": [_rule(r) for r in rules]}},
            "automationDetails": {"id": f"syscall-lint/{source}/"},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
            "invocations": [{
                "executionSuccessful": not errors,
                "toolExecutionNotifications": [
                    {"level": "error", "message": {"text": f"{e.path}: {e.message}"},
                     "locations": [{"physicalLocation": {"artifactLocation": artifact(e.path)}}]} for e in errors],
            }],
            "results": [_result(f, index, seen) for f in mine],
        })
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": runs}


def render(report) -> str:
    return json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"
