#!/usr/bin/env python3
"""Run the fuzz campaign: `python3 bench/fuzz/run.py [--kind K ...] [--count N]`.

Prints one line per kind (inputs, tracebacks, hangs, bad exits, memory failures, peak RSS) and the
failing inputs, saved under bench/fuzz/failures/<kind>/ for turning into regression tests.
Exit status 0 when every kind held, 1 when any input failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import DEFAULT_MEMORY_BOUND_MB, HERE, available_kinds, campaign  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", action="append", choices=available_kinds(),
                        help="input kind (repeatable; default: every kind)")
    parser.add_argument("--count", type=int, default=10000, help="inputs per kind (default 10000)")
    parser.add_argument("--batch", type=int, default=150, help="inputs per process (a kind may override)")
    parser.add_argument("--seed", default="1")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a batch counts as a hang")
    parser.add_argument("--memory-bound", type=int, default=DEFAULT_MEMORY_BOUND_MB, help="MiB of peak RSS per process")
    parser.add_argument("--save", type=Path, default=HERE / "failures", help="where failing inputs are copied")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    summaries, failed = [], False
    for kind in args.kind or available_kinds():
        progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
        result = campaign(kind, args.count, args.batch, args.seed, args.timeout, args.memory_bound,
                          save_dir=args.save, progress=progress)
        summary = result.summary()
        summaries.append(summary)
        failed = failed or bool(result.failures)
        if not args.json:
            print(f"{kind:12} inputs {summary['inputs']:6}  tracebacks {summary['tracebacks']}  "
                  f"hangs {summary['hangs']}  bad exits {summary['bad_exits']}  memory {summary['memory']}  "
                  f"other {summary['other_failures']}  peak RSS {summary['peak_rss_mb']} MiB  "
                  f"{summary['seconds']} s  (findings {summary['findings']}, input errors {summary['input_errors']})")
            for failure in result.failures[:20]:
                names = ", ".join(p.name for p in failure.inputs[:3])
                print(f"    {failure.problem}: {names}: {failure.detail.strip().splitlines()[-1:] or ''}")
    if args.json:
        print(json.dumps(summaries, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
