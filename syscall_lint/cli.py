"""The command line: check, trace, record, audit, rule, lsp."""

from __future__ import annotations

import argparse
import os
import sys

from syscall_lint import __version__
from syscall_lint.config import ConfigError, Resolver
from syscall_lint.output import FORMATS, render
from syscall_lint.report import Report


def _codes(value: str) -> list:
    return [c.strip() for c in value.split(",") if c.strip()]


def _common(p: argparse.ArgumentParser, short_output: bool = True) -> None:
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    p.add_argument("--select", type=_codes, help="comma-separated codes or prefixes to enable (replaces the config)")
    p.add_argument("--extend-select", type=_codes, help="codes to enable on top of the selection")
    p.add_argument("--ignore", type=_codes, help="comma-separated codes or prefixes to disable")
    p.add_argument("--config", help="read settings from this TOML file instead of the nearest pyproject.toml")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings (errors still exit 2)")
    names = ("--output", "-o") if short_output else ("--output",)
    p.add_argument(*names, dest="output", help="write the report to this file")
    p.add_argument("--statistics", action="store_true", help="count findings per rule (text format)")
    p.add_argument("--explain", "-v", action="store_true", help="show each finding's decision tree branch and fix")
    p.add_argument("--baseline", help="report only findings not in this baseline file")
    p.add_argument("--write-baseline", metavar="FILE", help="write the current findings to FILE as the baseline")
    p.add_argument("--force-exclude", action="store_true",
                   help="apply exclude to paths named on the command line too (for pre-commit)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syscall-lint", description="A static linter for syscall anti-patterns.")
    parser.add_argument("--version", action="version", version=f"syscall-lint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="lint Python sources (libcst)")
    check.add_argument("paths", nargs="*", metavar="PATH")
    _common(check)
    check.add_argument("-j", "--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    check.add_argument("--no-cache", action="store_true", help="do not read or write the result cache")
    check.add_argument("--cache-dir", default=os.environ.get("SYSCALL_LINT_CACHE_DIR", ".syscall_lint_cache"))
    check.add_argument("--fix", action="store_true", help="apply safe fixes")
    check.add_argument("--unsafe-fixes", action="store_true", help="with --fix or --diff, include unsafe fixes")
    check.add_argument("--diff", action="store_true", help="print the fixes as a unified diff; change nothing")
    check.add_argument("--strict", action="store_true",
                       help="parse every file, so syntax errors are reported even where no rule could match")

    trace = sub.add_parser("trace", help="lint recorded strace logs")
    trace.add_argument("paths", nargs="+", metavar="FILE")
    _common(trace)

    record = sub.add_parser("record", help="run a command under strace and lint the recording")
    record.add_argument("-o", "-O", "--trace-output", dest="trace_output", help="keep the strace log in this file")
    _common(record, short_output=False)
    record.add_argument("--check", action="append", metavar="PATH", default=[],
                        help="also analyse PATH statically (Python sources or ELF binaries) and join: findings "
                             "the run reached are marked confirmed; run findings the static rules missed are "
                             "reported at their source line (repeatable)")
    record.add_argument("--no-source-map", dest="source_map", action="store_false",
                        help="do not map syscalls to source lines (no strace -k, no Python start-up shim)")
    record.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")

    audit = sub.add_parser("audit", help="audit ELF binaries (never executed)")
    audit.add_argument("paths", nargs="+", metavar="BINARY|DIR")
    _common(audit)
    audit.add_argument("-j", "--jobs", type=int, default=None)
    audit.add_argument("--profile", action="store_true", help="show each binary's syscall-surface profile (also -v)")

    rule = sub.add_parser("rule", help="the rule catalog, or one rule's documentation")
    rule.add_argument("code", nargs="?")
    rule.add_argument("--format", choices=("text", "json", "markdown"), default="text")

    sub.add_parser("lsp", help="run the language server on stdio")
    return parser


def _overrides(args) -> dict:
    return {"select": args.select, "extend-select": args.extend_select, "ignore": args.ignore,
            "force-exclude": args.force_exclude, "strict": getattr(args, "strict", False)}


def run() -> None:
    """The console entry point (and `python -m syscall_lint`): main(), then, once stdout and stderr
    are flushed, an exit that skips the interpreter's teardown — freeing every module and object
    one by one took 40 ms after an audit of /usr/bin (numpy, capstone and 1,400 profiles loaded),
    more than reading some hundred binaries. main() itself returns, for callers in-process."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader went away, or the stream is closed (the LSP's)
            pass
    os._exit(0 if status is None else status if isinstance(status, int) else 1)  # as sys.exit reads it


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "rule":
            from syscall_lint.rule_docs import command

            return command(args.code, args.format)
        if args.command == "lsp":
            from syscall_lint.lsp import serve

            return serve()
        resolver = Resolver(args.config, _overrides(args))
        return _lint(args, resolver)
    except ConfigError as exc:
        print(f"syscall-lint: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


def _lint(args, resolver) -> int:
    extra_status = None
    if args.command == "check":
        if args.fix or args.diff:
            from syscall_lint.fix import run_fixes

            status = run_fixes(args.paths or ["."], resolver, unsafe=args.unsafe_fixes, diff_only=args.diff)
            if args.diff:
                return status
        from syscall_lint.python.runner import check

        report = check(args.paths, resolver, jobs=args.jobs, cache_dir=None if args.no_cache else args.cache_dir)
    elif args.command == "trace":
        from syscall_lint.strace.runner import lint_traces

        report = lint_traces(args.paths, resolver)
    elif args.command == "record":
        from syscall_lint.sourcemap.joined import record_with_sources

        cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
        if not cmd:
            print("syscall-lint: record: give the command after --, e.g. syscall-lint record -- python3 app.py",
                  file=sys.stderr)
            return 2
        report, extra_status = record_with_sources(cmd, args.trace_output, resolver, check_paths=args.check,
                                                   source_map=args.source_map)
    else:
        from syscall_lint.elf.runner import audit

        report = audit(args.paths, resolver, jobs=args.jobs, profiles=args.profile or args.explain)
    return _emit(args, report, extra_status)


def _emit(args, report: Report, extra_status=None) -> int:
    from syscall_lint.output.text import render_errors

    report.findings.sort(key=lambda f: f.sort_key())
    if args.write_baseline:
        return _write_baseline(args, report)
    if args.baseline:
        from syscall_lint.baseline import filter_new

        report.findings = filter_new(args.baseline, report.findings)
    text = render(args.format, report, explain=args.explain, statistics=args.statistics)
    if args.output:
        problem = _write_output(args.output, text)
        if problem:
            print(f"syscall-lint: error: {args.output}: cannot write the report: {problem}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if args.format in ("text", "gitlab") or args.output:
        sys.stderr.write(render_errors(report))
    for warning in report.warnings:
        print(f"syscall-lint: warning: {warning}", file=sys.stderr)
    if extra_status is not None:
        print(f"syscall-lint: the recorded command exited with status {extra_status}", file=sys.stderr)
    if report.errors:
        return 2
    if report.findings and not args.exit_zero:
        return 1
    return 0


def _write_output(path: str, text: str):
    """Write the report, creating missing parent folders as ruff does; the reason on failure."""
    try:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _write_baseline(args, report: Report) -> int:
    """Adopting a baseline is not a lint run: confirm what was written, exit 0 (2 on input errors)."""
    from syscall_lint.baseline import write
    from syscall_lint.output.text import render_errors

    try:
        entries = write(args.write_baseline, report.findings)
    except OSError as exc:
        print(f"syscall-lint: error: {args.write_baseline}: cannot write the baseline: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    sys.stderr.write(render_errors(report))
    n = len(report.findings)
    print(f"syscall-lint: wrote {n} finding{'s' if n != 1 else ''} ({entries} entr{'ies' if entries != 1 else 'y'}) "
          f"to the baseline {args.write_baseline}", file=sys.stderr)
    return 2 if report.errors else 0
