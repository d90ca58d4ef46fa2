"""Bad and hostile strace input: one error line per input, the rest still analysed, memory bounded.

The inputs here are the shapes fuzzing found (issue 8); tests/data/regressions/strace*/ hold the
files themselves, replayed by tests/test_regressions.py.
"""

import gzip
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, run_json
from syscall_lint.strace import args as A

TRACES = FIXTURES / "strace"
CARELESS = (TRACES / "careless_replace.strace").read_bytes()


def test_escapes_that_are_not_escapes_are_kept_as_written():
    assert A.unescape(b"a\\x") == b"ax"
    assert A.unescape(b"a\\x4") == b"ax4"
    assert A.unescape(b"\\8\\9") == b"89"
    assert A.unescape(b"\\x41\\101\\n") == b"AA\n"


def test_numbers_longer_than_any_register_are_not_numbers():
    assert A.fd(b"9" * 5000) == (None, None)
    assert A.fd(b"3</tmp/x>") == (3, "/tmp/x")


@pytest.mark.parametrize("bad_line", [
    b'9 write(1, "x", 1) = ' + b"9" * 5000,
    b"9 close(" + b"7" * 5000 + b") = 0",
    b"[pid " + b"4" * 5000 + b"] close(3) = 0",
    b'9 openat(AT_FDCWD, "a\\x", O_RDONLY) = 3',
    b'9 rename("a\\8", "b\\x4") = 0',
    b"9 openat() = 3",
    b"9 rename() = 0",
    b"9 <... rename resumed>) = 0",
])
def test_a_mangled_line_does_not_stop_the_analysis(tmp_path, bad_line):
    lines = CARELESS.splitlines(keepends=True)
    trace = tmp_path / "mangled.strace"
    trace.write_bytes(b"".join(lines[:10]) + bad_line + b"\n" + b"".join(lines[10:]))
    proc, doc = run_json("trace", trace)
    assert "Traceback" not in proc.stderr
    assert [f["code"] for f in doc["findings"]] == ["SCL101", "SCL102"]
    assert len(doc["errors"]) <= 1


def test_a_path_that_is_not_utf8_gives_valid_json(tmp_path):
    trace = tmp_path / "latin1.strace"
    trace.write_bytes(b"".join(b'7 write(3</tmp/caf\\xe9>, "0123456789", 10) = 10\n' for _ in range(80)))
    proc, doc = run_json("trace", trace)  # run_json decodes strictly: invalid UTF-8 would raise here
    (finding,) = doc["findings"]
    assert finding["code"] == "SCL201" and "/tmp/caf\\xe9" in finding["message"]


def _gzip_of_careless() -> bytes:
    return gzip.compress(CARELESS, mtime=0)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_gzip_is_one_error_line(tmp_path, damage):
    data = bytearray(_gzip_of_careless())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2:]
    bad = tmp_path / "bad.strace.gz"
    bad.write_bytes(bytes(data))
    proc, doc = run_json("trace", bad, TRACES / "sed_i.strace")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (error,) = doc["errors"]
    assert error["path"] == str(bad) and "cannot read" in error["message"] and "gzip" in error["message"]
    assert "SCL101" in {f["code"] for f in doc["findings"] if f["path"].endswith("sed_i.strace")}


GOOD_JSONL = [
    {"type": "syscall", "pid": 5, "name": "openat", "timestamp": 1.0, "result": "3",
     "args": [{"type": "other", "value": "AT_FDCWD"}, {"type": "other", "value": '"cfg.tmp"'},
              {"type": "other", "value": "O_WRONLY|O_CREAT"}]},
    {"type": "syscall", "pid": 5, "name": "write", "timestamp": 1.1, "result": "4",
     "args": [{"type": "other", "value": "3"}, {"type": "other", "value": '"abcd"'}, {"type": "other", "value": "4"}]},
    {"type": "syscall", "pid": 5, "name": "close", "timestamp": 1.2, "result": "0", "args": [{"type": "other", "value": "3"}]},
    {"type": "syscall", "pid": 5, "name": "rename", "timestamp": 1.3, "result": "0",
     "args": [{"type": "other", "value": '"cfg.tmp"'}, {"type": "other", "value": '"cfg"'}]},
]
BAD_JSONL = [
    {"type": "syscall", "pid": "x", "name": "close", "result": "0", "args": []},
    {"type": "syscall", "pid": [1], "name": "close", "result": "0", "args": []},
    {"type": "syscall", "pid": 1, "name": ["close"], "result": "0", "args": []},
    {"type": "syscall", "pid": 1, "name": {"a": 1}, "result": "0", "args": []},
    {"type": "syscall", "pid": 1, "name": "close", "timestamp": "1.5", "result": "0", "args": []},
    {"type": "alert", "pid": "x", "result": "z"},
]


def test_jsonl_fields_of_the_wrong_type_are_malformed_lines(tmp_path):
    lines = [json.dumps(o) for o in GOOD_JSONL[:2]] + [json.dumps(o) for o in BAD_JSONL]
    lines += ['{"type": "syscall", "name": "write", "result": "1", "args": ' + "[" * 3000 + "]" * 3000 + "}"]
    lines += [json.dumps(o) for o in GOOD_JSONL[2:]]
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    proc, doc = run_json("trace", trace)
    assert "Traceback" not in proc.stderr and proc.returncode == 2
    assert [(f["code"], f["line"]) for f in doc["findings"]] == [("SCL101", len(lines))]
    (error,) = doc["errors"]
    assert error["message"].startswith(f"{len(BAD_JSONL) + 1} malformed line(s) skipped")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.strace"
    os.mkfifo(fifo)
    proc, doc = run_json("trace", fifo, TRACES / "sed_i.strace")  # run_cli's timeout catches a hang
    assert proc.returncode == 2
    assert doc["errors"] == [{"path": str(fifo), "message": "not a regular file (a FIFO)"}]
    assert [f["code"] for f in doc["findings"]] == ["SCL101"]


@pytest.mark.skipif(not os.path.exists("/dev/zero") or not stat.S_ISCHR(os.stat("/dev/zero").st_mode),
                    reason="no /dev/zero character device here")
def test_a_device_is_refused_even_through_a_symlink(tmp_path):
    link = tmp_path / "zero.strace"
    link.symlink_to("/dev/zero")
    proc, doc = run_json("trace", link)
    assert proc.returncode == 2
    assert doc["errors"] == [{"path": str(link), "message": "not a regular file (a character device)"}]


def _peak_rss_mib(cmd, feed) -> tuple:
    """Run cmd with `feed()` chunks on stdin; (exit status, stdout, stderr, peak RSS in MiB) via wait4."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    out, err = [], []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((proc.stdout, out), (proc.stderr, err))]
    for t in readers:
        t.start()
    try:
        for chunk in feed():
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    for t in readers:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in readers), "the linter did not finish"
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), out[0], err[0], usage.ru_maxrss / 1024


def _hostile_stream(n=400_000):
    """n pids each left in an unfinished call, then n files opened, written, never closed.
    Unbounded, the parser and the fd tables hold both (well over 300 MiB at 400,000)."""
    for start in range(0, n, 10_000):
        yield b"".join(b"%d read(3,  <unfinished ...>\n" % (p + 100) for p in range(start, start + 10_000))
    for start in range(0, n, 10_000):
        yield b"".join(b'7 openat(AT_FDCWD, "/tmp/f%d", O_WRONLY|O_CREAT, 0644) = %d\n7 write(%d, "x", 1) = 1\n'
                       % (i, i + 3, i + 3) for i in range(start, start + 10_000))


def test_hostile_streams_stay_bounded_and_say_what_was_dropped():
    code, out, err, peak = _peak_rss_mib([sys.executable, "-m", "syscall_lint", "trace", "--format", "json", "-"],
                                         _hostile_stream)
    assert code in (0, 1), err
    doc = json.loads(out)
    (trace,) = doc["traces"]
    assert trace["syscalls"] == 800_000  # the unfinished halves never resume: only opens and writes complete
    notes = " ".join(trace["notes"])
    assert "forgot the first half of" in notes and "fd(s)" in notes
    assert b"syscall-lint: warning: -: " in err
    # bounded: twice the hostile input does not make the peak grow with it (flat, not a timing)
    _, _, _, half_peak = _peak_rss_mib([sys.executable, "-m", "syscall_lint", "trace", "--format", "json", "-"],
                                       lambda: _hostile_stream(200_000))
    assert peak < 1.3 * half_peak + 20, f"peak RSS {half_peak:.0f} MiB at 200k, {peak:.0f} MiB at 400k"
    assert peak < 400, f"peak RSS {peak:.0f} MiB"
