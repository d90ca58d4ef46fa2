"""Recorded runs mapped to source lines, and joined with the static analysis (record --check).

Unit tests read small traces written here; the end-to-end tests record the real programs in
fixtures/joined/ (a C program built with -g, and Python programs) and compare with their marks:
`expect: CODE` is what the static analysis reports, `expect-run: CODE` what the run attributes to
the line (confirmed, or a static miss). For the C program, `expect:` marks are what the run maps.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli
from syscall_lint.findings import make
from syscall_lint.report import Report
from syscall_lint.sourcemap import attach, markers, native, scan

JOINED = FIXTURES / "joined"
_MARK = re.compile(r"expect(-run)?:\s*((?:SCL\d+[\s,]*)+)")


def marks(path: Path, run: bool):
    out = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for match in _MARK.finditer(line):
            if bool(match.group(1)) == run:
                out |= {(number, code) for code in re.findall(r"SCL\d+", match.group(2))}
    return out


# --- markers and frames -----------------------------------------------------------------------

def test_marker_round_trip_with_odd_paths():
    text = '/@scl1@/rename@/srv/a%7Cb/app.py:41|/srv/m%C3%A4in.py:9#/srv/a%7Cb/app.py:30'
    marker = markers.parse_marker(text)
    assert marker.event == "rename"
    assert marker.frames == [markers.SourceLine("/srv/a|b/app.py", 41), markers.SourceLine("/srv/mäin.py", 9)]
    assert marker.owner == markers.SourceLine("/srv/a|b/app.py", 30)
    for junk in ("/@scl1@/", "/@scl1@/nope@a.py:1", "/@scl1@/open@a.py:x", "/etc/passwd", "/@scl1@/open@:99999999999"):
        parsed = markers.parse_marker(junk)
        assert parsed is None or parsed.frames == []


def test_native_frame_lines():
    frame = markers.parse_frame(" > /tmp/app(save_state+0x72) [0x12bb]\n")
    assert frame == markers.NativeFrame("/tmp/app", "save_state", 0x72, 0x12BB)
    assert markers.parse_frame(" > /tmp/app() [0x10]") == markers.NativeFrame("/tmp/app", "", 0, 0x10)
    assert markers.parse_frame(" > unexpected_backtrace_error [0x0]").address == 0
    assert markers.parse_frame("not a frame") is None


TRACE = """\
100 1.0 openat(AT_FDCWD, "/@scl1@/open@/app/w.py:5|/app/main.py:2", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
100 1.1 openat(AT_FDCWD, "s.tmp", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3
101 1.15 openat(AT_FDCWD, "/@scl1@/rename@/app/other.py:7", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
100 1.2 write(3, "{}", 2) = 2
100 1.3 openat(AT_FDCWD, "/@scl1@/rename@/app/w.py:8|/app/main.py:2", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
100 1.4 rename("s.tmp", "s" <unfinished ...>
101 1.45 rename("x.tmp", "x") = 0
 > /usr/lib/libc.so.6(rename+0x7) [0x58a87]
 > /app/bin(other+0x10) [0x1010]
100 1.5 <... rename resumed>) = 0
 > /usr/lib/libc.so.6(rename+0x7) [0x58a87]
 > /app/bin(save+0x72) [0x12bb]
100 1.6 rename("a", "b") = 0
"""


def test_scan_pairs_each_call_with_its_own_threads_marker(tmp_path):
    log = tmp_path / "run.strace"
    log.write_text(TRACE)
    found = scan.trails(str(log), {2, 6, 7, 13})
    assert found[2].marker.frames[0] == markers.SourceLine("/app/w.py", 5)
    # the unfinished rename of pid 100 gets pid 100's marker, and the stack printed after its resumed half
    assert found[6].marker.frames[0] == markers.SourceLine("/app/w.py", 8)
    assert [f.function for f in found[6].native] == ["rename", "save"]
    # pid 101's rename gets pid 101's marker and its own stack
    assert found[7].marker.frames == [markers.SourceLine("/app/other.py", 7)]
    assert [f.function for f in found[7].native] == ["rename", "other"]
    # a marker is used once: the next rename of pid 100 has none
    assert found[13].marker is None and found[13].native == []


def test_scan_survives_garbage_and_huge_lines(tmp_path):
    log = tmp_path / "run.strace"
    log.write_bytes(b"\xff\xfe garbage\n" + b"x" * (3 << 20) + b"\n" + TRACE.encode() + b"100 1.7 rename(")
    found = scan.trails(str(log), {2 + 2, 6 + 2, 16})
    assert found[4].marker.frames[0].line == 5 and found[8].marker.frames[0].line == 8
    assert found[16].marker is None


def _finding(code, line, evidence, path="run.strace", source="strace"):
    return make(code, source, path, line=line, evidence=evidence, **{k: "x" for k in _fields(code, source)})


def _fields(code, source):
    from syscall_lint import catalog

    return set(re.findall(r"{(\w+)", catalog.load().rules[code].messages[source]))


def test_join_confirms_reports_misses_and_keeps_the_rest(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("\n" * 40)
    static = Report(sources={"python"})
    static.findings = [_finding("SCL101", 22, {}, path=str(app), source="python"),
                       _finding("SCL301", 31, {}, path=str(app), source="python"),
                       _finding("SCL102", 5, {}, path=str(app), source="python")]
    traced = Report(sources={"strace"})
    traced.findings = [
        _finding("SCL101", 900, {"source": {"via": "python", "path": str(app), "line": 22, "also": [], "frames": []}}),
        _finding("SCL301", 800, {"source": {"via": "python", "path": "/lib/socketserver.py", "line": 705,
                                            "also": [f"{app}:31"], "frames": []}}),
        _finding("SCL101", 950, {"source": {"via": "python", "path": str(app), "line": 37, "also": [], "frames": []}}),
        _finding("SCL201", 960, {}),
    ]
    merged = attach.join(static, traced)
    confirmed = {(f.code, f.line) for f in merged.findings if "confirmed" in f.evidence}
    assert confirmed == {("SCL101", 22), ("SCL301", 31)}
    misses = [f for f in merged.findings if f.evidence.get("static_miss")]
    assert [(f.code, f.line, f.evidence["trace"]["line"]) for f in misses] == [("SCL101", 37, 950)]
    assert {(f.code, f.line) for f in merged.findings} == {
        ("SCL101", 22), ("SCL301", 31), ("SCL102", 5), ("SCL101", 37), ("SCL201", 960)}
    assert merged.extra["joined"] == {"confirmed": 2, "static_misses": 1, "static_not_reached": 1}


def test_dwarf_lookup_of_a_line_table():
    table = native.LineTable([(0x1000, "a.c", 10, False), (0x1010, "a.c", 11, False), (0x1020, "a.c", 0, True)])
    assert table.lookup(0x100F) == ("a.c", 10)
    assert table.lookup(0x1010) == ("a.c", 11)
    assert table.lookup(0x1020) is None and table.lookup(0x0FFF) is None


def test_resolver_never_raises_on_bad_objects(tmp_path):
    bad = tmp_path / "bad.so"
    bad.write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\xff" * 200)
    resolver = native.Resolver(debug_root=str(tmp_path))
    for obj in (str(bad), str(tmp_path / "missing"), "/dev/zero", ""):
        assert resolver.resolve(markers.NativeFrame(obj, "f", 1, 0x10)) is None


# --- the Python start-up shim keeps programs as they were ---------------------------------------

SHIM_PROBE = r"""
import os, sys, threading, socket, json, tempfile
out = {"path": [p for p in sys.path if "pyshim" in p], "site": getattr(sys.modules.get("sitecustomize"), "MARK", None)}
d = tempfile.mkdtemp()
p = os.path.join(d, "f")
with open(p, "w") as fh:
    fh.write("x"); fh.flush(); os.fsync(fh.fileno())
os.replace(p, p + "2")
try:
    os.fsync(987654)
except OSError as exc:
    out["errno"] = exc.errno
box = []
t = threading.Thread(target=box.append, args=(1,)); t.start(); t.join()
out["thread"] = box
a, b = socket.socketpair(); a.close(); b.close()
out["fsync_name"] = os.fsync.__name__
print(json.dumps(out))
"""


def test_shim_leaves_behaviour_sys_path_and_an_existing_sitecustomize_alone(tmp_path):
    from syscall_lint.sourcemap.recording import shim_environment

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("MARK = 'theirs'\n")
    base = dict(os.environ, PYTHONPATH=str(theirs))
    plain = subprocess.run([sys.executable, "-c", SHIM_PROBE], env=base, capture_output=True, text=True, timeout=60)
    shimmed = subprocess.run([sys.executable, "-c", SHIM_PROBE], env=shim_environment(base), capture_output=True,
                             text=True, timeout=60)
    assert plain.returncode == 0 and shimmed.returncode == 0, shimmed.stderr
    assert json.loads(shimmed.stdout) == json.loads(plain.stdout)
    assert json.loads(plain.stdout)["site"] == "theirs" and json.loads(plain.stdout)["errno"] == 9


# --- end to end: real recordings ----------------------------------------------------------------

def _can_trace():
    if shutil.which("strace") is None:
        return "strace is not installed"
    probe = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return "ptrace is not permitted here"
    return None


needs_strace = pytest.mark.skipif(_can_trace() is not None, reason=str(_can_trace()))


def record_json(*args, cwd, env=None):
    """`record` with JSON output: the options go before `--`, the command after it."""
    split = args.index("--")
    proc = run_cli("record", "--format", "json", *args[:split], *args[split:], cwd=cwd, env=env)
    return proc, json.loads(proc.stdout)


def _mapped(doc):
    return {(Path(f["evidence"]["source"]["path"]).name, f["evidence"]["source"]["line"], f["code"])
            for f in doc["findings"] if "path" in f["evidence"].get("source", {})}


@pytest.mark.machine
@needs_strace
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_c_program_with_debug_info_maps_to_exact_lines_and_joins_with_audit(tmp_path):
    binary = tmp_path / "state_server"
    subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", str(binary), str(JOINED / "state_server.c")], check=True,
                   timeout=120)
    proc, doc = record_json("--", str(binary), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    expected = {("state_server.c", line, code) for line, code in marks(JOINED / "state_server.c", run=False)}
    assert _mapped(doc) == expected
    assert all(f["evidence"]["source"]["via"] == "dwarf" for f in doc["findings"] if "source" in f["evidence"])
    # joined with the binary's static audit: what the audit reports and the run reached is confirmed
    proc, doc = record_json("--check", str(binary), "--", str(binary), cwd=tmp_path)
    static = [f for f in doc["findings"] if f["source"] == "elf"]
    # the audit sees both (a write then a rename in save_state; accept then pthread_create in one loop),
    # and the run confirms both
    assert {f["code"] for f in static} == {"SCL101", "SCL301"}
    assert all("confirmed" in f["evidence"] for f in static)
    assert {f["evidence"]["confirmed"]["source_line"].rsplit("/", 1)[-1] for f in static} == {
        f"state_server.c:{line}" for line, _ in marks(JOINED / "state_server.c", run=False)}


@pytest.mark.machine
@needs_strace
def test_c_program_without_debug_info_names_the_function(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    binary = tmp_path / "state_server"
    subprocess.run(["gcc", "-O0", "-pthread", "-o", str(binary), str(JOINED / "state_server.c")], check=True, timeout=120)
    _, doc = record_json("--", str(binary), cwd=tmp_path)
    sources = {f["code"]: f["evidence"]["source"] for f in doc["findings"] if "source" in f["evidence"]}
    assert sources["SCL101"]["via"] == "symbols" and sources["SCL101"]["frames"][0].startswith("state_server(save_state+0x")
    assert "no debug info" in sources["SCL101"]["note"]


@pytest.mark.machine
@needs_strace
@pytest.mark.parametrize("program", ["state_server.py", "split_writer.py"])
def test_python_program_maps_to_lines_and_joins_with_check(tmp_path, program):
    source = JOINED / program
    cmd = [sys.executable, str(source)] + ([str(tmp_path)] if program == "split_writer.py" else [])
    env = {"STATE_DIR": str(tmp_path)}
    proc, doc = record_json("--", *cmd, cwd=tmp_path, env=env)
    run_marks = {(program, line, code) for line, code in marks(source, run=True)}
    assert _mapped(doc) >= run_marks
    proc, doc = record_json("--check", str(source), "--", *cmd, cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    # what the static rules report on this file (its `expect:` marks say what they must at least find)
    static = {(f["line"], f["code"]) for f in json.loads(run_cli("check", "--no-cache", "--format", "json",
                                                                   source).stdout)["findings"]}
    run_lines = {(line, code) for _, line, code in run_marks}
    assert marks(source, run=False) <= static <= marks(source, run=False) | run_lines
    confirmed = {(f["line"], f["code"]) for f in doc["findings"] if f["source"] == "python" and "confirmed" in f["evidence"]}
    misses = {(f["line"], f["code"]) for f in doc["findings"] if f["evidence"].get("static_miss")}
    # the join: what both saw is confirmed, what only the run saw is a static miss at its line
    assert confirmed == static & run_lines
    assert misses == run_lines - static
    assert doc["joined"]["confirmed"] == len(confirmed) and doc["joined"]["static_misses"] == len(misses)
    text = run_cli("record", "--check", str(source), "--", *cmd, cwd=tmp_path, env=env)
    marker = "[confirmed by the recorded run]" if confirmed else "[seen in the recorded run; the static rules missed it]"
    assert marker in text.stdout


@pytest.mark.machine
@needs_strace
def test_editor_shows_what_the_recorded_run_saw(tmp_path):
    """After `record --check`, the language server shows the run's findings on those lines: confirmed
    static findings say so, and what the static rules missed appears as a diagnostic of its own."""
    pytest.importorskip("pygls")
    from test_lsp import LspClient

    project = tmp_path / "proj"
    project.mkdir()
    program = project / "split_writer.py"
    shutil.copy(JOINED / "split_writer.py", program)
    proc = run_cli("record", "--check", str(program), "--", sys.executable, str(program), str(project), cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert (project / ".syscall_lint_cache" / "last-run.json").is_file()
    client = LspClient()
    try:
        client.request("initialize", {"processId": os.getpid(), "rootUri": project.as_uri(), "capabilities": {}})
        client.notify("initialized", {})
        diags = client.open(program.as_uri(), program.read_text())["diagnostics"]
        seen = [(d["code"], d["range"]["start"]["line"] + 1) for d in diags if "recorded run" in d["message"]]
        assert seen == [(code, line) for line, code in sorted(marks(JOINED / "split_writer.py", run=True))]
        client.shutdown_and_exit()
    finally:
        client.close()
