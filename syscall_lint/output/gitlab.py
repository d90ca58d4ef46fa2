"""GitLab Code Quality report (a JSON array of issues)."""

from __future__ import annotations

import hashlib
import json

SEVERITY = {"error": "major", "warning": "minor", "info": "info"}


def render(report) -> str:
    issues = []
    seen: dict = {}
    for f in report.findings:
        key = f"{f.path}\0{f.code}\0{f.fingerprint_text or f.message}"
        # GitLab merges issues that share a fingerprint: the same line text twice in one file (two
        # `sock.sendall(block)` loops) counts its occurrences, as SARIF's line hashes do; the first
        # keeps the plain hash, so fingerprints of unique findings do not change
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key += f"\0{seen[key]}"
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        issues.append({
            "type": "issue",
            "description": f"{f.code} {f.message}",
            "check_name": f"{f.code} {f.name}",
            "content": {"body": f"Fix: {f.fix}\n\nDecision tree: {f.decision_tree['id']} → {f.decision_tree['answer']}"
                                f"\n\n{f.url}"},
            "categories": ["Performance" if f.code[3] in "2346" else "Bug Risk"],
            "fingerprint": fingerprint,
            "severity": SEVERITY[f.severity],
            "location": {"path": f.path, "lines": {"begin": f.line or 1, "end": f.end_line or f.line or 1}},
        })
    return json.dumps(issues, indent=2, ensure_ascii=False) + "\n"
