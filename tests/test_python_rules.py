"""The Python analyser on the shipped fixtures: every planted problem, nothing else."""

import importlib.util
import os
import stat
import sysconfig
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, expected_marks, run_cli, run_json
from syscall_lint.config import parse_table
from syscall_lint.python import analyzer, runner
from syscall_lint.python.analyzer import BadInput, analyze, decode

PY_FIXTURES = sorted((FIXTURES / "python").glob("*.py"))
DEFAULTS = parse_table({}, "<test>", Path("."))


def lint(text, settings=DEFAULTS, gate=True):
    return analyze(text, "t.py", settings, gate=gate)


@pytest.mark.parametrize("path", PY_FIXTURES, ids=lambda p: p.name)
def test_fixture_findings_are_exactly_the_marked_lines(path):
    found = {(f.line, f.code) for f in lint(path.read_text())}
    assert found == expected_marks(path)


def test_clean_fixtures_exist_and_are_clean():
    clean = [p for p in PY_FIXTURES if not expected_marks(p)]
    assert {p.name for p in clean} >= {"config_writer_good.py", "asyncio_server.py", "shm_locked.py"}


def test_aliases_and_pathlib_are_resolved():
    src = (
        "import os as o\nfrom os import replace as swap\nimport pathlib\n\n"
        "def a(p):\n    with open(p + '.t', 'wb') as f:\n        f.write(b'x')\n    o.rename(p + '.t', p)\n\n"
        "def b(p):\n    with open('t.tmp', 'w') as f:\n        f.write('x')\n    swap('t.tmp', p)\n\n"
        "def c(p):\n    pathlib.Path('out.tmp').write_text('x')\n    pathlib.Path('out.tmp').rename(p)\n"
    )
    assert [(f.line, f.code) for f in lint(src)] == [(8, "SCL101"), (13, "SCL101"), (17, "SCL101")]


def test_local_function_named_like_os_call_is_not_resolved_as_os():
    src = "def replace(a, b):\n    pass\n\ndef f(p):\n    with open('t.tmp', 'w') as fh:\n        fh.write('x')\n    replace('t.tmp', p)\n"
    assert lint(src) == []


def test_shadowed_open_is_not_builtin_open():
    src = "open = None\nimport os\ndef f(p):\n    with open('t.tmp', 'w') as fh:\n        fh.write('x')\n    os.replace('t.tmp', p)\n"
    assert lint(src) == []


def test_o_sync_descriptor_counts_as_durable_but_not_dir():
    src = ("import os\ndef f(p, data):\n    fd = os.open(p + '.t', os.O_WRONLY | os.O_CREAT | os.O_SYNC)\n"
           "    os.write(fd, data)\n    os.close(fd)\n    os.replace(p + '.t', p)\n")
    assert [(f.line, f.code) for f in lint(src)] == [(6, "SCL102")]


def test_fsync_before_last_write_does_not_count():
    src = ("import os\ndef f(p):\n    with open('t.tmp', 'w') as fh:\n        fh.write('a')\n        fh.flush()\n"
           "        os.fsync(fh.fileno())\n        fh.write('b')\n    os.replace('t.tmp', p)\n")
    assert [(f.line, f.code) for f in lint(src)] == [(8, "SCL101")]


def test_subclass_of_local_threading_server_is_one_finding_per_class():
    src = ("import socketserver\nclass A(socketserver.ThreadingMixIn, socketserver.TCPServer):\n    pass\n"
           "class B(A):\n    pass\n")
    assert [(f.line, f.code) for f in lint(src)] == [(2, "SCL301"), (4, "SCL301")]


def test_moving_a_written_file_that_is_not_a_temp_is_not_a_replace():
    src = ("import os\ndef archive(report, dest):\n    with open(report, 'w') as fh:\n        fh.write('done')\n"
           "    os.rename(report, dest)\n")
    assert lint(src) == []
    staged = src.replace("open(report,", "open(report + '.new',").replace("os.rename(report,", "os.rename(report + '.new',")
    assert [f.code for f in lint(staged)] == ["SCL101"]


def test_datagram_and_request_response_loops_are_not_unbatched():
    src = ("import socket\ndef flush_queue(sock, buf):\n    while buf:\n        data, addr = buf.popleft()\n"
           "        sock.sendto(data, addr)\n        sock.send(data)\n\n"
           "def negotiate(sock, conn):\n    while True:\n        c = conn.rawq_getchar()\n        sock.sendall(c)\n")
    assert lint(src) == []


def test_server_subclass_inside_a_block_is_still_seen():
    src = ("import socketserver\nclass A(socketserver.ThreadingMixIn, socketserver.TCPServer):\n    pass\n"
           "if True:\n    class B(A):\n        pass\n")
    assert [(f.line, f.code) for f in lint(src)] == [(2, "SCL301"), (5, "SCL301")]


def test_only_the_needed_functions_are_parsed_and_lines_map_back():
    filler = "".join(f"def f{i}(x):\n    return x.replace('a', 'b')\n\n" for i in range(200))
    bad = "import os\n" + filler + "def save(p):\n    with open(p + '.tmp', 'w') as fh:\n        fh.write('x')\n" \
          "    os.replace(p + '.tmp', p)\n"
    from syscall_lint.python.analyzer import _plan
    modules, source, line_map = _plan(bad, {"SCL101"})
    assert modules == {"durability"} and line_map is not None and len(source) < len(bad) / 10
    assert [(f.line, f.code) for f in lint(bad)] == [(605, "SCL101")]
    assert lint(bad) == lint(bad, gate=False)


def test_filling_a_buffer_with_the_same_payload_is_not_output():
    src = ("def fill(sock):\n    data = b'x' * 4096\n    try:\n        while True:\n            sock.send(data)\n"
           "    except BlockingIOError:\n        pass\n\n"
           "def headers(sock, items):\n    for k, v in items:\n        sock.send(f'{k}: {v}'.encode())\n")
    assert [(f.line, f.code) for f in lint(src)] == [(11, "SCL201")]


def test_awaited_partial_send_loop_and_stubs_are_silent():
    src = ("async def send_all(sock, data):\n    total = 0\n    while total < len(data):\n"
           "        sent = await sock.send(data[total:])\n        total += sent\n")
    assert lint(src) == []
    stub = "import socketserver\nclass S(socketserver.ThreadingMixIn, socketserver.TCPServer): ...\n"
    assert [f.code for f in lint(stub)] == ["SCL301"]
    assert analyze(stub, "server.pyi", DEFAULTS) == []


def test_raw_flag_polled_with_break_in_a_while_true_loop():
    src = ("import mmap\n\ndef wait(size):\n    buf = mmap.mmap(-1, size)\n    while True:\n"
           "        if buf[0] == 1:\n            break\n    return buf[1:]\n")
    assert [(f.line, f.code) for f in lint(src)] == [(5, "SCL501")]


def test_message_teaches_what_why_and_fix():
    f = lint((FIXTURES / "python" / "config_writer_bad.py").read_text())[0]
    assert f.decision_tree["id"] == "durability"
    assert "fsync" in f.fix and "rename" in f.decision_tree["answer"]


def test_noqa_suppresses_only_named_codes():
    base = "import os\ndef f(p):\n    with open('t.tmp', 'w') as fh:\n        fh.write('x')\n    os.replace('t.tmp', p)"
    assert lint(base + "  # noqa: SCL101\n") == []
    assert lint(base + "  # noqa\n") == []
    assert [f.code for f in lint(base + "  # noqa: SCL201\n")] == ["SCL101"]


def test_unused_noqa_is_opt_in():
    src = "x = 1  # noqa: SCL101\ny = 2  # noqa: E501\n"
    assert lint(src) == []
    settings = parse_table({"extend-select": ["SCL900"]}, "<test>", Path("."))
    found = lint(src, settings)
    assert [(f.line, f.code) for f in found] == [(1, "SCL900")]


@pytest.mark.parametrize("data,reason", [
    (b"def f(:\n", "syntax error"),
    (b"\xff\xfe\x00bad", "NUL"),
    (b"# -*- coding: bogus-codec -*-\nx = 1\n", "coding"),
    (b"x = '\xff\xff'\n", "cannot decode"),
])
def test_bad_input_is_a_one_line_reason(data, reason):
    with pytest.raises(BadInput) as exc:
        text = decode(data)
        lint(text + "\nimport os\nos.replace('a', 'b')\nopen('a', 'w')\n", gate=True)
    assert reason in str(exc.value) and "\n" not in str(exc.value)


def test_deep_nesting_is_reported_not_crashed():
    src = "import os\nopen('a','w')\nos.replace('a','b')\nx = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    with pytest.raises(BadInput, match="nested|syntax"):
        lint(src)


def test_empty_file_is_clean():
    assert lint("") == []


def _stdlib_candidates(limit=60):
    """Standard-library files that pass the text screen for the most modules: the hard cases."""
    from syscall_lint.python.prescreen import text_modules

    lib = Path(sysconfig.get_paths()["stdlib"])
    scored = []
    for path in sorted(lib.glob("*.py")) + sorted(lib.glob("*/*.py")):
        if "test" in path.parts or path.stat().st_size > 200_000:
            continue
        try:
            text = decode(path.read_bytes())
        except Exception:
            continue
        scored.append((len(text_modules(text)), path.stat().st_size, str(path), text))
    scored.sort(reverse=True)
    return scored[:limit]


def test_prescreen_is_conservative_on_fixtures_and_stdlib():
    """Gated and ungated analysis agree: the pre-screen never loses a finding."""
    cases = [(str(p), p.read_text()) for p in PY_FIXTURES] + [(c[2], c[3]) for c in _stdlib_candidates()]
    for name, text in cases:
        try:
            gated = [(f.line, f.code) for f in lint(text, gate=True)]
            full = [(f.line, f.code) for f in lint(text, gate=False)]
        except BadInput:
            continue
        assert gated == full, name


# --- hardening: deep, huge and non-regular inputs give a result or one line, never a traceback ----


SAVE = "import os\n\ndef save(p, t):\n    with open(p + '.tmp', 'w') as f:\n        f.write(t)\n    os.replace(p + '.tmp', p)\n"


def test_hundreds_of_nested_lambdas_outside_rule_code_pass_the_gate():
    # 600 nested lambdas once broke the gate's recursive visitor; the gate now walks with a stack
    src = SAVE + "f = " + "lambda: " * 600 + "1\n"
    assert [(f.line, f.code) for f in lint(src)] == [(6, "SCL101")]


def test_deep_code_inside_a_function_libcst_must_read_is_one_line_error():
    src = ("import os\n\ndef save(p, t):\n    with open(p + '.tmp', 'w') as f:\n        f.write(t)\n"
           "        g = " + "lambda: " * 600 + "1\n    os.replace(p + '.tmp', p)\n")
    with pytest.raises(BadInput) as exc:
        lint(src)
    assert str(exc.value) == analyzer.TOO_DEEP


def test_source_over_the_parse_bound_is_too_costly_before_parsing():
    src = SAVE + "x = [" + "1, " * (analyzer.MAX_PARSE_BYTES // 3 + 10) + "]\n"
    with pytest.raises(BadInput) as exc:
        lint(src)
    limit = analyzer._mib(analyzer.MAX_PARSE_BYTES)
    assert str(exc.value) == f"too costly to analyse (the source to parse is {analyzer._mib(len(src))}, the limit is {limit})"


def test_rule_code_over_the_libcst_bound_is_too_costly():
    one = SAVE.split("\n", 2)[2].replace("def save", "def save{}")
    src = "import os\n\n" + "".join(one.format(i) for i in range(analyzer.MAX_CST_BYTES // len(one) + 50))
    assert len(src) < analyzer.MAX_PARSE_BYTES
    with pytest.raises(BadInput) as exc:
        lint(src)
    limit = analyzer._mib(analyzer.MAX_CST_BYTES)
    assert str(exc.value).startswith("too costly to analyse (the code the rules must parse is ")
    assert str(exc.value).endswith(f", the limit is {limit})")


def test_huge_file_no_rule_can_match_is_not_parsed_and_passes():
    src = "DATA = [\n" + "    'harmless',\n" * 200_000 + "]\n"
    assert len(src) > analyzer.MAX_PARSE_BYTES
    assert lint(src) == []


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@needs_fifo
def test_fifo_named_or_found_in_a_folder_is_one_line_error(tmp_path):
    (tmp_path / "pkg").mkdir()
    os.mkfifo(tmp_path / "pkg" / "pipe.py")
    os.mkfifo(tmp_path / "named.py")
    (tmp_path / "pkg" / "ok.py").write_text(SAVE)
    proc, doc = run_json("check", "--no-cache", tmp_path / "pkg", tmp_path / "named.py")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert sorted((e["path"], e["message"]) for e in doc["errors"]) == [
        (str(tmp_path / "named.py"), "not a regular file (a FIFO)"),
        (str(tmp_path / "pkg" / "pipe.py"), "not a regular file (a FIFO)"),
    ]
    assert [(f["line"], f["code"]) for f in doc["findings"]] == [(6, "SCL101")]


@pytest.mark.skipif(not os.path.exists("/dev/zero") or not stat.S_ISCHR(os.stat("/dev/zero").st_mode),
                    reason="no /dev/zero character device")
def test_device_named_or_linked_as_py_is_one_line_error(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.py")
    proc, doc = run_json("check", "--no-cache", "/dev/zero", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert sorted((e["path"], e["message"]) for e in doc["errors"]) == [
        ("/dev/zero", "not a regular file (a character device)"),
        (str(tmp_path / "zero.py"), "not a regular file (a character device)"),
    ]


def test_strict_reports_syntax_errors_where_no_rule_could_match(tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n    return 1\n")
    (tmp_path / "fine.py").write_text("x = 1\n")
    relaxed = run_cli("check", "--no-cache", tmp_path)
    assert relaxed.returncode == 0 and relaxed.stderr == ""
    for args, cwd in ((["--strict", str(tmp_path)], None), ([str(tmp_path)], tmp_path)):
        if cwd is not None:
            (tmp_path / "pyproject.toml").write_text("[tool.syscall-lint]\nstrict = true\n")
        proc, doc = run_json("check", "--no-cache", *args, cwd=cwd)
        assert proc.returncode == 2
        assert [(e["path"].rsplit("/", 1)[-1], e["message"]) for e in doc["errors"]] == [
            ("broken.py", "syntax error at 1:7: invalid syntax")]


def test_a_worker_that_dies_costs_only_its_own_file(tmp_path, monkeypatch):
    """A worker killed (for memory, say) breaks the whole pool; the unfinished files are re-run one
    at a time, so only the culprit gets the error and every other file keeps its findings."""
    for i in range(12):
        (tmp_path / f"m{i:02d}.py").write_text(SAVE)
    (tmp_path / "m05.py").write_text(SAVE + "# the culprit\n")
    real_work = runner._work

    def dying_work(job):
        if job.path.endswith("m05.py"):
            os._exit(137)  # as the kernel's OOM killer or an allocation abort would end it
        return real_work(job)

    monkeypatch.setattr(runner, "_work", dying_work)
    from syscall_lint.config import Resolver

    report = runner.check([str(tmp_path)], Resolver(), jobs=2)
    assert [(e.path.rsplit("/", 1)[-1], e.message) for e in report.errors] == [("m05.py", runner.WORKER_DIED)]
    assert sorted((f.path.rsplit("/", 1)[-1], f.line, f.code) for f in report.findings) == [
        (f"m{i:02d}.py", 6, "SCL101") for i in range(12) if i != 5]


def test_scl101_names_the_last_write_not_the_rename():
    src = ("import os\n\ndef save(p, parts):\n    with open(p + '.tmp', 'w') as f:\n        f.write('a')\n"
           "        f.write('b')\n\n    os.replace(p + '.tmp', p)\n")
    [finding] = lint(src)
    assert (finding.line, finding.message.rsplit(" ", 1)[-1]) == (8, "6")
    [aliased] = lint((FIXTURES / "python" / "writer_alias.py").read_text())
    assert aliased.message.endswith("it was opened for writing on line 8 and not fsync'd since")


def _fuzz_kind():
    spec = importlib.util.spec_from_file_location("fuzz_kind_python", ROOT / "bench" / "fuzz" / "kinds" / "python.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("index", range(10))
def test_valid_unusual_syntax_from_the_fuzz_kind_analyses_without_error(index):
    kind = _fuzz_kind()
    src = "import os\n" + kind.UNUSUAL[index] + "\n" + SAVE
    try:
        compile(src, "unusual.py", "exec")
    except SyntaxError as exc:  # e.g. except* before 3.11: that interpreter's own verdict
        pytest.skip(f"valid only on a newer Python than this one: {exc.msg}")
    rename_line = src.count("\n")  # SAVE's os.replace is the last line
    assert (rename_line, "SCL101") in [(f.line, f.code) for f in lint(src)]


def test_fuzz_kind_is_deterministic_for_a_seed(tmp_path):
    import random

    kind = _fuzz_kind()
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for index in range(0, 40, 3):
        a = kind.generate(random.Random(f"s:{index}"), index, first)
        b = kind.generate(random.Random(f"s:{index}"), index, second)
        assert a.name == b.name
        if a.is_file() and not a.is_symlink():
            assert a.read_bytes() == b.read_bytes()


@needs_fifo
def test_fix_reports_each_bad_input_once_and_a_file_too_big_to_fix(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")
    filler = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(analyzer.MAX_CST_BYTES // 30))
    (tmp_path / "big.py").write_text(filler + SAVE)
    proc = run_cli("check", "--no-cache", "--fix", "--unsafe-fixes", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    prefix = "syscall-lint: error: "
    lines = sorted(line[len(prefix):].split(": ", 1) for line in proc.stderr.splitlines() if line.startswith(prefix))
    limit = analyzer._mib(analyzer.MAX_CST_BYTES)
    assert [path for path, _ in lines] == [str(tmp_path / "big.py"), str(tmp_path / "pipe.py")]
    assert lines[0][1].startswith("too costly to analyse (the file to fix is ") and lines[0][1].endswith(f"limit is {limit})")
    assert lines[1][1] == "not a regular file (a FIFO)"
    assert (tmp_path / "big.py").read_text() == filler + SAVE  # nothing half-applied


@pytest.mark.parametrize("index", range(2))
def test_newer_syntax_analyses_or_is_a_one_line_syntax_error(index):
    import sys

    src = "import os\n" + _fuzz_kind().NEWER[index]
    if sys.version_info >= (3, 12):  # `ast` knows it; libcst may or may not yet
        try:
            assert [f.code for f in lint(src)] == ["SCL201"]
        except BadInput as exc:
            assert str(exc).startswith("syntax error") and "\n" not in str(exc)
    else:
        with pytest.raises(BadInput, match=r"^syntax error at \d+:\d+: ") as exc:
            lint(src)
        assert "\n" not in str(exc.value)
