"""The raw-word screens that spare SCL501's candidate loops a disassembly (spin.leaves_before and
spin.poll_refuses) may only turn away what the disassembled check (Analyzer._loop on the span)
turns away too. Checked on deterministic random spans rich in the words they model (branches of
every kind, walks, counters, literal and register-offset loads, SVE words, hints), and on every
candidate of the aarch64 fixtures."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from syscall_lint.elf import reader, spin
from syscall_lint.elf.reader import CodeSection

capstone = pytest.importorskip("capstone")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "elf" / "aarch64"
BASE = 0x400000


def _analyzer(sections):
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.skipdata = True
    return spin.Analyzer(md, sections)


# a narrow alphabet (three registers; loads, moves, adds, compares, hints): spans that pass the
# disassembled check too, so a screen that turns away a real spin is caught
NARROW = (0, 1, 4, 5, 13, 18, 19, 0, 1, 5)


def _word(rng, pos, span, narrow=False):
    """One instruction word at byte offset `pos` of a span of `span` bytes."""
    regs = (0, 1, 19) if narrow else (0, 1, 2, 3, 8, 19, 29, 31, rng.randrange(32))
    r = lambda: rng.choice(regs)  # noqa: E731
    off = lambda bits: rng.randrange(-pos // 4 - 2, (span - pos) // 4 + 3) & ((1 << bits) - 1)  # noqa: E731
    kind = rng.choice(NARROW) if narrow else rng.randrange(22)
    if kind == 0:
        return 0xF9400000 | rng.randrange(8) << 10 | r() << 5 | r()  # ldr x, [xn, #imm]
    if kind == 1:
        return 0xB9400000 | rng.randrange(8) << 10 | r() << 5 | r()  # ldr w, [xn, #imm]
    if kind == 2:
        return rng.choice((0x38400000, 0x78400000, 0xB8400000, 0xF8400000, 0x38800000, 0xF8800000)) \
            | rng.randrange(8) << 12 | r() << 5 | r()  # ldur*, and ldurs*/prfum
    if kind == 3:
        return rng.choice((0x29400000, 0x69400000, 0xA9400000, 0x28400000, 0xA9000000)) \
            | rng.randrange(8) << 15 | r() << 10 | r() << 5 | r()  # ldp/ldpsw/ldnp/stp
    if kind == 4:
        return rng.choice((0x8B000000, 0xCB000000, 0xAB000000, 0xEB000000, 0x0B000000, 0x4B000000)) \
            | r() << 16 | r() << 5 | r()  # add/sub/adds/subs (shifted register), cmp when Rd = 31
    if kind == 5:
        return rng.choice((0xAA000000, 0x8A000000, 0xCA000000, 0xEA000000, 0xAA200000, 0x2A000000)) \
            | r() << 16 | r() << 5 | r()  # orr/and/eor/ands/orn, mov/mvn/tst aliases
    if kind == 6:
        return rng.choice((0x58000000, 0x18000000, 0x98000000, 0xD8000000, 0x1C000000)) | off(19) << 5 | r()
    if kind == 7:
        return rng.choice((0xF8606800, 0xB8607800, 0x38606800, 0xF8A06800)) | r() << 16 | r() << 5 | r()
    if kind == 8:
        return 0x54000000 | off(19) << 5 | rng.randrange(16)  # b.cond
    if kind == 9:
        return rng.choice((0x34000000, 0xB5000000)) | off(19) << 5 | r()  # cbz/cbnz
    if kind == 10:
        return rng.choice((0x36000000, 0xB7000000)) | rng.randrange(32) << 19 | off(14) << 5 | r()
    if kind == 11:
        return 0x14000000 | off(26)  # b
    if kind == 12:
        return rng.choice((0xD65F03C0, 0xD61F0200, 0xD63F0200, 0xD4200000, 0xD4000001))  # ret br blr brk svc
    if kind == 13:
        return rng.choice((0xD503201F, 0xD503203F, 0xD5033FDF, 0xD53BD040 | r(), 0xD5033BBF))  # hints, mrs, dmb
    if kind == 14:
        return 0x91000000 | rng.randrange(64) << 10 | r() << 5 | r()  # add (immediate)
    if kind == 15:
        return 0x90000000 | r()  # adrp
    if kind == 16:
        return rng.choice((0x04A00000, 0x85404000, 0x25D8E3E0, 0xC0800000)) | r()  # SVE / SME
    if kind == 17:
        return 0xF9000000 | rng.randrange(8) << 10 | rng.choice((29, 31, r())) << 5 | r()  # str
    if kind == 18:
        return rng.choice((0x9A800000, 0x1A9F17E0, 0x9B007C00, 0x93407C00)) | r() << 16 | r() << 5 | r()
    if kind == 19:
        return 0xD2800000 | rng.randrange(1 << 16) << 5 | r()  # movz
    if kind == 20:
        return 0xFA400800 | r() << 16 | r() << 5 | rng.randrange(16)  # ccmp (no Rd)
    return rng.randrange(1 << 32)


def _spans(count):
    rng = random.Random(501)
    for _ in range(count):
        n = rng.randrange(1, 14)
        narrow = rng.random() < 0.5
        words = [_word(rng, 4 * i, 4 * n, narrow) for i in range(n)]
        # the branch back to the header, of one of the kinds candidates() finds
        back = (-n) & 0x7FFFF
        words.append(rng.choice((0x54000001 | back << 5, 0x35000000 | back << 5 | rng.randrange(32),
                                 0x14000000 | ((-n) & 0x3FFFFFF), 0x37000000 | ((-n) & 0x3FFF) << 5)))
        yield b"".join(w.to_bytes(4, "little") for w in words), 4 * n


def test_raw_screens_turn_away_only_what_the_disassembled_check_does():
    screened = kept = 0
    for data, branch in _spans(6000):
        sec = CodeSection(".text", BASE, data)
        slow = _analyzer([sec])._loop(sec, BASE, BASE + branch, BASE, BASE + branch + 4, precise=False)
        for screen in (spin.leaves_before, spin.poll_refuses):
            if screen(data, 0, branch):
                screened += 1
                assert slow is None, (screen.__name__, data.hex())
        kept += slow is not None
    # both outcomes occur often enough for the comparison to mean something
    assert screened > 1000 and kept > 30


def test_straight_line_shapes():
    words = lambda *ws: b"".join(w.to_bytes(4, "little") for w in ws)  # noqa: E731
    ret, nop, back3 = 0xD65F03C0, 0xD503201F, 0x54FFFFA1  # b.ne back by 3 words
    assert spin.leaves_before(words(0xF9400001, ret, 0xF9400020, back3), 0, 12)  # epilogue: no loop
    assert not spin.leaves_before(words(0xF9400001, nop, 0xF9400020, back3), 0, 12)
    assert not spin.leaves_before(words(0xD61F0200, nop, nop, back3), 0, 12)  # br: the slow check decides
    assert spin.poll_refuses(words(0xF9400400, nop, nop, back3), 0, 12)  # ldr x0, [x0, #8]: a walk
    assert not spin.poll_refuses(words(0xAA0103E0, 0xF9400400, nop, back3), 0, 12)  # mov x0, x1 first
    assert spin.poll_refuses(words(0x8B020021, nop, nop, back3), 0, 12)  # add x1, x1, x2: a counter
    assert not spin.poll_refuses(words(0xEB02003F, nop, nop, back3), 0, 12)  # cmp x1, x2
    assert spin.poll_refuses(words(0xF8627820, nop, nop, back3), 0, 12)  # ldr x0, [x1, x2, lsl #3]
    # the body in address order, past a forward branch inside the loop: a walk found after it …
    assert spin.poll_refuses(words(0x34000041, nop, 0xF94004A5, back3), 0, 12)  # cbz w1, +8; ldr x5, [x5, #8]
    # … and a register read first and rewritten later (ldr x1, [x0]; mov x0, x1): carried
    assert spin.poll_refuses(words(0xF9400001, 0xAA0103E0, nop, back3), 0, 12)
    # a load into a register before its value is read is no carried value (ldr w1, [x19]; cbz)
    assert not spin.poll_refuses(words(0xB9400261, nop, nop, 0x34FFFFA1), 0, 12)
    # words the body does not hold (an exit block laid out inside the span) are not read
    # (ldr w1, [x19]; cbnz w1, +12; ldr x3, [x3]; ret; b back)
    assert not spin.poll_refuses(words(0xB9400261, 0x35000061, 0xF9400063, 0xD65F03C0, 0x17FFFFFC), 0, 16)


def _fixture_sections():
    for path in sorted(FIXTURES.iterdir()) if FIXTURES.is_dir() else ():
        if path.is_file() and reader.is_elf(str(path)):
            sections, _relocs = reader.text_sections(str(path))
            yield path.name, sections


def test_raw_screens_agree_on_the_fixtures():
    checked = 0
    for name, sections in _fixture_sections():
        analyzer = _analyzer(sections)
        for sec in analyzer.sections:
            for header, branch in spin.candidates(sec.address, sec.data):
                lo, hi = header - sec.address, branch - sec.address
                if spin.leaves_before(sec.data, lo, hi) or spin.poll_refuses(sec.data, lo, hi):
                    checked += 1
                    assert analyzer._loop(sec, header, branch, header, branch + 4, precise=False) is None, \
                        (name, hex(header))
    if not checked:
        pytest.skip("no aarch64 fixtures built")


def _poll_model(mnemonic, op):
    """(registers read, registers written) as Analyzer._poll treats one instruction, by number, or
    None where it gives up: the reference for spin._reads_writes, written from _poll's branches."""
    if mnemonic in spin.HINTS:
        return set(), set()
    if mnemonic in ("bl", "blr", "br", "ret", "svc", "hvc", "brk") or mnemonic.startswith(("dmb", "dsb")):
        return None
    if spin.ACQUIRE_LOADS.match(mnemonic) or spin.ATOMICS.match(mnemonic):
        return None
    parts = [p.strip() for p in op.split(",")]

    def numbers(names):
        return {int(r[1:]) for r in names if r not in (None, "sp")}

    if spin.STORES.match(mnemonic):
        return numbers(spin._regs(parts[0])), set()
    if mnemonic in spin.PLAIN_LOADS:
        m = spin._MEM.search(op)
        if m is None:
            return None
        dests = numbers(spin._reg(p) for p in parts[:2 if mnemonic in ("ldp", "ldpsw") else 1])
        return (set() if spin._slot(op) else numbers([spin._reg(m.group(1))])), dests
    if mnemonic in spin.COMPARES:
        return numbers(spin._regs(op)), set()
    if mnemonic in ("cbz", "cbnz", "tbz", "tbnz"):
        return numbers(spin._regs(parts[0])[:1]), set()
    if mnemonic.startswith("b.") or mnemonic == "b":
        return set(), set()
    regs = spin._regs(op)
    if not regs:
        return set(), set()
    sources = regs[1:] + ([regs[0]] if mnemonic == "movk" else [])
    return numbers(sources), numbers(regs[:1])


def test_raw_word_classes_agree_with_capstone_and_the_poll_model():
    """Every word spin._reads_writes, the literal/register-offset test or _branch_successors
    classifies is checked against capstone's text of it: unallocated encodings (`.byte`) and
    aliases must not be claimed."""
    from syscall_lint.elf import cfg

    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.skipdata = True
    rng = random.Random(64)
    at = 0x10000000  # above every branch's reach back: capstone prints no negative target
    tops = [t for t in range(256) if t & 0x1F in (0x09, 0x0A, 0x0B, 0x10, 0x11, 0x12, 0x14, 0x15, 0x16, 0x17, 0x18,
                                                   0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x29)
            or t in (0x54, 0xD4, 0xD5, 0xD6)]
    claimed = 0
    for i in range(60000):
        w = (rng.choice(tops) << 24) | rng.randrange(1 << 24) if i % 4 else rng.randrange(1 << 32)
        (_address, _size, mnemonic, op), = md.disasm_lite(w.to_bytes(4, "little"), at)
        model = _poll_model(mnemonic, op)
        if spin._unaddressed_load(w):
            assert model is None, (hex(w), mnemonic, op)  # poll_refuses: _poll gives up here
            claimed += 1
            continue
        reads, writes = spin._reads_writes(w)
        if (reads or writes) and model is not None:
            assert set(reads) <= model[0] and set(writes) <= model[1], (hex(w), mnemonic, op)
            claimed += 1
        nexts = spin._branch_successors(w, at)
        if nexts is not None:
            is_branch, cond, target, ends = cfg.branch("aarch64", mnemonic, op)
            expected = {at + 4} if not is_branch or (cond and target is None) else \
                {target, at + 4} if cond else ({target} if target is not None else set())
            assert set(nexts) == expected, (hex(w), mnemonic, op)
    assert claimed > 10000
