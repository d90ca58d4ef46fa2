"""Fuzz kind `strace_gz`: gzip-compressed strace logs, whole or damaged (flipped bytes in the
compressed stream, truncation, trailing junk, concatenated and empty members)."""

from __future__ import annotations

import gzip
import pathlib
import random

import importlib.util

# the sibling text kind, loaded by path like the driver loads kinds (bench/ is not a package)
_spec = importlib.util.spec_from_file_location("fuzz_kind_strace_text", pathlib.Path(__file__).with_name("strace.py"))
text_kind = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(text_kind)

KIND = "strace_gz"
SUBCOMMAND = ["trace"]


def generate(rng: random.Random, index: int, outdir: pathlib.Path) -> pathlib.Path:
    odd = text_kind.special(index, outdir)
    if odd is not None:
        return odd
    plain = text_kind.text(rng, index) if rng.random() < 0.7 else b"\n".join(text_kind.fixture_lines()[:400]) + b"\n"
    data = bytearray(gzip.compress(plain, compresslevel=rng.choice((1, 6, 9)), mtime=0))
    shape = rng.randrange(6)
    if shape == 0:  # flipped bytes anywhere in the compressed stream (header, deflate data, CRC, size)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif shape == 1:  # truncated
        del data[rng.randrange(2, len(data)):]
    elif shape == 2:  # junk after the member
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif shape == 3:  # two members, the second damaged
        second = bytearray(gzip.compress(plain[: len(plain) // 2], mtime=0))
        second[rng.randrange(len(second))] ^= 0xFF
        data += second
    elif shape == 4:  # only the magic number, or an empty member
        data = bytearray(rng.choice((b"\x1f\x8b", b"\x1f\x8b\x08", gzip.compress(b"", mtime=0))))
    path = outdir / f"{KIND}-{index}.strace.gz"
    path.write_bytes(bytes(data))
    return path
