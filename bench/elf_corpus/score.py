#!/usr/bin/env python3
"""Score `syscall-lint audit` against the issue-10 corpus labels.

Runs `python3 -m syscall_lint audit --format json` once over every binary named in packages.toml
(extracted by fetch.py), then compares with labels.toml:

  SCL301 / SCL302  per binary and architecture: reported or not, against the server labels
  SCL101           per binary: server entries with an scl101 field, and [[scl101]] entries
  SCL501           per site on arm64: (binary, loop start address) against the [[scl501]] sample
                   (racy = should be reported, correct = should not); reports at unlabelled sites
                   are counted, not scored

and prints TP/FP/FN/TN, precision and recall per rule, the binaries with the most findings, and the
time the audit took. Binaries missing from the cache are listed and skipped (run fetch.py first).

Usage: python3 bench/elf_corpus/score.py [--json] [--audit-json FILE] [--save-audit FILE] [-j N]
  --audit-json FILE  score a saved `audit --format json` report instead of running the audit
  --save-audit FILE  keep the audit's JSON report
Exit status: 0 scored, 2 the audit failed or nothing to score.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from syscall_lint._toml import toml  # noqa: E402
import fetch  # noqa: E402

RULES = ("SCL301", "SCL302", "SCL101", "SCL501")
SCREENFUL = 40  # findings: "no binary reporting more than a screenful"
TIMEOUT = 3600


def load_labels(path: Path = HERE / "labels.toml") -> dict:
    with open(path, "rb") as fh:
        return toml.load(fh)


def corpus_binaries(packages, cache):
    """{(package, arch, binary): absolute path} for every binary packages.toml names, and the missing ones."""
    present, missing = {}, []
    for pkg in packages:
        root = fetch.root_of(pkg, cache)
        for b in pkg.get("binaries", []):
            p = root / b
            (present.__setitem__((pkg["name"], pkg["architecture"], b), os.path.realpath(p)) if p.is_file()
             else missing.append(f"{pkg['name']}:{pkg['architecture']}/{b}"))
    return present, missing


def run_audit(paths, jobs):
    cmd = [sys.executable, "-m", "syscall_lint", "audit", "--format", "json", "--exit-zero", "-j", str(jobs),
           "--select", ",".join(RULES), *paths]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"score: audit failed (exit {proc.returncode}): "
                         f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(proc.stdout), elapsed


def _counts(pairs):
    """pairs of (expected, reported) -> tp/fp/fn/tn, precision, recall."""
    c = Counter()
    for expected, reported in pairs:
        c[("tp" if expected else "fp") if reported else ("fn" if expected else "tn")] += 1
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    return {"tp": tp, "fp": fp, "fn": fn, "tn": c["tn"],
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None}


def score(doc, labels, present):
    by_path = defaultdict(list)
    for f in doc["findings"]:
        by_path[os.path.realpath(os.path.join(ROOT, f["path"]))].append(f)
    path_of = {k: v for k, v in present.items()}
    results, details = {}, defaultdict(list)

    # SCL301/302/101 per binary and architecture
    binary_labels = defaultdict(dict)  # (package, binary) -> {code: (expected, reason)}
    for s in labels.get("server", []):
        key = (s["package"], s["binary"])
        binary_labels[key]["SCL301"] = s["scl301"]
        binary_labels[key]["SCL302"] = s["scl302"]
        if "scl101" in s:
            binary_labels[key]["SCL101"] = s["scl101"]
    for s in labels.get("scl101", []):
        binary_labels[(s["package"], s["binary"])]["SCL101"] = s["expected"]
    for code in ("SCL301", "SCL302", "SCL101"):
        pairs = []
        for (pkg, arch, b), path in sorted(path_of.items()):
            expected = binary_labels.get((pkg, b), {}).get(code)
            if expected is None:
                continue
            reported = any(f["code"] == code for f in by_path.get(path, []))
            pairs.append((expected, reported))
            if expected != reported:
                details[code].append({"binary": f"{pkg}:{arch}/{b}", "kind": "fn" if expected else "fp"})
        results[code] = _counts(pairs)
        results[code]["labelled"] = len(pairs)

    # SCL501 per site on arm64
    reported_sites = {}
    for (pkg, arch, b), path in path_of.items():
        for f in by_path.get(path, []):
            if f["code"] == "SCL501":
                reported_sites[(pkg, b, int(f["evidence"]["start"], 16))] = f
    pairs, labelled = [], set()
    for s in labels.get("scl501", []):
        key = (s["package"], s["binary"], int(s["start"], 16))
        if not any((s["package"], "arm64", s["binary"]) == k for k in path_of):
            continue
        labelled.add(key)
        expected = s["label"] == "racy"
        reported = key in reported_sites
        pairs.append((expected, reported))
        if expected != reported:
            details["SCL501"].append({"binary": f"{s['package']}:arm64/{s['binary']}", "function": s.get("function"),
                                      "start": s["start"], "kind": "fn" if expected else "fp"})
    results["SCL501"] = _counts(pairs)
    results["SCL501"]["labelled"] = len(pairs)
    results["SCL501"]["reported_total"] = len(reported_sites)
    results["SCL501"]["reported_unlabelled"] = len(set(reported_sites) - labelled)

    per_binary = Counter()
    per_binary_code = defaultdict(Counter)
    for (pkg, arch, b), path in path_of.items():
        for f in by_path.get(path, []):
            per_binary[f"{pkg}:{arch}/{b}"] += 1
            per_binary_code[f["code"]][f"{pkg}:{arch}/{b}"] += 1
    for code in RULES:
        top = per_binary_code[code].most_common(1)
        results[code]["max_per_binary"] = top[0][1] if top else 0
        results[code]["max_binary"] = top[0][0] if top else None
    return results, details, per_binary


def fmt(v) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    ap.add_argument("--audit-json", help="score this saved audit report instead of running the audit")
    ap.add_argument("--save-audit", help="write the audit's JSON report here")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="audit jobs (default 1)")
    args = ap.parse_args(argv)
    cache = fetch.cache_dir()
    present, missing = corpus_binaries(fetch.load_packages(), cache)
    if not present:
        print(f"score: no corpus binaries under {cache}; run bench/elf_corpus/fetch.py", file=sys.stderr)
        return 2
    labels = load_labels()
    if args.audit_json:
        with open(args.audit_json) as fh:
            doc = json.load(fh)
        elapsed = None
    else:
        doc, elapsed = run_audit(sorted(set(present.values())), args.jobs)
        if args.save_audit:
            Path(args.save_audit).write_text(json.dumps(doc))
    results, details, per_binary = score(doc, labels, present)
    worst = per_binary.most_common(5)
    report = {"binaries": len(present), "missing": missing, "audit_seconds": round(elapsed, 2) if elapsed else None,
              "audit_errors": len(doc.get("errors", [])), "rules": results, "mismatches": details,
              "most_findings": [{"binary": b, "findings": n} for b, n in worst],
              "screenful": SCREENFUL,
              "over_a_screenful": [b for b, n in per_binary.items() if n > SCREENFUL]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    t = f"{elapsed:.1f} s" if elapsed is not None else "not run (saved report)"
    print(f"corpus: {len(present)} binaries ({len(missing)} missing), audit {t}, {report['audit_errors']} audit errors")
    print(f"{'rule':7} {'labelled':>8} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4} {'precision':>9} {'recall':>6}  "
          "max/binary")
    for code in RULES:
        r = results[code]
        extra = ""
        if code == "SCL501":
            extra = f"  ({r['reported_total']} reported sites, {r['reported_unlabelled']} unlabelled)"
        print(f"{code:7} {r['labelled']:8} {r['tp']:4} {r['fp']:4} {r['fn']:4} {r['tn']:4} {fmt(r['precision']):>9} "
              f"{fmt(r['recall'])}  {r['max_per_binary']:4} {r['max_binary'] or ''}{extra}")
    print("most findings: " + ", ".join(f"{b} {n}" for b, n in worst))
    over = report["over_a_screenful"]
    print(f"binaries over a screenful ({SCREENFUL} findings): {', '.join(over) if over else 'none'}")
    for code in RULES:
        if not details.get(code):
            continue
        kinds = Counter(d["kind"] for d in details[code])
        shown = details[code] if code != "SCL501" else details[code][:8]
        print(f"{code} mismatches ({', '.join(f'{n} {k.upper()}' for k, n in sorted(kinds.items()))}):")
        for d in shown:
            where = f" {d['function'] or '?'} {d['start']}" if "start" in d else ""
            print(f"  {d['kind'].upper()} {d['binary']}{where}")
        if len(details[code]) > len(shown):
            print(f"  ... {len(details[code]) - len(shown)} more (--json for all)")
    if missing:
        print("missing (run fetch.py): " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
