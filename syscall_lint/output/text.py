"""flake8-style text: one finding per line; the lesson (decision tree, fix) on request."""

from __future__ import annotations

from collections import Counter


def location(f) -> str:
    if f.line is None:
        return f.path
    if f.column is None:
        return f"{f.path}:{f.line}"
    return f"{f.path}:{f.line}:{f.column}"


def run_marker(f) -> str:
    """What a recorded run said about a finding, when it was joined with one (record --check)."""
    if "confirmed" in f.evidence:
        run = f.evidence["confirmed"]
        where = f": {run['trace']}:{run['trace_line']}" if run.get("trace") else ""
        return f" [confirmed by the recorded run{where}]"
    if f.evidence.get("static_miss"):
        trace = f.evidence.get("trace") or {}
        where = f": {trace['path']}:{trace.get('line')}" if trace.get("path") else ""
        return f" [seen in the recorded run{where}; the static rules missed it]"
    return ""


def render(report, explain: bool = False, statistics: bool = False) -> str:
    out = []
    # --statistics alone is a summary (as in ruff): the counts, not the findings; with --explain, both
    for f in report.findings if explain or not statistics else ():
        out.append(f"{location(f)}: {f.code} {f.message}{run_marker(f)}")
        if explain:
            tree = f.decision_tree
            out.append(f"    decision tree  {tree['id']} — {tree['question']} → {tree['answer']}")
            out.append(f"    fix            {f.fix}")
            out.append(f"    docs           {f.url}")
    out.extend(report.preamble)  # audit profiles: after the findings, which a reader wants first
    if statistics and report.findings:
        counts = Counter((f.code, f.name) for f in report.findings)
        for (code, name), n in sorted(counts.items()):
            out.append(f"{n:<5} {code} {name}")
    return "\n".join(out) + ("\n" if out else "")


def render_errors(report) -> str:
    return "".join(f"syscall-lint: error: {e.path}: {e.message}\n" for e in report.errors)
