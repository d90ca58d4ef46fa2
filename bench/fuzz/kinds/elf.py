"""ELF binaries for `syscall-lint audit`: the fixture binaries of both architectures, mutated.

Shapes, chosen by the input's index so every campaign covers all of them: truncation at each 1/64 of
the file, header fields at their extremes, section and program headers pointing past the end of the
file, byte flips (anywhere, or concentrated on the tables), 32-bit and big-endian relabelling, the
issue-8 shape (thousands of executable sections spanning the file), small hand-built headers, and
non-regular files named as input (a FIFO, links to character devices, a dangling link).
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

KIND = "elf"
SUBCOMMAND = ["audit"]
BATCH_SIZE = 150

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = sorted(p for arch in ("x86_64", "aarch64") for p in (ROOT / "fixtures" / "elf" / arch).iterdir()
                  if p.is_file())
_CACHE: dict = {}

EXTREMES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
            0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF]
# (offset, size) of the ELF64 header fields after e_ident: type, machine, version, entry, phoff, shoff,
# flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx
HEADER64 = [(0x10, 2), (0x12, 2), (0x14, 4), (0x18, 8), (0x20, 8), (0x28, 8), (0x30, 4), (0x34, 2), (0x36, 2),
            (0x38, 2), (0x3A, 2), (0x3C, 2), (0x3E, 2)]
DEVICES = ["/dev/zero", "/dev/null", "/dev/urandom", "/dev/full"]


def _fixture(rng: random.Random) -> bytes:
    path = rng.choice(FIXTURES)
    if path not in _CACHE:
        _CACHE[path] = path.read_bytes()
    return _CACHE[path]


def _put(buf: bytearray, offset: int, size: int, value: int) -> None:
    if offset + size <= len(buf):
        buf[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _tables(buf: bytes):
    """(shoff, shnum, phoff, phnum) of an ELF64 little-endian fixture."""
    return (struct.unpack_from("<Q", buf, 0x28)[0], struct.unpack_from("<H", buf, 0x3C)[0],
            struct.unpack_from("<Q", buf, 0x20)[0], struct.unpack_from("<H", buf, 0x38)[0])


def truncate(rng, index, data):
    return data[: len(data) * ((index // 16) % 64) // 64]


def header_extremes(rng, index, data):
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        offset, size = rng.choice(HEADER64)
        _put(buf, offset, size, rng.choice(EXTREMES))
    return bytes(buf)


def sections_past_eof(rng, index, data):
    buf = bytearray(data)
    shoff, shnum, phoff, phnum = _tables(data)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.7 and shnum:
            entry = shoff + 64 * rng.randrange(shnum)
            field = rng.choice([(0x18, 8), (0x20, 8), (0x04, 4), (0x08, 8), (0x28, 4), (0x38, 8), (0x00, 4)])
        elif phnum:
            entry = phoff + 56 * rng.randrange(phnum)
            field = rng.choice([(0x08, 8), (0x20, 8), (0x00, 4)])
        else:
            continue
        value = rng.choice([len(data), len(data) + 1, len(data) * 2, rng.choice(EXTREMES)])
        _put(buf, entry + field[0], field[1], value)
    return bytes(buf)


def byte_flips(rng, index, data):
    buf = bytearray(data)
    shoff, shnum, _, _ = _tables(data)
    focus = rng.random() < 0.5 and shoff < len(buf)
    for _ in range(rng.choice([1, 4, 16, 64, 256])):
        pos = rng.randrange(shoff, len(buf)) if focus else rng.randrange(len(buf))
        buf[pos] = rng.choice([0, 0xFF, buf[pos] ^ (1 << rng.randrange(8)), rng.randrange(256)])
    return bytes(buf)


def class_and_endianness(rng, index, data):
    buf = bytearray(data)
    buf[4] = rng.choice([1, 2, 0, 3, 0xFF])  # EI_CLASS: 32-bit, 64-bit or nonsense
    buf[5] = rng.choice([1, 2, 0, 3])  # EI_DATA: little, big or nonsense
    return bytes(buf)


def many_exec_sections(rng, index, data):
    """Issue 8: executable sections that each span the whole file."""
    shoff, shnum, _, _ = _tables(data)
    extra = rng.choice([2, 50, 255, 300, 4000])
    size = len(data) + 64 * (shnum + extra)
    table = bytearray(data[shoff:shoff + 64 * shnum])
    for i in range(extra):
        table += struct.pack("<IIQQQQIIQQ", 0, 1, 6, 0x1000 + i, rng.choice([0, 64]), size, 0, 0, 16, 0)
    head = bytearray(data)
    _put(head, 0x28, 8, len(data))
    _put(head, 0x3C, 2, shnum + extra)
    return bytes(head + table)


def handmade(rng, index, data):
    """A header alone with random tables: 32/64-bit, either byte order."""
    bits64, little = rng.random() < 0.5, rng.random() < 0.5
    e = "<" if little else ">"
    ident = b"\x7fELF" + bytes([2 if bits64 else 1, 1 if little else 2, 1]) + b"\0" * 9
    shnum, phnum = rng.choice([0, 1, 3, 0xFFFF]), rng.choice([0, 1, 3, 0xFFFF])
    if bits64:
        header = struct.pack(e + "HHIQQQIHHHHHH", rng.choice([2, 3, 1, 4]), rng.choice([62, 183, 3, 40, 0xFFFF]), 1,
                             0, 64, 64 + 56 * min(phnum, 3), 0, 64, 56, phnum, 64, shnum, rng.randrange(4))
    else:
        header = struct.pack(e + "HHIIIIIHHHHHH", rng.choice([2, 3, 1]), rng.choice([3, 40, 8, 20]), 1,
                             0, 52, 52 + 32 * min(phnum, 3), 0, 52, 32, phnum, 40, shnum, rng.randrange(4))
    tail = bytes(rng.randrange(256) for _ in range(rng.choice([0, 16, 200, 1000])))
    return ident + header + tail


MUTATORS = [truncate, header_extremes, sections_past_eof, byte_flips, class_and_endianness, many_exec_sections,
            handmade]


def generate(rng: random.Random, index: int, outdir: Path) -> Path:
    path = outdir / f"elf-{index:06d}"
    shape = index % 16
    if shape == 15:  # a non-regular file named as input: refused at once, never opened blocking
        special = (index // 16) % 6
        if special == 0:
            os.mkfifo(path)
        elif special == 5:
            path.symlink_to(outdir / f"missing-{index}")
        else:
            path.symlink_to(DEVICES[special - 1])
        return path
    data = _fixture(rng)
    mutate = MUTATORS[shape % len(MUTATORS)] if shape < 14 else byte_flips
    out = mutate(rng, index, data)
    if shape == 14:  # two shapes at once
        out = rng.choice(MUTATORS[1:5])(rng, index, out if len(out) >= 64 else data)
    path.write_bytes(out)
    return path
