"""Fuzz kind `strace`: strace text logs made by mutating the real recordings in fixtures/strace.

Hostile shapes: numbers of thousands of digits, broken escapes, unbalanced quotes and brackets,
calls without arguments, orphaned `<... resumed>` halves and unfinished calls that never resume,
mangled pid prefixes and timestamps, flipped bytes, truncation, 10 MB lines, many pids with
unfinished calls, fds never closed, and inputs that are not regular files (a FIFO, /dev/zero).
"""

from __future__ import annotations

import os
import pathlib
import random
import re

KIND = "strace"
SUBCOMMAND = ["trace", "--extend-select", "SCL601,SCL701"]  # the opt-in trace rules too

ROOT = pathlib.Path(__file__).resolve().parents[3]
_LINES: list = []


def fixture_lines() -> list:
    """Every line of every recorded text fixture (bytes, without newline), read once."""
    if not _LINES:
        for path in sorted((ROOT / "fixtures" / "strace").rglob("*")):
            if path.is_file() and (path.suffix == ".strace" or path.parent.name == "forking_ff"):
                _LINES.extend(path.read_bytes().splitlines())
    return _LINES


_DIGITS = re.compile(rb"\d+")


def _huge_number(rng: random.Random, line: bytes) -> bytes:
    runs = list(_DIGITS.finditer(line))
    if not runs:
        return line + b" = " + b"9" * rng.choice((25, 4301, 5000))
    m = rng.choice(runs)
    digits = b"9" * rng.choice((21, 25, 4300, 4301, 9000))
    return line[:m.start()] + (b"-" if rng.random() < 0.2 else b"") + digits + line[m.end():]


def _bad_escape(rng: random.Random, line: bytes) -> bytes:
    q = line.find(b'"')
    esc = rng.choice((b"\\x", b"\\x4", b"\\8", b"\\9", b"\\", b"\\xzz", b"\\777", b"\\0"))
    if q < 0:
        return b'openat(AT_FDCWD, "' + esc + b'", O_RDONLY) = 3'
    return line[:q + 1] + esc + line[q + 1:]


def _unbalance(rng: random.Random, line: bytes) -> bytes:
    ch = rng.choice((b'"', b"(", b")", b"[", b"]", b"{", b"}", b"<", b">", b","))
    i = rng.randrange(len(line) + 1)
    if rng.random() < 0.5 and ch in line:
        return line.replace(ch, b"", 1)
    return line[:i] + ch + line[i:]


def _no_args(rng: random.Random, line: bytes) -> bytes:
    name = rng.choice((b"openat", b"open", b"creat", b"rename", b"renameat2", b"close", b"write", b"read",
                       b"dup2", b"fcntl", b"clone", b"clone3", b"accept4", b"fsync", b"pipe2", b"socketpair",
                       b"close_range", b"fchdir", b"chdir", b"sendto", b"recvfrom", b"futex", b"mmap", b"munmap",
                       b"poll", b"select", b"epoll_wait", b"syncfs", b"pread64", b"writev"))
    args = rng.choice((b"", b",", b", , ", b"AT_FDCWD", b'"x"', b"3<", b"-1", b"[", b"{}", b"3, 4"))
    ret = rng.choice((b"3", b"0", b"-1 EBADF (Bad file descriptor)", b"?", b"0x10", b"18446744073709551615", b""))
    return name + b"(" + args + b") = " + ret


def _resume_orphan(rng: random.Random, line: bytes) -> bytes:
    name = rng.choice((b"read", b"write", b"futex", b"wait4", b"accept4", b"openat", b"clone", b"poll"))
    pid = str(rng.randrange(1, 1 << 22)).encode()
    if rng.random() < 0.5:
        return pid + b" <... " + name + b" resumed>" + rng.choice((b"", b'"abc", 10) = 3', b") = ?", b" <unfinished ...>"))
    return pid + b" " + name + b"(" + rng.choice((b"3, ", b"", b'"x", ')) + b" <unfinished ...>"


def _prefix(rng: random.Random, line: bytes) -> bytes:
    junk = rng.choice((b"[pid 99999999999999999999] ", b"[pid ", b"123456789012345678901234567890 ",
                       b"99:99:99.999 ", b"1." + b"9" * 5000 + b" ", b"-5 ", b"[pid  -1] ", b"\t", b"   "))
    return junk + line


def _flip(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line or b"x")
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _duration(rng: random.Random, line: bytes) -> bytes:
    return line + rng.choice((b" <" + b"9" * 5000 + b".5>", b" <0.1", b" <>", b" <-1.0>", b" <1e999>"))


def _rule_args(rng: random.Random, line: bytes) -> bytes:
    """Arguments shaped like what the rules decode (sizes, addresses, timeouts, futex ops), mangled."""
    big = b"9" * rng.choice((20, 25, 4301))
    return rng.choice((
        b"mmap(NULL, " + big + b", PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
        b"mmap(NULL, 1048576, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x" + b"f" * rng.choice((8, 40, 5000)),
        b"munmap(0x" + b"f" * rng.choice((12, 19, 5000)) + b", " + big + b") = 0",
        b"munmap(0x7f0000000000) = 0", b"munmap() = 0", b"mmap() = 0x1",
        b"futex(0x1, FUTEX_WAIT_PRIVATE, 2, NULL) = 0 <" + big + b".5>", b"futex() = 0", b"futex(FUTEX_WAIT) = 0",
        b"futex(0x1,FUTEX_WAIT) = -1 ETIMEDOUT (x)",
        b"poll([], 1, 0) = 0 (Timeout)", b"poll(, 0) = 0", b"epoll_pwait(4, [], 1, 0) = 0", b"epoll_pwait() = 0",
        b"select(1, NULL, NULL, NULL, {tv_sec=0, tv_usec=0}) = 0", b"ppoll(, {tv_sec=0, tv_nsec=0) = 0",
        b'read(3, "", ' + big + b") = 0", b'pread64(3, "x", 1) = 1', b"pread64(3) = 1", b"read(3, ) = 1",
        b"fsync(3</a\\>b>) = 0", b"syncfs() = 0", b"sync() = 0", b"close_range(3, " + big + b", 0) = 0",
        b'write(3<TCP:[1:2->3:4]>, "x", 1) = 1', b'write(3<TCP:[1:2->, "x", 1) = 1', b"dup2(3, " + big + b") = 4",
    ))


MUTATIONS = (_huge_number, _bad_escape, _unbalance, _no_args, _resume_orphan, _prefix, _flip, _duration, _rule_args)


def mutated_lines(rng: random.Random) -> list:
    """A slice of real lines with a few hostile mutations (bytes, no newlines)."""
    pool = fixture_lines()
    start = rng.randrange(len(pool))
    lines = pool[start:start + rng.randint(1, 300)]
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(lines) + 1)
        mutate = rng.choice(MUTATIONS)
        if i < len(lines) and rng.random() < 0.6:
            lines[i] = mutate(rng, lines[i])
        else:
            lines.insert(i, mutate(rng, rng.choice(pool)))
    return lines


def hostile_stream(rng: random.Random) -> list:
    """State that grows with the log unless bounded: many pids, many fds, many renames (scaled down)."""
    n = rng.randint(2_000, 20_000)
    shape = rng.randrange(4)
    if shape == 0:  # distinct pids with unfinished calls
        return [b"%d read(3,  <unfinished ...>" % (p + 2) for p in range(n)]
    if shape == 1:  # fds opened, written and never closed
        return [b'7 openat(AT_FDCWD, "/tmp/f%d", O_WRONLY|O_CREAT, 0644) = %d\n7 write(%d, "x", 1) = 1'
                % (i, i + 3, i + 3) for i in range(n)]
    if shape == 2:  # files written, closed and renamed without a sync
        return [b'8 openat(AT_FDCWD, "d%d/t", O_WRONLY|O_CREAT, 0644) = 3\n8 write(3, "x", 1) = 1\n8 close(3) = 0\n'
                b'8 rename("d%d/t", "d%d/f") = 0' % (i, i, i) for i in range(n)]
    return [b"%d clone(child_stack=NULL, flags=CLONE_VM|CLONE_THREAD) = %d" % (i + 2, i + 3) for i in range(n)]


def text(rng: random.Random, index: int) -> bytes:
    """The content of text input number `index` (shared by the gzip kind)."""
    roll = rng.random()
    if roll < 0.01:
        lines = hostile_stream(rng)
    else:
        lines = mutated_lines(rng)
    data = b"\n".join(lines) + (b"\n" if rng.random() < 0.9 else b"")
    if index % 1000 == 7:  # a 10 MB line (rare: it costs disk and time in every batch)
        cut = rng.randrange(len(data) + 1)
        data = data[:cut] + rng.choice((b"x", b'"', b"(")) * (10 << 20) + data[cut:]
    if rng.random() < 0.05:
        data = data[:rng.randrange(len(data) + 1)]  # truncated anywhere
    if rng.random() < 0.02:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))  # binary junk
    return data


def special(index: int, outdir: pathlib.Path):
    """Inputs that are not regular files: a FIFO nobody writes to, /dev/zero, a directory of junk."""
    if index % 997 == 3 and hasattr(os, "mkfifo"):
        path = outdir / f"{KIND}-{index}.fifo.strace"
        if not path.exists():
            os.mkfifo(path)
        return path
    if index % 991 == 5 and os.path.exists("/dev/zero"):
        path = outdir / f"{KIND}-{index}.zero.strace"
        if not path.is_symlink():
            path.symlink_to("/dev/zero")
        return path
    return None


def generate(rng: random.Random, index: int, outdir: pathlib.Path) -> pathlib.Path:
    odd = special(index, outdir)
    if odd is not None:
        return odd
    path = outdir / f"{KIND}-{index}.strace"
    path.write_bytes(text(rng, index))
    return path
