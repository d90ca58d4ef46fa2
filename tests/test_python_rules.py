"""The Python analyser on the shipped fixtures: every planted problem, nothing else."""

import os
import sysconfig
from pathlib import Path

import pytest

from conftest import FIXTURES, expected_marks
from syscall_lint.config import parse_table
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
