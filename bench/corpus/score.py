#!/usr/bin/env python3
"""Score syscall-lint on the pinned corpus against bench/corpus/labels.jsonl.

Runs `python3 -m syscall_lint check --no-cache --format json --select ...` on every fetched
project (bench/corpus/fetch.py first) and on the running interpreter's standard library, then
matches findings to labels by (project, path, line, code):

  TP  a finding on a `problem` label
  FP  a finding on a `correct` label, or a finding with no label (listed separately, to be read
      and labelled)
  FN  a `problem` label with no finding

and prints TP/FP/FN, precision and recall per rule, the time taken, and (with --json) the same
as JSON.  --projects FILE scores another project list of the same format (projects are
looked up under $SYSCALL_LINT_CORPUS_DIR, as fetch.py stores them).  Labels whose line text no
longer hashes to the recorded sha1 are reported as drift.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from fetch import load_projects_or_exit, project_dir  # noqa: E402

MAIN_RULES = ["SCL101", "SCL102", "SCL301", "SCL302", "SCL501"]
EXTRA_RULES = ["SCL106", "SCL201", "SCL303", "SCL401"]
STDLIB = "stdlib"
TARGETS = {"SCL101": (0.95, 0.90), "SCL102": (0.95, 0.90), "SCL301": (0.95, 0.90),
           "SCL302": (0.95, 0.90), "SCL501": (0.95, 0.90)}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_version() -> str:
    return "%d.%d.%d" % sys.version_info[:3]


def line_sha1(text: str) -> str:
    return hashlib.sha1(text.strip().encode()).hexdigest()[:12]


def load_labels(path: Path) -> list[dict]:
    labels = []
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            raw = raw.strip()
            if not raw or raw.startswith("#") or raw.startswith("//"):
                continue
            try:
                lab = json.loads(raw)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: bad JSON: {e}")
            for k in ("project", "path", "line", "code", "verdict", "reason"):
                if k not in lab:
                    sys.exit(f"{path}:{n}: missing {k!r}")
            if lab["verdict"] not in ("problem", "correct"):
                sys.exit(f"{path}:{n}: verdict must be problem or correct")
            labels.append(lab)
    return labels


def root_of(project: str) -> Path:
    return stdlib_dir() if project == STDLIB else project_dir(project)


def run_lint(root: Path, codes: list[str], jobs: int, timeout: float) -> tuple[list[dict], list[str]]:
    cmd = [sys.executable, "-m", "syscall_lint", "check", "--no-cache", "--format", "json",
           "--exit-zero", "--config", str(HERE / "lint.toml"), "-j", str(jobs),
           "--select", codes[0]]
    if codes[1:]:
        cmd += ["--extend-select", ",".join(codes[1:])]
    cmd.append(".")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], [f"timed out after {timeout:.0f}s"]
    try:
        data = json.loads(p.stdout)
    except json.JSONDecodeError:
        return [], [f"exit {p.returncode}: {(p.stderr.strip().splitlines() or ['no output'])[-1]}"]
    errs = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in data.get("errors", [])]
    return data.get("findings", []), errs


def norm(path: str) -> str:
    path = path.replace(os.sep, "/")
    return path[2:] if path.startswith("./") else path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", default=str(HERE / "projects.toml"),
                    help="the pinned project list to score (default: the live projects.toml)")
    ap.add_argument("--labels", default=str(HERE / "labels.jsonl"))
    ap.add_argument("--rules", default=",".join(MAIN_RULES + EXTRA_RULES))
    ap.add_argument("--only", default="", help="comma-separated project names (stdlib for the stdlib)")
    ap.add_argument("--no-stdlib", action="store_true")
    ap.add_argument("--jobs", "-j", type=int, default=1, help="linter workers per project")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per project")
    ap.add_argument("--json", action="store_true", help="print JSON instead of text")
    ap.add_argument("--json-out", help="also write the JSON result to this file")
    ap.add_argument("--findings-out", help="also write every finding (JSON lines) here")
    args = ap.parse_args(argv)
    codes = [c.strip().upper() for c in args.rules.split(",") if c.strip()]
    labels = [lab for lab in load_labels(Path(args.labels)) if lab["code"] in codes]

    projects = [p["name"] for p in load_projects_or_exit(Path(args.projects))]
    if not args.no_stdlib:
        projects.append(STDLIB)
    if args.only:
        want = {n.strip().lower() for n in args.only.split(",")}
        projects = [p for p in projects if p.lower() in want]
    labels = [lab for lab in labels if lab["project"] in projects]

    t0 = time.monotonic()
    findings, errors, missing, timings = [], {}, [], {}
    for proj in projects:
        root = root_of(proj)
        if not root.is_dir():
            missing.append(proj)
            continue
        t = time.monotonic()
        fs, errs = run_lint(root, codes, args.jobs, args.timeout)
        timings[proj] = time.monotonic() - t
        if errs:
            errors[proj] = errs
        for f in fs:
            findings.append({"project": proj, "path": norm(f["path"]), "line": f["line"],
                             "code": f["code"], "message": f.get("message", "")})
    elapsed = time.monotonic() - t0

    by_key = {(l["project"], l["path"], int(l["line"]), l["code"]): l for l in labels}
    found = {(f["project"], f["path"], int(f["line"]), f["code"]) for f in findings}
    stats = {c: {"tp": 0, "fp_correct": 0, "fp_unlabelled": 0, "fn": 0, "tn": 0,
                 "problems": 0, "correct": 0} for c in codes}
    fp_correct, unlabelled, fn = [], [], []
    for f in findings:
        key = (f["project"], f["path"], int(f["line"]), f["code"])
        lab = by_key.get(key)
        if lab is None:
            stats[f["code"]]["fp_unlabelled"] += 1
            unlabelled.append(f)
        elif lab["verdict"] == "problem":
            stats[f["code"]]["tp"] += 1
        else:
            stats[f["code"]]["fp_correct"] += 1
            fp_correct.append({**f, "reason": lab["reason"]})
    for key, lab in by_key.items():
        s = stats[lab["code"]]
        s["problems" if lab["verdict"] == "problem" else "correct"] += 1
        if key not in found:
            if lab["verdict"] == "problem":
                s["fn"] += 1
                fn.append(lab)
            else:
                s["tn"] += 1

    drift = []
    for lab in labels:
        if "sha1" not in lab:
            continue
        try:
            lines = (root_of(lab["project"]) / lab["path"]).read_text(errors="replace").splitlines()
            text = lines[int(lab["line"]) - 1]
        except (OSError, IndexError):
            text = None
        if text is None or line_sha1(text) != lab["sha1"]:
            drift.append(lab)

    for c, s in stats.items():
        fp = s["fp_correct"] + s["fp_unlabelled"]
        s["fp"] = fp
        s["precision"] = s["tp"] / (s["tp"] + fp) if s["tp"] + fp else None
        s["recall"] = s["tp"] / (s["tp"] + s["fn"]) if s["tp"] + s["fn"] else None

    result = {"corpus": {"projects": len([p for p in projects if p != STDLIB]),
                         "stdlib": None if STDLIB not in projects else
                         {"path": str(stdlib_dir()), "python": stdlib_version()},
                         "missing": missing, "labels": len(labels)},
              "rules": stats, "false_positives_on_correct_labels": fp_correct,
              "unlabelled_findings": unlabelled, "false_negatives": fn,
              "label_drift": drift, "errors": errors, "seconds": round(elapsed, 1),
              "seconds_per_project": {k: round(v, 1) for k, v in timings.items()}}
    if args.findings_out:
        with open(args.findings_out, "w") as out:
            for f in findings:
                out.write(json.dumps(f) + "\n")
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump(result, out, indent=2)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    def pct(x):
        return "  n/a" if x is None else f"{x:5.3f}"
    sl = result["corpus"]["stdlib"]
    print(f"corpus: {result['corpus']['projects']} projects"
          + (f" + stdlib {sl['python']} ({sl['path']})" if sl else "")
          + f", {len(labels)} labels" + (f"; not fetched: {', '.join(missing)}" if missing else ""))
    print(f"{'rule':7} {'problems':>8} {'correct':>7} {'TP':>4} {'FP':>4} {'(on-correct':>11} "
          f"{'unlabelled)':>11} {'FN':>4} {'precision':>9} {'recall':>6}  target")
    for c, s in stats.items():
        tgt = TARGETS.get(c)
        ok = ""
        if tgt:
            met = (s["precision"] or 0) >= tgt[0] and (s["recall"] or 0) >= tgt[1]
            ok = f"P>={tgt[0]} R>={tgt[1]}: " + ("met" if met else "NOT met")
        print(f"{c:7} {s['problems']:8} {s['correct']:7} {s['tp']:4} {s['fp']:4} {s['fp_correct']:11} "
              f"{s['fp_unlabelled']:11} {s['fn']:4} {pct(s['precision']):>9} {pct(s['recall']):>6}  {ok}")
    if fp_correct:
        print("\nfalse positives on look-alike (correct) labels:")
        for f in fp_correct:
            print(f"  {f['code']} {f['project']}:{f['path']}:{f['line']}  -- {f['reason']}")
    if fn:
        print("\nmissed problems (false negatives):")
        for l in fn:
            print(f"  {l['code']} {l['project']}:{l['path']}:{l['line']}  -- {l['reason']}")
    if unlabelled:
        print("\nunlabelled findings (counted as FP until labelled):")
        for f in unlabelled:
            print(f"  {f['code']} {f['project']}:{f['path']}:{f['line']}  {f['message'][:110]}")
    if drift:
        print("\nlabel drift (line text no longer matches the recorded sha1):")
        for l in drift:
            print(f"  {l['code']} {l['project']}:{l['path']}:{l['line']}")
    for proj, errs in errors.items():
        print(f"\nlinter errors in {proj}: {len(errs)}; first: {errs[0][:160]}")
    print(f"\ntime: {elapsed:.1f}s for {len(timings)} trees")
    return 0


if __name__ == "__main__":
    sys.exit(main())
