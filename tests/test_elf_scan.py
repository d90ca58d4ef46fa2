"""The byte scans behind the call graph and the spin-loop candidates run as C pipelines (split,
translate, map, compress) rather than one Python step per instruction. Each is checked here
against a plain per-word decoder, written the obvious way, on deterministic buffers rich in the
opcodes they look for (including words that straddle the end of the buffer)."""

from __future__ import annotations

import random
import struct

import pytest

from syscall_lint.elf import callgraph, spin


def _buffers(count=200):
    rng = random.Random(10)
    common = [0xFF, 0x00, 0x54, 0x17, 0x14, 0x94, 0x97, 0x36, 0xB7, 0xE8, 0xE9, 0x15, 0x25]
    for _ in range(count):
        n = rng.randrange(0, 3000)
        data = bytes(rng.choice(common) if rng.random() < 0.6 else rng.randrange(256) for _ in range(n))
        base = 0x1000 * rng.randrange(1, 64)
        starts = {base + 4 * rng.randrange(0, max(1, n // 4)) for _ in range(40)}
        targets = {s: s for s in starts}
        targets.update({base + rng.randrange(0, max(1, n)): f"import{i}" for i in range(20)})
        got = {base + rng.randrange(-64, n + 64): "slot" for _ in range(20)}
        yield base, data, targets, got


def _x86_reference(base, data, got, targets):
    out = []
    for pos, op in enumerate(data):
        if op == 0xFF and pos + 1 < len(data) and data[pos + 1] in (0x15, 0x25) and pos + 6 <= len(data):
            slot = base + pos + 6 + int.from_bytes(data[pos + 2:pos + 6], "little", signed=True)
            if slot in got:
                out.append((base + pos, got[slot], data[pos + 1] == 0x25))
        elif op in (0xE8, 0xE9) and pos + 5 <= len(data):
            target = base + pos + 5 + int.from_bytes(data[pos + 1:pos + 5], "little", signed=True)
            if targets is None:
                out.append((base + pos, target, op == 0xE9))
            elif target in targets:
                out.append((base + pos, targets[target], op == 0xE9))
    return sorted(out)


def _a64_reference(base, data, targets):
    out = []
    for pos in range(0, len(data) - 3, 4):
        word = int.from_bytes(data[pos:pos + 4], "little")
        if (word >> 26) & 0x1F != 0x05:  # neither b nor bl
            continue
        imm = word & 0x3FFFFFF
        target = base + pos + (imm - (1 << 26) if imm & (1 << 25) else imm) * 4
        if word & 0x80000000:
            out.append((base + pos, target, False))
        elif target in targets:
            out.append((base + pos, targets[target], True))
    return sorted(out)


def _candidates_reference(base, data):
    out = []
    for pos in range(0, len(data) - 3, 4):
        word = int.from_bytes(data[pos:pos + 4], "little")
        if (word & 0xFF000010) == 0x54000000 or (word & 0x7E000000) == 0x34000000:
            imm, bits = (word >> 5) & 0x7FFFF, 19
        elif (word & 0x7E000000) == 0x36000000:
            imm, bits = (word >> 5) & 0x3FFF, 14
        elif (word & 0xFC000000) == 0x14000000:
            imm, bits = word & 0x3FFFFFF, 26
        else:
            continue
        off = (imm - (1 << bits) if imm & (1 << (bits - 1)) else imm) * 4
        if -spin.MAX_SPAN <= off <= 0 and spin._may_spin(data, pos + off, pos):
            out.append((base + pos + off, base + pos))
    return out


@pytest.fixture(params=["pure", "numpy"])
def kernels(request, monkeypatch):
    """Each scan twice: through the pure pipelines, and through numpy's arrays when installed."""
    from syscall_lint.elf import vector

    if request.param == "numpy" and vector.np is None:
        pytest.skip("numpy is not installed")
    monkeypatch.setattr(vector, "ENABLED", request.param == "numpy")
    return request.param


@pytest.mark.parametrize("filtered", [False, True])
def test_x86_scan_matches_a_per_byte_decoder(filtered, kernels):
    for base, data, targets, got in _buffers():
        wanted = targets if filtered else None
        found = []
        callgraph._scan_x86(base, data, got, wanted, found)
        assert sorted(found) == _x86_reference(base, data, got, wanted)


def test_a64_scan_matches_a_per_word_decoder(kernels):
    for base, data, targets, _got in _buffers():
        found = []
        callgraph._scan_a64(base, data, targets, found)
        assert sorted(found) == _a64_reference(base, data, targets)


def test_spin_candidates_match_a_per_word_decoder(kernels):
    seen = 0
    for base, data, _targets, _got in _buffers():
        expected = _candidates_reference(base, data)
        seen += len(expected)
        assert spin.candidates(base, data) == expected
    assert seen  # the buffers hold short backward branches that pass the raw-word screen


def test_byte_offsets():
    data = b"\xe8ab\xe8\xe8c\xe8"
    assert callgraph._byte_offsets(data, b"\xe8") == [0, 3, 4, 6]
    assert callgraph._byte_offsets(b"", b"\xe8") == []
    assert callgraph._byte_offsets(b"abc", b"\xe8") == []


def test_addresses_beyond_the_int64_range_take_the_pure_path(kernels):
    """numpy's kernels decline code placed where int64 sums could overflow; the answer is the same."""
    for base, data, targets, got in list(_buffers(count=20)):
        high = (1 << 63) + base
        moved = {k + (1 << 63) if isinstance(k, int) else k: v for k, v in targets.items()}
        slots = {k + (1 << 63): v for k, v in got.items()}
        found = []
        callgraph._scan_x86(high, data, slots, moved, found)
        assert sorted(found) == _x86_reference(high, data, slots, moved)
        found = []
        callgraph._scan_a64(high, data, moved, found)
        assert sorted(found) == _a64_reference(high, data, moved)
        assert spin.candidates(high, data) == _candidates_reference(high, data)


@pytest.mark.parametrize("name", ["fork_server", "replace_nosync-static-stripped", "seqlock_plain-O1"])
def test_unwind_ranges_and_symbols_match_the_plain_decoders(name, kernels):
    """The unwind table's ranges (numpy or a loop) and the picked function symbols (column slices)
    equal what the plain per-entry decoders give."""
    from conftest import FIXTURES
    from syscall_lint.elf import reader

    paths = [FIXTURES / "elf" / arch / name for arch in ("x86_64", "aarch64")]
    paths = [p for p in paths if p.exists()]
    if not paths:
        pytest.skip(f"{name} is not built")
    for path in paths:
        ranges = reader.eh_frame_ranges(str(path))
        assert ranges == sorted(ranges)
        assert ranges or "stripped" in name  # a stripped static build keeps no .eh_frame_hdr
        with reader._open(str(path)) as (layout, _header):
            for table in (".symtab", ".dynsym"):
                sec = layout.by_name.get(table)
                plain = {(s.value, s.size, s.name) for s in reader._symbols(layout, sec)
                         if s.kind in (reader.STT_FUNC, reader.STT_GNU_IFUNC) and s.defined and s.value}
                picked = reader._defined_functions(layout, sec)
                assert (picked or set()) == plain
            imports = {}
            for s in reader._symbols(layout, layout.by_name.get(".dynsym"), layout.version_names()):
                if not s.defined:
                    imports.setdefault(s.name, s.version)
            assert reader._imports(layout, layout.by_name.get(".dynsym")) == imports


def test_spin_candidates_across_chunk_boundaries(monkeypatch):
    """numpy screens a long text in chunks that overlap by a span: with tiny chunks, every loop
    across a boundary is still found, once."""
    from syscall_lint.elf import vector

    if vector.np is None:
        pytest.skip("numpy is not installed")
    monkeypatch.setattr(vector, "ENABLED", True)
    for chunk in (1, 7, 64):
        monkeypatch.setattr(vector, "CHUNK_WORDS", chunk)
        for base, data, _targets, _got in _buffers(count=60):
            assert spin.candidates(base, data) == _candidates_reference(base, data)


@pytest.mark.parametrize("bits,little,rela", [(64, True, True), (64, False, True), (32, True, False),
                                              (32, False, True), (64, True, False)])
def test_relocation_rows_with_a_symbol_match_a_plain_decoder(bits, little, rela):
    """Only the relocation entries that name a symbol are unpacked; they are picked from sliced
    columns, for either word size and byte order."""
    from syscall_lint.elf.layout import _named_rows

    rng = random.Random(bits * 2 + little)
    e = "<" if little else ">"
    fmt = struct.Struct(e + ({(64, True): "QQq", (64, False): "QQ", (32, True): "IIi", (32, False): "II"}[bits, rela]))
    shift = 32 if bits == 64 else 8
    rows = [(rng.randrange(1 << 20), (rng.choice([0, 0, 0, rng.randrange(1, 1 << 20)]) << shift) | rng.randrange(256))
            + ((rng.randrange(-99, 99),) if rela else ()) for _ in range(500)]
    data = b"".join(fmt.pack(*r) for r in rows) + b"\x01\x02"  # a torn last entry is not read
    expected = [i for i, r in enumerate(rows) if r[1] >> shift]
    assert _named_rows(data, fmt.size, bits, little) == expected


def _screen_words(rng, n):
    """Words of every class the spin screen tells apart (loads, stores through sp, x29 or another
    register, writeback, atomics, exclusives, calls, barriers, adrp, counters), every top byte,
    and short backward branches among them."""
    out = []
    for i in range(n):
        kind = rng.randrange(6)
        if kind == 0:  # any top byte, any low bits
            w = rng.randrange(1 << 32)
        elif kind == 1:  # load/store classes with random fields
            w = (rng.choice((0x38, 0x39, 0x78, 0x79, 0xB8, 0xB9, 0xF8, 0xF9, 0x28, 0x29, 0xA9, 0xA8, 0x3C, 0x3D,
                             0xAD, 0x08, 0x48, 0x88, 0xC8)) << 24) | rng.randrange(1 << 24)
        elif kind == 2:  # add/sub immediate, some with Rd = Rn, and adrp
            reg = rng.choice((0, 1, 29, 31))
            w = rng.choice(((rng.choice((0x11, 0x91, 0x51, 0xD1, 0x31, 0xB1)) << 24) | rng.randrange(1 << 14) << 10
                            | reg << 5 | reg, 0x90000000 | rng.randrange(1 << 24) << 5 | reg))
        elif kind == 3:  # system words, calls
            w = rng.choice((0xD503201F, 0xD5033BBF, 0xD50339BF, 0xD5033FDF, 0xD63F0200, 0xD61F0200,
                            0x94000000 | rng.randrange(1 << 26), (0xD5 << 24) | rng.randrange(1 << 24),
                            (0xD6 << 24) | rng.randrange(1 << 24)))
        elif kind == 4:  # loads and stores through sp, x29 or x0-x2
            base = rng.choice((29, 31, 0, 1, 2))
            w = rng.choice((0xF9400000, 0xF9000000, 0xB9400000, 0xB9000000, 0xF8400400, 0xF8000C00, 0xA9400000)) \
                | rng.randrange(64) << 10 | base << 5 | rng.randrange(32)
        else:  # a short branch back
            back = rng.randrange(1, min(i, spin.MAX_SPAN // 4) + 2)
            w = rng.choice((0x54000001 | ((-back) & 0x7FFFF) << 5, 0xB5000000 | ((-back) & 0x7FFFF) << 5,
                            0x14000000 | ((-back) & 0x3FFFFFF), 0x37000000 | ((-back) & 0x3FFF) << 5))
        out.append(w)
    return b"".join(w.to_bytes(4, "little") for w in out)


def test_spin_screen_numpy_and_pure_agree_on_every_word_class(monkeypatch):
    from syscall_lint.elf import vector

    if vector.np is None:
        pytest.skip("numpy is not installed")
    rng = random.Random(12)
    seen = 0
    for _ in range(300):
        data = _screen_words(rng, rng.randrange(1, 400))
        base = 0x10000 * rng.randrange(1, 16)
        monkeypatch.setattr(vector, "ENABLED", True)
        fast = spin.candidates(base, data)
        monkeypatch.setattr(vector, "ENABLED", False)
        assert fast == spin.candidates(base, data) == _candidates_reference(base, data)
        seen += len(fast)
    assert seen > 200  # spans that pass the screen, not only ones it turns away


def test_x86_slot_calls_match_a_per_byte_decoder():
    """vector.x86_slot_calls (the 0xff bytes found first, then their second byte) gives every
    `ff 15`/`ff 25` with a whole rel32 after it, as a per-byte reading does, in site order."""
    from syscall_lint.elf import vector

    if not vector.ENABLED:
        pytest.skip("numpy is not installed")
    rng = random.Random(40)
    for size in list(range(12)) + [rng.randrange(12, 3000) for _ in range(300)]:
        data = bytes(rng.choice((0xFF, 0x15, 0x25, 0x00, 0xE8, rng.randrange(256))) for _ in range(size))
        base = 0x400000 + rng.randrange(1 << 20)
        expected = [(base + i, base + i + 6 + struct.unpack_from("<i", data, i + 2)[0], data[i + 1] == 0x25)
                    for i in range(len(data) - 5) if data[i] == 0xFF and data[i + 1] in (0x15, 0x25)]
        sites, slots, jumps = vector.x86_slot_calls(base, data)
        assert list(zip(sites.tolist(), slots.tolist(), jumps.tolist())) == expected
