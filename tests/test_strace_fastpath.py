"""The parser's fast paths (a chunk split into lines in C, a partition at the first "(", `-f` prefixes read
without a regex, a cache of names and first words) give exactly the events, counts and line numbers of the
careful reading: on lines made to sit on each decision's edge, at every read size, and while a pid is watched."""

import io

import pytest

from conftest import FIXTURES
import syscall_lint.strace.parser as parser
from syscall_lint.strace.parser import Call, Stats, parse

WANTED = {b"read", b"write", b"openat", b"close"}
EDGES = [
    b'1234  1700000000.123456 read(3, "ab", 2) = 2 <0.000010>',  # 1: -f, -ttt, -T
    b'1234  1700000000.123456 getpid() = 1234 <0.000010>',  # 2: not wanted: counted only
    b'5 read(3, "a = b", 9) = 1 x = 2',  # 3: the last ` = ` does not follow a ")"
    b'5 read(3, "x", 1) = = 3',  # 4: ` = ` again right after the one that ends the arguments
    b'5 read(3, "x", 1) = 0 = <0.1>',  # 5: ... and before a duration
    b'5 read(3, "x", 1) = 1 <0.1> <0.2>',  # 6: only the last <...> is the duration
    b'5 read(3, "x", 1) =  <0.5>',  # 7: an empty result
    b'5 read(3, "x", 1) = 1   <0.5>',  # 8
    b'5 read(3, "x", 1) = 1\t <0.5>',  # 9
    b'5 read(3, "x", 1) = 7 <unfinished ...>',  # 10: a first half, whatever is before
    b'5 getpid() = 7 <unfinished ...>',  # 11
    b'6 read(4,  <unfinished ...>',  # 12
    b'6 <... read resumed>"abc", 10) = 3 <0.2>',  # 13
    b'7 <... getpid resumed>) = 7',  # 14
    b'01234 read(3, "x", 1) = 1',  # 15: a pid with a leading zero
    b'99999999999 read(3, "x", 1) = 1',  # 16: more digits than a pid has
    b'[pid  42] 12:00:01.5 write(1, "x", 1) = 1',  # 17
    b'42 1.5x write(1, "x", 1) = 1',  # 18: not a timestamp
    b'42  1.5  write(1, "x", 1) = 1',  # 19: two spaces after the timestamp
    b'42\t1.5 write(1, "x", 1) = 1',  # 20: a tab is not strace's separator
    b'1.5 write(1, "x", 1) = 1',  # 21: a timestamp without a pid
    b'a<... c(x) = 0',  # 22: `<... ` before the "(": a resumed half, unreadable
    b'(read(3) = 1',  # 23: nothing before the "("
    b'read(3) = 1 <0.1>\r',  # 24: a carriage return keeps the duration in the result
    b'close(3)        = 0',  # 25: strace's padding
    b'rd\xa9(3) = 0',  # 26: not a name
    b'openat(AT_FDCWD</h>, "x", O_RDONLY) = 3</h/x> <0.1>',  # 27: -y and -T
    b'read(3, "x", 1) = -1 EAGAIN (Resource temporarily unavailable)',  # 28
    b'',  # 29: blank
    b'9 read(3, "x", 1) = 99999999999999999999999999',  # 30: no register holds this
]
# (line, pid, name, args, result, ret, ts, duration) of each call the parser yields with WANTED
EXPECTED = [
    (1, 1234, "read", b'3, "ab", 2', b"2", 2, 1700000000.123456, 0.00001),
    (6, 5, "read", b'3, "x", 1', b"1 <0.1>", 1, None, 0.2),
    (7, 5, "read", b'3, "x", 1', b"", None, None, 0.5),
    (8, 5, "read", b'3, "x", 1', b"1", 1, None, 0.5),
    (9, 5, "read", b'3, "x", 1', b"1\t", 1, None, 0.5),
    (12, 6, "read", b'4,"abc", 10', b"3", 3, None, 0.2),
    (15, 1234, "read", b'3, "x", 1', b"1", 1, None, None),
    (17, 42, "write", b'1, "x", 1', b"1", 1, 43201.5, None),
    (19, 42, "write", b'1, "x", 1', b"1", 1, 1.5, None),
    (21, 3, "write", b'1, "x", 1', b"1", 1, 1.5, None),
    (24, 3, "read", b"3", b"1 <0.1>\r", 1, None, None),
    (25, 3, "close", b"3", b"0", 0, None, None),
    (27, 3, "openat", b'AT_FDCWD</h>, "x", O_RDONLY', b"3</h/x>", 3, None, 0.1),
    (28, 3, "read", b'3, "x", 1', b"-1 EAGAIN (Resource temporarily unavailable)", -1, None, None),
    (30, 9, "read", b'3, "x", 1', b"99999999999999999999999999", None, None, None),
]
MALFORMED_LINES = [3, 4, 5, 16, 18, 20, 22, 23, 26]


def read(data: bytes, wanted=None, watched=None):
    stats = Stats()
    got = []
    for ev in parse(io.BufferedReader(io.BytesIO(data)), stats, default_pid=3, wanted=wanted, watched=watched):
        if type(ev) is Call:
            got.append((ev.line, ev.pid, ev.name, ev.args, ev.result, ev.ret, ev.ts, ev.duration))
        else:
            got.append((type(ev).__name__, ev.line, ev.pid))
    return got, stats


def test_lines_on_the_edge_of_each_decision():
    got, stats = read(b"\n".join(EDGES), WANTED)
    assert got == EXPECTED
    assert stats.lines == len(EDGES)
    assert stats.malformed == len(MALFORMED_LINES)
    assert [line for line, _ in stats.malformed_examples] == MALFORMED_LINES[:parser.MAX_REPORTED_MALFORMED]
    # complete calls and resumed halves are calls, first halves are not: 30 lines, 3 first halves
    # (10, 11, 12), the blank line, and the malformed lines above
    assert stats.calls == len(EDGES) - 3 - 1 - len(MALFORMED_LINES)


def test_a_watched_pid_gets_every_call_and_the_others_are_only_counted():
    log = b"\n".join([
        b'5 getpid() = 5',
        b'6 getpid() = 6',
        b'[pid 5] getuid() = 0',
        b'05 getppid() = 1',
        b'5 1.5 gettid() = 5',
        b'getpid() = 3',
        b'6 read(3, "x", 1) = 1',
    ])
    got, stats = read(log, WANTED, watched={5: 1})
    assert [(line, pid, name) for line, pid, name, *_ in got] == [
        (1, 5, "getpid"), (3, 5, "getuid"), (4, 5, "getppid"), (5, 5, "gettid"), (7, 6, "read")]
    assert stats.calls == 7 and stats.malformed == 0
    got, _ = read(log, WANTED, watched={3: 1})  # the pid of lines without one
    assert [(line, pid, name) for line, pid, name, *_ in got] == [(6, 3, "getpid"), (7, 6, "read")]


def test_halves_of_calls_no_rule_needs_while_a_pid_is_watched():
    # a watched pid's unfinished/resumed halves are merged whatever their name; another pid's are counted only
    log = b"\n".join([
        b'5 futex(0x1, FUTEX_WAIT <unfinished ...>',
        b'6 futex(0x2, FUTEX_WAIT <unfinished ...>',
        b'7 read(3,  <unfinished ...>',
        b'6 <... futex resumed>) = 0',
        b'05 <... futex resumed>) = 0',
        b'7 <... read resumed>"x", 1) = 1',
        b'[pid 6] futex(0x3, FUTEX_WAKE, 1 <unfinished ...>',
        b'[pid 6] <... futex resumed>) = 1',
    ])
    five = (1, 5, "futex", b"0x1, FUTEX_WAIT", b"0", 0, None, None)
    seven = (3, 7, "read", b'3,"x", 1', b"1", 1, None, None)
    got, stats = read(log, WANTED, watched={5: 1})
    assert got == [five, seven]
    assert (stats.calls, stats.malformed) == (4, 0)
    got, stats = read(log, WANTED, watched={5: 1, 6: 1})
    assert got == [(2, 6, "futex", b"0x2, FUTEX_WAIT", b"0", 0, None, None), five, seven,
                   (7, 6, "futex", b"0x3, FUTEX_WAKE, 1", b"1", 1, None, None)]
    assert (stats.calls, stats.malformed) == (4, 0)
    got, stats = read(log, WANTED)
    assert got == [seven] and (stats.calls, stats.malformed) == (4, 0)

INPUTS = sorted((FIXTURES / "strace").glob("*.strace"))[:8]


def counted(data: bytes) -> tuple:
    got, stats = read(data, WANTED)
    return got, (stats.lines, stats.calls, stats.malformed, stats.malformed_examples, stats.dropped_unfinished)


def patch(monkeypatch, name: str, value: int) -> None:
    """Set a parser constant where parse() reads it: in parser.py, and in its compiled core when one is built."""
    for module in (parser, parser.NATIVE):
        if module is not None:
            monkeypatch.setattr(module, name, value)


@pytest.mark.parametrize("chunk", [3, 97, 4096])
def test_events_and_line_numbers_do_not_depend_on_the_read_size(monkeypatch, chunk):
    data = [path.read_bytes() for path in INPUTS] + [b"\n".join(EDGES), b"\n".join(EDGES) + b"\n\n"]
    before = [counted(d) for d in data]
    patch(monkeypatch, "READ_CHUNK", chunk)
    assert [counted(d) for d in data] == before
    assert before[0][0] and before[0][1][0] > 0  # something was read and compared


@pytest.mark.parametrize("chunk", [1, 5, 16, 39])
def test_an_overlong_line_is_one_malformed_line_at_any_read_size(monkeypatch, chunk):
    # (a line is held until MAX_LINE bytes of it are read: read sizes are below it, as in use)
    patch(monkeypatch, "MAX_LINE", 40)
    patch(monkeypatch, "READ_CHUNK", chunk)
    log = b'read(3, "x", 1) = 1\nwrite(1, "' + b"z" * 100 + b'", 100) = 100\n\nclose(3) = 0\nclose(4) = 0'
    got, stats = read(log, WANTED)
    assert [(line, name) for line, _, name, *_ in got] == [(1, "read"), (4, "close"), (5, "close")]
    assert stats.lines == 5 and stats.malformed == 1 and stats.malformed_examples == [(2, "line longer than 40 bytes")]
