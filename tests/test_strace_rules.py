"""Issue 11: the tracker and its observers, the trace semantics users see, the new rules, and `record`.

The recordings (fixtures/strace/, made by record_more.sh) are checked finding by finding in
test_strace.py's EXPECTED; here are the properties behind those counts.
"""

import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, install_extra_rule, run_cli, run_json
from syscall_lint import catalog
from syscall_lint.config import Resolver, parse_table
from syscall_lint.strace.analyzer import TraceAnalyzer
from syscall_lint.strace.observer import observer_classes, trace_syscalls
from syscall_lint.strace.parser import Call, Stats, parse
from syscall_lint.strace.record import record, trace_flags
from syscall_lint.strace.runner import lint_text
from syscall_lint.strace.tracker import TRACKED

TRACES = FIXTURES / "strace"
DEFAULTS = parse_table({}, "<test>", Path("."))


def settings(**tables):
    return parse_table(tables, "<test>", Path("."))


def codes(findings):
    return [f.code for f in findings]


# the architecture ----------------------------------------------------------------
def test_every_trace_rule_in_the_catalog_has_one_observer_and_back():
    trace_codes = {code for code, rule in catalog.load().rules.items() if "strace" in rule.sources}
    assert {cls.CODE for cls in observer_classes()} == trace_codes


def test_the_parser_skips_what_no_enabled_rule_needs():
    everything = TraceAnalyzer(settings(select=["SCL"]), "t").wanted
    only_renames = TraceAnalyzer(settings(select=["SCL101"]), "t").wanted
    assert {b"rename", b"write", b"openat", b"close", b"clone"} <= only_renames
    assert b"poll" not in only_renames and b"read" not in only_renames and b"mmap" not in only_renames
    assert {b"poll", b"read", b"clock_gettime"} <= everything
    assert b"futex" not in everything and b"mmap" not in everything  # SCL601 and SCL701 are opt-in
    assert b"futex" in TraceAnalyzer(settings(select=["SCL601"]), "t").wanted
    assert b"mmap" in TraceAnalyzer(settings(select=["SCL701"]), "t").wanted


def test_record_traces_what_the_rules_declare():
    flags = trace_flags()
    traced = set(flags[flags.index("-e") + 1].removeprefix("trace=").split(","))
    assert all(name.startswith("?") for name in traced)  # a syscall this arch lacks is skipped, not refused
    expected = set(TRACKED)
    for cls in observer_classes():
        expected |= cls.syscalls()
    assert {name[1:] for name in traced} == expected == set(trace_syscalls())
    assert {"futex", "mmap", "munmap", "poll", "rename", "fsync", "clock_gettime"} <= expected


NEW_RULE_TOML = '''
code = "SCL299"
name = "getrandom-per-call"
summary = "random bytes read with one getrandom syscall each time"
severity = "info"
sources = ["strace"]
tree = "syscall-tax"
branch = "more than ~10K small syscalls/s per thread → many small writes/sends → batch"
fix = "read random bytes in larger blocks"

[message]
strace = "{who} called getrandom {count} times"

[options]
min-calls = { default = 3, type = "int", help = "fewest calls reported" }

[doc]
what = "x"
why = "x"
example = "x"
use_instead = "x"
references = ["x"]
'''

NEW_RULE_MODULE = '''
from syscall_lint.strace.observer import Observer


class GetrandomPerCall(Observer):
    CODE = "SCL299"
    SYSCALLS = frozenset({"getrandom"})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.calls = {}

    def on_call(self, call, task):
        first, count = self.calls.get(task.tgid, (call.line, 0))
        self.calls[task.tgid] = (first, count + 1)

    def finish(self):
        for pid, (first, count) in self.calls.items():
            if count >= self.options["min-calls"]:
                self.ctx.report(self.CODE, first, pid, "getrandom", {"count": count}, count=count)
'''


@pytest.fixture
def new_rule(tmp_path, monkeypatch):
    """A new trace rule made the documented way: one TOML file and one observer module, nothing else."""
    from syscall_lint.strace import observers

    install_extra_rule(tmp_path, monkeypatch, "SCL299.toml", NEW_RULE_TOML, observers,
                       "scl299_getrandom_per_call.py", NEW_RULE_MODULE)
    yield
    sys.modules.pop("syscall_lint.strace.observers.scl299_getrandom_per_call", None)


def test_a_new_trace_rule_is_one_toml_and_one_module(new_rule):
    assert "SCL299" in {cls.CODE for cls in observer_classes()}
    assert "?getrandom" in trace_flags()[-1].split("=", 1)[1].split(",")
    trace = "".join(f'7 getrandom("\\x01\\x02", 2, 0) = 2\n' for _ in range(4))
    found = lint_text(trace, "t", parse_table({"select": ["SCL299"]}, "<t>", Path(".")))
    assert [(f.code, f.line, f.message) for f in found] == [("SCL299", 1, "pid 7 called getrandom 4 times")]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (CI installs it)")
def test_record_traces_a_new_rules_syscalls_without_further_edits(new_rule, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prog = "import os\nfor _ in range(5):\n    os.getrandom(4)\n"
    report, status = record([sys.executable, "-c", prog], str(tmp_path / "run.strace"), Resolver(None, {"select": ["SCL299"]}))
    if any("ptrace is not permitted" in e.message for e in report.errors):
        pytest.skip("ptrace not permitted in this sandbox")
    assert report.errors == [] and status == 0
    (finding,) = report.findings
    assert finding.code == "SCL299" and finding.evidence["count"] >= 5


# semantics ------------------------------------------------------------------------
def _writes(n, fd=3, size=16):
    return "".join(f'9 write({fd}, "{"x" * size}", {size}) = {size}\n' for _ in range(n))


OPEN_OUT = '9 openat(AT_FDCWD, "out", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3\n'
OPEN_IN = '9 openat(AT_FDCWD, "in", O_RDONLY) = 4\n'


def test_reading_a_regular_file_does_not_break_a_run_of_small_writes():
    trace = OPEN_OUT + OPEN_IN + "".join('9 read(4, "0123456789abcdef", 16) = 16\n' + _writes(1) for _ in range(40))
    found = lint_text(trace, "t", DEFAULTS)
    assert [(f.code, f.evidence["count"], f.evidence["runs"]) for f in found if f.code == "SCL201"] == [("SCL201", 40, 1)]


@pytest.mark.parametrize("peer", ['9 read(0, "q", 1) = 1\n', '9 recvfrom(5, "q", 1, 0, NULL, NULL) = 1\n',
                                  '9 poll([{fd=5, events=POLLIN}], 1, -1) = 1 ([{fd=5, revents=POLLIN}])\n',
                                  '9 epoll_wait(6, [{events=EPOLLIN, data={u32=5, u64=5}}], 8, -1) = 1\n',
                                  '9 read(7</dev/pts/1>, "q", 1) = 1\n', '9 read(8<pipe:[123]>, "q", 1) = 1\n'])
def test_waiting_on_a_peer_breaks_the_run(peer):
    trace = OPEN_OUT + "9 socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 5\n" + "".join(peer + _writes(1) for _ in range(60))
    assert codes(lint_text(trace, "t", DEFAULTS)) == []


def test_short_bursts_add_up_and_the_thresholds_are_options_stated_in_the_message():
    # 10 bursts of 4 writes between waits on a peer: no run reaches 64, together they are 40
    trace = OPEN_OUT + "".join(_writes(4) + '9 read(0, "q", 1) = 1\n' for _ in range(10))
    (finding,) = lint_text(trace, "t", DEFAULTS)
    assert finding.evidence["count"] == 40 and finding.evidence["runs"] == 10
    assert "40 small write calls" in finding.message and "in 10 run(s)" in finding.message
    assert "each at most 512 B, mean 16 B" in finding.message
    assert lint_text(trace, "t", settings(**{"unbatched-writes": {"min-run": 5}})) == []
    assert lint_text(trace, "t", settings(**{"unbatched-writes": {"min-calls": 41}})) == []
    assert lint_text(trace, "t", settings(**{"unbatched-writes": {"max-size": 15}})) == []


def test_one_problem_in_two_processes_is_two_findings_and_repeats_are_counted():
    one = ('{pid} openat(AT_FDCWD, "c.tmp", O_WRONLY|O_CREAT, 0644) = 3\n{pid} write(3, "x", 1) = 1\n'
           '{pid} close(3) = 0\n{pid} rename("c.tmp", "c") = 0\n')
    trace = one.format(pid=10) + one.format(pid=10) + one.format(pid=11)
    found = lint_text(trace, "t", DEFAULTS)
    assert [(f.code, f.line, f.evidence.get("occurrences")) for f in found] == [("SCL101", 4, 2), ("SCL101", 12, None)]
    assert "(seen 2 times)" in found[0].message and "pid 10" in found[0].message and "pid 11" in found[1].message


def test_the_same_tool_run_twice_gives_one_finding_per_run():
    _, doc = run_json("trace", TRACES / "sed_i_twice.strace")
    pids = [f["evidence"]["pid"] for f in doc["findings"]]
    assert [f["code"] for f in doc["findings"]] == ["SCL101", "SCL101"] and len(set(pids)) == 2


# the new rules: real recordings (their twins are in EXPECTED) ----------------------
def test_lock_contention_is_opt_in_and_reports_time_blocked_per_thread():
    proc, doc = run_json("trace", "--select", "SCL601", TRACES / "lock_contention.strace", TRACES / "lock_sharded.strace")
    (finding,) = doc["findings"]
    assert finding["path"].endswith("lock_contention.strace") and finding["code"] == "SCL601"
    ev = finding["evidence"]
    assert ev["threads"] == 4 and ev["waits"] >= 100 and ev["blocked_seconds"] > 0
    assert len(ev["blocked_per_thread"]) == 4 and "ms blocked in all" in finding["message"]
    assert catalog.load().rules["SCL601"].default is False


def test_mmap_churn_is_opt_in_and_its_twin_is_clean():
    _, doc = run_json("trace", "--select", "SCL701", TRACES / "mmap_per_request.strace", TRACES / "mmap_reused.strace")
    (finding,) = doc["findings"]
    assert finding["path"].endswith("mmap_per_request.strace") and finding["evidence"]["pairs"] >= 100
    assert catalog.load().rules["SCL701"].default is False


@pytest.mark.parametrize("name,code,key,value", [
    ("dd_bs16.strace", "SCL203", "largest_request", 16),
    ("unbuffered_lines.strace", "SCL203", "largest_request", 1),
    ("fsync_each_file.strace", "SCL104", "files", 40),
    ("mmap_per_request.strace", "SCL701", "size", 1 << 20),
])
def test_new_rules_report_the_numbers_seen(name, code, key, value):
    _, doc = run_json("trace", "--extend-select", code, TRACES / name)
    (finding,) = [f for f in doc["findings"] if f["code"] == code]
    assert finding["evidence"][key] == value


def test_busy_polling_counts_empty_polls_in_a_row():
    _, doc = run_json("trace", TRACES / "busy_poll.strace")
    (finding,) = doc["findings"]
    assert finding["code"] == "SCL204" and finding["evidence"]["syscall"] == "poll"
    assert finding["evidence"]["empty_polls"] >= catalog.load().rules["SCL204"].options["min-calls"]["default"]


def test_select_on_a_high_fd_is_reported_with_its_numbers_and_its_twins_are_clean():
    _, doc = run_json("trace", TRACES / "select_high_fd.strace", TRACES / "select_low_fd.strace",
                      TRACES / "poll_high_fd.strace")
    (finding,) = doc["findings"]
    assert finding["path"].endswith("select_high_fd.strace") and finding["code"] == "SCL304"
    ev = finding["evidence"]
    assert (ev["syscall"], ev["max_nfds"], ev["max_watched"], ev["past_fd_setsize"]) == ("pselect6", 901, 1, False)
    assert ev["calls"] >= 200 and f"{ev['calls']} times with nfds up to 901" in finding["message"]


SELECT_LINE = "9 pselect6({nfds}, [{fds}], NULL, NULL, {{tv_sec=1, tv_nsec=0}}, NULL) = 1 (in [3])\n"


@pytest.mark.parametrize("nfds,fds,expected", [
    (901, "900<pipe:[12]>", [(901, 1)]),  # -y notes are not counted as fds
    (1200, "3 700 1199<TCP:[127.0.0.1:80->127.0.0.1:5000]>", [(1200, 3)]),  # `->` inside a note
    (511, "510", []),  # below min-nfds
])
def test_select_sizes_come_from_nfds_and_the_sets(nfds, fds, expected):
    trace = SELECT_LINE.format(nfds=nfds, fds=fds) * 3
    found = lint_text(trace, "t", settings(**{"select-high-fds": {"min-calls": 3}}))
    assert [(f.evidence["max_nfds"], f.evidence["max_watched"]) for f in found] == expected
    if nfds > 1024:
        assert found[0].evidence["past_fd_setsize"] and "past FD_SETSIZE" in found[0].message
    assert lint_text(trace, "t", settings(**{"select-high-fds": {"min-calls": 4}})) == []


def test_unaligned_direct_io_is_reported_and_the_aligned_twin_is_clean():
    _, doc = run_json("trace", TRACES / "direct_io_unaligned.strace", TRACES / "direct_io_aligned.strace")
    (finding,) = doc["findings"]
    assert finding["path"].endswith("direct_io_unaligned.strace") and finding["code"] == "SCL105"
    ev = finding["evidence"]
    assert (ev["count"], ev["refused"], ev["path"]) == (16, 16, "/tmp/work/direct.dat")
    assert ev["example"] == "pwrite64 of length 100 refused with EINVAL"


DIRECT_OPEN = '9 openat(AT_FDCWD, "d", O_RDWR|O_DIRECT) = 3\n'


@pytest.mark.parametrize("calls,expected", [
    (['9 pread64(3, "x"..., 4096, 100) = 4096\n'], [(1, 0, "pread64 of offset 100")]),  # accepted, unaligned
    (['9 write(3, "x"..., 1000) = 1000\n', '9 write(3, "x"..., 512) = 512\n'], [(1, 0, "write of length 1,000")]),
    (['9 read(3, ""..., 4096) = -1 EINVAL (Invalid argument)\n'],  # aligned numbers, so the buffer was not
     [(1, 1, "read of length 4,096 refused with EINVAL")]),
    (['9 pwrite64(3, "x"..., 8192, 4096) = 8192\n', '9 read(3, "x"..., 4096) = 4096\n'], []),
])
def test_direct_io_alignment_is_judged_from_lengths_offsets_and_einval(calls, expected):
    found = lint_text(DIRECT_OPEN + "".join(calls), "t", DEFAULTS)
    assert [(f.evidence["count"], f.evidence["refused"], f.evidence["example"]) for f in found] == expected


def test_o_directory_is_not_o_direct():
    trace = ('9 openat(AT_FDCWD, "d", O_RDONLY|O_DIRECTORY) = 3\n'
             '9 read(3, "x", 100) = -1 EINVAL (Invalid argument)\n')
    assert lint_text(trace, "t", DEFAULTS) == []


# record polish ----------------------------------------------------------------------
@pytest.mark.parametrize("cmd,why", [("no-such-command-xyz", "command not found"),
                                     ("{tmp}/script.sh", "not executable"),
                                     ("./missing/tool", "no such file or directory"),
                                     # found and executable, but its interpreter is missing: strace's exec fails
                                     ("{tmp}/orphan.sh", "exec: No such file or directory")])
def test_record_of_a_command_that_cannot_start_is_one_error_line(tmp_path, cmd, why):
    if shutil.which("strace") is None:
        pytest.skip("strace not installed")
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    orphan = tmp_path / "orphan.sh"
    orphan.write_text("#!/no/such/interpreter\necho hi\n")
    orphan.chmod(0o755)
    proc = run_cli("record", "--", cmd.format(tmp=tmp_path), cwd=tmp_path)
    if "ptrace is not permitted" in proc.stderr:
        pytest.skip("ptrace not permitted in this sandbox")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("syscall-lint: error:")]
    assert why in line and "exited with status" not in proc.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (CI installs it)")
def test_record_deletes_its_temporary_log_and_echoes_the_command_quoted(tmp_path):
    logs = tmp_path / "tmp"
    logs.mkdir()
    proc = run_cli("record", "--format", "json", "--", sys.executable, "-c", "x = 'a b'", cwd=tmp_path,
                   env={"TMPDIR": str(logs)})
    if "ptrace is not permitted" in proc.stderr:
        pytest.skip("ptrace not permitted in this sandbox")
    assert proc.returncode == 0, proc.stderr
    assert list(logs.iterdir()) == []
    assert f"recorded {sys.executable} -c 'x = '\"'\"'a b'\"'\"''" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["recorded"]["kept"] is False and doc["recorded"]["trace"] is None


# the parser's fast split ------------------------------------------------------------
# A whole-line regex, the parser's old way (and the bench's bare loop): the reference for the split.
WHOLE_LINE = re.compile(rb" *(?:\[pid +(\d{1,10})\] |(\d{1,10}) +)?(?:(\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) +)?"
                        rb"([a-z_][a-z0-9_]*)\((.*)\) += (.*?)(?: <(\d+\.\d+)>)?$")


def test_the_fast_split_agrees_with_a_whole_line_regex_on_every_recorded_line():
    compared = 0
    for path in sorted(TRACES.glob("*.strace")):
        lines = path.read_bytes().splitlines()
        calls = {ev.line: ev for ev in events_of(b"\n".join(lines) + b"\n") if isinstance(ev, Call)}
        for lineno, raw in enumerate(lines, 1):
            m = WHOLE_LINE.match(raw)
            if m is None or raw.endswith(b"<unfinished ...>") or b"<... " in raw:
                continue
            pid_a, pid_b, ts, name, args, result, dur = m.groups()
            ev = calls[lineno]
            assert (ev.pid, ev.name, ev.args, ev.result) == (int(pid_a or pid_b or 0), name.decode(), args,
                                                             result.rstrip()), (path.name, lineno)
            assert ev.duration == (float(dur) if dur else None)
            compared += 1
    assert compared > 10_000


def events_of(data: bytes) -> list:
    return list(parse(io.BufferedReader(io.BytesIO(data)), Stats()))
