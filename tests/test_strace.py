"""The strace parser, the trace rules on real recordings, bad input, `record`, and the oracle."""

import gzip
import io
import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli, run_json
from syscall_lint.config import parse_table
from syscall_lint.strace import args as A
from syscall_lint.strace.parser import Call, Exit, Signal, Stats, parse
from syscall_lint.strace.runner import lint_text

TRACES = FIXTURES / "strace"
DEFAULTS = parse_table({}, "<test>", Path("."))


def events(text: str):
    stats = Stats()
    return list(parse(io.BufferedReader(io.BytesIO(text.encode())), stats)), stats


@pytest.mark.parametrize("line,pid,name,ret,ts,dur", [
    ('openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3', 0, "openat", 3, None, None),
    ('1234  write(1, "hi\\n", 3) = 3', 1234, "write", 3, None, None),
    ('[pid  1234] write(1, "hi\\n", 3) = 3', 1234, "write", 3, None, None),
    ('12:00:01 close(3) = 0', 0, "close", 0, 43201.0, None),
    ('1234  12:00:01.250000 close(3) = 0', 1234, "close", 0, 43201.25, None),
    ('1700000000.123456 close(3) = 0 <0.000012>', 0, "close", 0, 1700000000.123456, 0.000012),
    ('     0.000123 close(3) = 0', 0, "close", 0, 0.000123, None),
    ('1234       0.000123 close(3) = 0', 1234, "close", 0, 0.000123, None),
    ('openat(AT_FDCWD</home/u>, "x", O_RDONLY) = 3</home/u/x>', 0, "openat", 3, None, None),
    ('openat(AT_FDCWD, "nope", O_RDONLY) = -1 ENOENT (No such file or directory)', 0, "openat", -1, None, None),
    ('read(0, 0x7ffd, 10) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)', 0, "read", None, None, None),
    ('exit_group(0) = ?', 0, "exit_group", None, None, None),
    ('syscall_0x1c2(0x1, 0x2) = -1 ENOSYS (Function not implemented)', 0, "syscall_0x1c2", -1, None, None),
    ('mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000', 0, "mmap",
     0x7f0000000000, None, None),
    ('write(3<TCP:[127.0.0.1:80->127.0.0.1:5000]>, "\\x48\\x49", 2) = 2', 0, "write", 2, None, None),
    ('openat(0xffffff9c /* AT_FDCWD */, "x", 0 /* O_RDONLY */) = 3', 0, "openat", 3, None, None),
])
def test_parser_line_forms(line, pid, name, ret, ts, dur):
    (ev,), stats = events(line + "\n")
    assert isinstance(ev, Call) and stats.malformed == 0
    assert (ev.pid, ev.name, ev.ret) == (pid, name, ret)
    assert ev.ts == pytest.approx(ts) if ts is not None else ev.ts is None
    assert ev.duration == pytest.approx(dur) if dur is not None else ev.duration is None


def test_unfinished_and_resumed_merge_per_pid():
    text = ("100 read(3,  <unfinished ...>\n"
            "101 write(4, \"x\", 1) = 1\n"
            "100 <... read resumed>\"abc\", 10) = 3 <0.5>\n")
    evs, stats = events(text)
    assert stats.malformed == 0
    read = [e for e in evs if e.name == "read"][0]
    assert read.line == 1 and read.pid == 100 and read.ret == 3 and read.duration == 0.5
    assert A.split(read.args) == [b"3", b'"abc"', b"10"]


def test_signals_exits_and_superseded():
    evs, stats = events("5 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---\n5 +++ exited with 3 +++\n"
                        "6 +++ killed by SIGKILL +++\n7 +++ superseded by execve in pid 8 +++\n")
    assert stats.malformed == 0
    assert isinstance(evs[0], Signal) and evs[1].status == 3 and evs[2].signal == "SIGKILL"
    assert all(isinstance(e, Exit) for e in evs[1:])


def test_args_decoding():
    assert A.split(b'3, "a, b", [1, 2], {x=1, y="}"}') == [b"3", b'"a, b"', b"[1, 2]", b'{x=1, y="}"}']
    assert A.string(b'"\\x2f\\x74mp\\n"') == "/tmp\n"
    assert A.string(b'"abc"...') == "abc"
    assert A.fd(b"3</tmp/a\\>b>") == (3, "/tmp/a>b")
    assert A.fd(b"AT_FDCWD</home>") == (None, "/home")


# The recorded fixtures: the exact findings on each (code → count), and the line of each finding
# really is the syscall the rule names.
EXPECTED = {
    "sed_i.strace": {"SCL101": 1},
    "sed_i_y_T.strace": {"SCL101": 1},
    "cp.strace": {},
    "tar_x.strace": {},
    "git_commit.strace": {"SCL101": 2},
    "http_server.strace": {"SCL301": 1},
    "forking_server.strace": {"SCL302": 1},
    "sqlite_wal.strace": {},
    "line_per_syscall.strace": {"SCL201": 1},
    "line_per_syscall_nof.strace": {"SCL201": 1},
    "durable_replace.strace": {},
    "careless_replace.strace": {"SCL101": 1, "SCL102": 1},
    "careless_replace.strace.gz": {"SCL101": 1, "SCL102": 1},
    "file_to_socket.strace": {"SCL401": 1},
    "record_flags.strace": {"SCL101": 1, "SCL102": 1},
    "journal_fsync_each.strace": {"SCL103": 1},
    "relay_proxy.strace": {"SCL402": 1},
    # issue 11: each new rule's recording and its correct twin (record_more.sh)
    "dd_bs16.strace": {"SCL201": 1, "SCL203": 1},
    "dd_bs64k.strace": {},
    "shell_echo_loop.strace": {"SCL201": 1},
    "shell_printf_once.strace": {},
    "sed_i_twice.strace": {"SCL101": 2},
    "durable_replace_twice.strace": {},
    "fsync_each_file.strace": {"SCL104": 1},
    "syncfs_once.strace": {},
    "unbuffered_lines.strace": {"SCL203": 1},
    "buffered_lines.strace": {},
    "busy_poll.strace": {"SCL204": 1},
    "blocking_poll.strace": {},
    "lock_contention.strace": {},  # SCL601 is opt-in: see test_strace_rules.py
    "lock_sharded.strace": {},
    "mmap_per_request.strace": {},  # SCL701 is opt-in: see test_strace_rules.py
    "mmap_reused.strace": {},
    "select_high_fd.strace": {"SCL304": 1},
    "select_low_fd.strace": {},
    "poll_high_fd.strace": {},
    "direct_io_unaligned.strace": {"SCL105": 1},
    "direct_io_aligned.strace": {},
}
LINE_SYSCALL = {"SCL104": ("fsync",), "SCL203": ("read(", "pread64("), "SCL204": ("poll(", "select(", "epoll_wait("),
                "SCL601": ("futex(",), "SCL701": ("mmap(",), "SCL304": ("select(", "pselect6("),
                "SCL105": ("read(", "write(", "pread64(", "pwrite64("),
                "SCL402": ("recvfrom", "read(", "recv"), "SCL103": ("write",), "SCL202": ("clock_gettime", "gettimeofday", "time("), "SCL101": ("rename",), "SCL102": ("rename",), "SCL201": ("write",), "SCL301": ("clone",),
                "SCL302": ("clone", "fork"), "SCL401": ("read",)}


def test_every_fixture_has_an_expectation():
    shipped = {p.name for p in TRACES.iterdir() if p.is_file() and p.suffix in (".strace", ".gz")}
    assert shipped == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_fixture_findings(name):
    proc, doc = run_json("trace", TRACES / name)
    assert doc["errors"] == [], doc["errors"]
    counts = {}
    for f in doc["findings"]:
        counts[f["code"]] = counts.get(f["code"], 0) + 1
        assert f["source"] == "strace" and f["column"] is None
        opener = gzip.open if name.endswith(".gz") else open
        with opener(TRACES / name, "rt", errors="replace") as fh:
            text = fh.read().splitlines()[f["line"] - 1]
        assert any(s in text for s in LINE_SYSCALL[f["code"]]), (f["code"], text)
    assert counts == EXPECTED[name]
    assert proc.returncode == (1 if counts else 0)


def test_ff_set_by_prefix_and_by_files():
    _, by_prefix = run_json("trace", TRACES / "forking_ff" / "trace")
    files = sorted((TRACES / "forking_ff").iterdir())
    _, by_files = run_json("trace", *files)
    assert [f["code"] for f in by_prefix["findings"]] == ["SCL302"]
    assert by_prefix["findings"] == by_files["findings"]
    assert by_prefix["findings"][0]["evidence"]["connections"] == 3


def test_stdin_and_jsonl_forms():
    text = (TRACES / "careless_replace.strace").read_text()
    proc = run_cli("trace", "-", "--format", "json", input=text)
    assert [f["code"] for f in json.loads(proc.stdout)["findings"]] == ["SCL101", "SCL102"]
    # strace-parser's JSON lines: one object per syscall
    jsonl = "\n".join(json.dumps(o) for o in [
        {"type": "syscall", "name": "openat", "timestamp": 1.0, "result": "3",
         "args": [{"type": "other", "value": "AT_FDCWD"}, {"type": "other", "value": '"cfg.tmp"'},
                  {"type": "other", "value": "O_WRONLY|O_CREAT"}]},
        {"type": "syscall", "name": "write", "timestamp": 1.1, "result": "4",
         "args": [{"type": "other", "value": "3"}, {"type": "other", "value": '"abcd"'}, {"type": "other", "value": "4"}]},
        {"type": "syscall", "name": "close", "timestamp": 1.2, "result": "0", "args": [{"type": "other", "value": "3"}]},
        {"type": "syscall", "name": "rename", "timestamp": 1.3, "result": "0",
         "args": [{"type": "other", "value": '"cfg.tmp"'}, {"type": "other", "value": '"cfg"'}]},
    ]) + "\n"
    proc = run_cli("trace", "-", "--format", "json", input=jsonl)
    doc = json.loads(proc.stdout)
    assert [(f["code"], f["line"]) for f in doc["findings"]] == [("SCL101", 4)]


@pytest.mark.parametrize("content,expect_error", [
    (b"this is not a trace\nnor is this\n", "not an strace log"),
    (b"\x00\x01\x02\xff\xfe" * 100, "not an strace log"),
    (b"", "not an strace log"),
])
def test_garbage_files_are_errors(tmp_path, content, expect_error):
    bad = tmp_path / "bad.strace"
    bad.write_bytes(content)
    good = TRACES / "sed_i.strace"
    proc, doc = run_json("trace", bad, good)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [e["path"] for e in doc["errors"]] == [str(bad)] and expect_error in doc["errors"][0]["message"]
    assert [f["code"] for f in doc["findings"]] == ["SCL101"]  # the good file is still analysed


def test_truncated_interleaved_and_huge_lines_are_counted(tmp_path):
    lines = (TRACES / "careless_replace.strace").read_bytes().splitlines(keepends=True)
    mangled = lines[:50] + [b"garbage \xff\xfe line\n", b"x" * (3 << 20) + b"\n", b"\x00\x00\n"] + lines[50:]
    mangled[-1] = mangled[-1][:20]  # a truncated last line, no newline
    bad = tmp_path / "mangled.strace"
    bad.write_bytes(b"".join(mangled))
    proc, doc = run_json("trace", bad)
    assert proc.returncode == 2
    assert [f["code"] for f in doc["findings"]] == ["SCL101", "SCL102"]
    (err,) = doc["errors"]
    assert "malformed" in err["message"] and "line 51" in err["message"]


def test_truncated_gzip_is_an_error_not_a_traceback(tmp_path):
    data = (TRACES / "careless_replace.strace.gz").read_bytes()
    bad = tmp_path / "cut.strace.gz"
    bad.write_bytes(data[: len(data) // 2])
    proc, doc = run_json("trace", bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert doc["errors"] and doc["errors"][0]["path"] == str(bad)


def test_missing_file():
    proc, doc = run_json("trace", "no/such.strace")
    assert proc.returncode == 2 and doc["errors"][0]["message"] == "no such file or directory"


def _synthetic(n_blocks: int) -> bytes:
    block = (TRACES / "line_per_syscall.strace").read_bytes()
    return block * n_blocks


def test_memory_is_flat_as_the_trace_grows():
    from syscall_lint.strace.analyzer import TraceAnalyzer

    peaks = []
    for blocks in (8, 80):  # 1.2 MB and 12 MB: beyond the parser's read chunk (1 MiB) memory must not grow
        stream = io.BufferedReader(io.BytesIO(_synthetic(blocks)))
        tracemalloc.start()
        analyzer = TraceAnalyzer(DEFAULTS, "x")
        analyzer.feed(parse(stream, Stats()))
        analyzer.finish()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.5, peaks


def test_fsync_per_write_threshold_is_configurable():
    # 10 syncs each after one small write: under SCL103's default min-syncs (16), over a lowered one
    text = '9 openat(AT_FDCWD, "j.log", O_WRONLY|O_CREAT|O_APPEND, 0644) = 3\n' + "".join(
        '9 write(3, "rec\\n", 4) = 4\n9 fsync(3) = 0\n' for _ in range(10))
    assert lint_text(text, "t", DEFAULTS) == []
    at_ten = parse_table({"fsync-per-small-write": {"min-syncs": 10}}, "<t>", Path("."))
    (finding,) = lint_text(text, "t", at_ten)
    assert (finding.code, finding.line, finding.evidence["syncs"]) == ("SCL103", 2, 10)
    above = parse_table({"fsync-per-small-write": {"min-syncs": 11}}, "<t>", Path("."))
    assert lint_text(text, "t", above) == []


def test_request_response_writes_are_not_a_run():
    text = "".join('9 read(0, "q", 1) = 1\n9 write(1, "x", 1) = 1\n' for _ in range(200))
    assert lint_text(text, "t", DEFAULTS) == []


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (CI installs it)")
def test_record_end_to_end(tmp_path):
    log = tmp_path / "run.strace"
    prog = ("import os\nopen('c.tmp','w').write('x')\nos.replace('c.tmp','c')\nraise SystemExit(3)\n")
    proc = run_cli("record", "-o", log, "--format", "json", "--", sys.executable, "-c", prog, cwd=tmp_path)
    if "ptrace is not permitted" in proc.stderr:
        pytest.skip("ptrace not permitted in this sandbox")
    doc = json.loads(proc.stdout)
    assert [f["code"] for f in doc["findings"]] == ["SCL101"]
    assert doc["recorded"]["exit_status"] == 3 and log.is_file()
    assert "exited with status 3" in proc.stderr
    assert proc.returncode == 1


def test_record_without_command_is_a_usage_error():
    assert run_cli("record").returncode == 2


def _strace_parser_line(line: bytes):
    """Our view of a line, reduced to what strace-parser's grammar sees (a -ttt stamp, no pid)."""
    evs, stats = events(line.decode("utf-8", "replace") + "\n")
    return evs[0] if len(evs) == 1 and isinstance(evs[0], Call) and stats.malformed == 0 else None


def test_agrees_with_strace_parser_on_every_line_it_parses():
    lark = pytest.importorskip("strace_parser.parser")
    from strace_parser.json_transformer import to_json

    parser = lark.get_parser()
    compared = 0
    for path in sorted(TRACES.glob("*.strace")):
        for raw in path.read_bytes().splitlines()[:400]:
            ours = _strace_parser_line(raw)
            if ours is None or ours.duration is not None or b"<" in ours.result:
                continue
            text = f"1.5 {ours.name}({ours.args.decode('utf-8', 'replace')}) = {ours.result.decode()}\n"
            try:
                (theirs,) = to_json(parser.parse(text))
            except Exception:
                continue  # a line strace-parser cannot parse
            compared += 1
            assert theirs["name"] == ours.name
            assert str(theirs["result"]).strip() == ours.result.decode().strip()
            rendered = A.render_strace_parser_args(theirs["args"]).encode()
            assert [a.strip() for a in A.split(rendered)] == A.split(ours.args), text
    assert compared > 200
