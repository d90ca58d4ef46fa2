"""The strace parser's opt-in compiled core (python3 -m syscall_lint.strace.build_native) against the
pure-Python parser it is built from: the same events, counts and findings on every recording and
every regression input. Without a build these skip, and the pure parser is what runs."""

import importlib.util
import io
import subprocess
import sys
import types

import pytest

from conftest import FIXTURES, ROOT, run_json
import syscall_lint.strace
import syscall_lint.strace.parser as parser

TRACES = FIXTURES / "strace"
INPUTS = sorted(TRACES.glob("*.strace")) + sorted((ROOT / "tests" / "data" / "regressions" / "strace").iterdir())
needs_build = pytest.mark.skipif(parser.NATIVE is None, reason="the compiled core is not built (python3 -m "
                                 "syscall_lint.strace.build_native; needs mypy and a C compiler)")


def pure_parser():
    """parser.py loaded again under another name: the compiled core is never used there."""
    spec = importlib.util.spec_from_file_location("syscall_lint.strace._parser_pure_for_tests", parser.__file__)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def events(module, data: bytes, wanted=None) -> tuple:
    stats = module.Stats()
    seen = []
    for ev in module.parse(io.BufferedReader(io.BytesIO(data)), stats, default_pid=7, wanted=wanted):
        fields = ("line", "pid", "name", "args", "result", "ret", "ts", "duration", "errno", "status", "signal", "text")
        seen.append((type(ev).__name__,) + tuple(getattr(ev, f, None) for f in fields))
    return seen, (stats.lines, stats.calls, stats.malformed, stats.malformed_examples, stats.dropped_unfinished)


@needs_build
@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_the_compiled_core_parses_like_the_pure_parser(path):
    pure = pure_parser()
    data = path.read_bytes()
    assert pure.NATIVE is None
    compiled = events(parser.NATIVE, data)
    assert compiled == events(pure, data)
    subset = {b"write", b"openat", b"pselect6", b"close"}
    assert events(parser.NATIVE, data, subset) == events(pure, data, subset)
    assert compiled[1][0] > 0  # lines were read, so the comparison compared something


@needs_build
def test_the_compiled_core_gives_the_same_findings_as_the_pure_parser():
    _, compiled = run_json("trace", TRACES)
    _, pure = run_json("trace", TRACES, env={"SYSCALL_LINT_PURE": "1"})
    assert compiled["findings"] and compiled["findings"] == pure["findings"]
    assert compiled.get("traces") == pure.get("traces")


def test_the_pure_parser_runs_when_asked():
    probe = "import syscall_lint.strace.parser as p; print(p.NATIVE is None, p.parse.__module__)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "SYSCALL_LINT_PURE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.stdout.split() == ["True", "syscall_lint.strace.parser"], proc.stderr


def test_a_build_of_another_source_is_never_used(monkeypatch):
    import hashlib

    digest = hashlib.sha256(open(parser.__file__, "rb").read()).hexdigest()
    fake = types.ModuleType("syscall_lint.strace._parser_native")
    monkeypatch.setitem(sys.modules, "syscall_lint.strace._parser_native", fake)
    monkeypatch.setattr(syscall_lint.strace, "_parser_native", fake, raising=False)  # a real build, if imported
    monkeypatch.delenv("SYSCALL_LINT_PURE", raising=False)
    fake.SOURCE_DIGEST = "0" * 64  # built from an older parser.py
    assert parser._native_core() is None
    fake.SOURCE_DIGEST = digest
    assert parser._native_core() is fake
    monkeypatch.setenv("SYSCALL_LINT_PURE", "1")
    assert parser._native_core() is None


@needs_build
def test_the_compiled_core_reads_lines_on_the_edge_like_the_pure_parser():
    from test_strace_fastpath import EDGES

    pure = pure_parser()
    data = b"\n".join(EDGES)
    for wanted in (None, set(), {b"read", b"write", b"openat", b"close"}, {b"getpid", b"c"}):
        assert events(parser.NATIVE, data, wanted) == events(pure, data, wanted)
