"""The x86-64 PLT stubs read from their byte templates (callsites._x86_stubs_from_templates) give
the stub → name table capstone's text gives, and a section with anything else goes to capstone."""

from __future__ import annotations

import os
import random
import struct

import pytest
from conftest import FIXTURES

from syscall_lint.elf import callsites, reader

ELF = FIXTURES / "elf"

# each encoding with its wildcard bytes as None: (bytes pattern, capstone mnemonic)
TEMPLATES = [
    ([0xFF, 0x25, None, None, None, None], "jmp"),
    ([0xF2, 0xFF, 0x25, None, None, None, None], "bnd jmp"),
    ([0xFF, 0x35, None, None, None, None], "push"),
    ([0x68, None, None, None, None], "push"),
    ([0xE9, None, None, None, None], "jmp"),
    ([0xF2, 0xE9, None, None, None, None], "bnd jmp"),
    ([0xF3, 0x0F, 0x1E, 0xFA], "endbr64"),
    ([0x0F, 0x1F, 0x40, 0x00], "nop"),
    ([0x0F, 0x1F, 0x00], "nop"),
    ([0x0F, 0x1F, 0x44, 0x00, 0x00], "nop"),
    ([0x66, 0x90], "nop"),
    ([0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00], "nop"),
    ([0x66, 0x2E, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00], "nop"),
    ([0x90], "nop"),
    ([0xCC], "int3"),
]


def _md():
    pytest.importorskip("capstone")
    return callsites._capstone("x86-64")


def _fill(rng, template, disp=None) -> bytes:
    out = bytes(rng.randrange(256) if b is None else b for b in template)
    if disp is not None and template[-5:-4] == [0x25]:  # a jmp [rip + d32]: choose its displacement
        out = out[:-4] + struct.pack("<i", disp)
    return out


def _by_capstone(monkeypatch, md, sections, relocs) -> dict:
    monkeypatch.setattr(callsites, "_x86_stubs_from_templates", lambda *args: False)
    try:
        return callsites._stub_targets(md, "x86-64", sections, relocs)
    finally:
        monkeypatch.undo()


def test_each_template_is_one_instruction_for_capstone():
    """Every encoding, whatever its wildcard bytes, is exactly one instruction of its length."""
    md, rng = _md(), random.Random(10)
    for template, mnemonic in TEMPLATES:
        for _ in range(200):
            code = _fill(rng, template)
            decoded = list(md.disasm_lite(code, 0x401000))
            assert [(size, name) for _, size, name, _ in decoded] == [(len(code), mnemonic)], code.hex()


def _displacement(rng):
    return rng.choice([0, 1, 9, 10, -1, -9, -10, rng.randrange(-(1 << 31), 1 << 31), rng.randrange(-64, 64)])


def test_random_plts_give_capstones_stub_table(monkeypatch):
    """Sections made of the templates (with displacements capstone writes in decimal or as `[rip]`,
    and GOT slots some of which are relocated) give the same table both ways; the same sections
    with a byte changed or cut short either give the same table or go to capstone."""
    md, rng = _md(), random.Random(20)
    for case in range(400):
        pieces = [_fill(rng, rng.choice(TEMPLATES)[0], disp=_displacement(rng)) for _ in range(rng.randrange(1, 60))]
        data = b"".join(pieces)
        if case % 3 == 1:  # a changed byte: often no longer only templates
            at = rng.randrange(len(data))
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
        elif case % 3 == 2:  # cut inside an instruction
            data = data[:rng.randrange(len(data))]
        addr = 0x1000 + 16 * rng.randrange(1 << 12)
        slots = [addr + off for off in range(len(data) + 8)] + [addr - 4, addr + (1 << 20)]
        relocs = {slot: f"f{slot:x}" for slot in rng.sample(slots, min(len(slots), 40))}
        # the slots the jumps read (from any offset, instruction or not), so that hits are common
        for start in range(len(data)):
            if data[start:start + 2] == b"\xff\x25" and start + 6 <= len(data):
                relocs[addr + start + 6 + struct.unpack_from("<i", data, start + 2)[0]] = f"g{start}"
        sections = [reader.CodeSection(".plt.sec", addr, data)]
        fast = {}
        from_templates = callsites._x86_stubs_from_templates(data, addr, relocs, fast)
        assert from_templates or case % 3, data.hex()  # an unchanged section is read from the templates
        if from_templates:
            assert fast == _by_capstone(monkeypatch, md, sections, relocs), data.hex()
        else:
            assert fast == {}
        assert callsites._stub_targets(md, "x86-64", sections, relocs) == _by_capstone(monkeypatch, md, sections, relocs)


def _fixtures():
    return sorted(p for p in (ELF / "x86_64").glob("*") if p.is_file() and not p.suffix) \
        if (ELF / "x86_64").is_dir() else []


def test_fixture_plts_are_read_from_the_templates_as_capstone_reads_them(monkeypatch):
    paths = _fixtures()
    if not paths:
        pytest.skip("no x86-64 ELF fixtures built")
    md = _md()
    for path in paths:
        sections, relocs = reader.text_sections(str(path))
        plts = [s for s in sections if s.name.startswith(".plt")]
        for sec in plts:
            assert callsites._x86_stubs_from_templates(sec.data, sec.address, relocs, {}), (path, sec.name)
        fast = callsites._stub_targets(md, "x86-64", sections, relocs)
        assert fast == _by_capstone(monkeypatch, md, sections, relocs), path
        assert fast or not plts or not relocs, path  # the fixtures call their imports through the PLT


@pytest.mark.skipif(not os.path.isdir("/usr/bin") or os.uname().machine != "x86_64",
                    reason="needs this machine's x86-64 /usr/bin")
def test_this_machines_plts_agree(monkeypatch):
    md = _md()
    checked = 0
    for name in sorted(os.listdir("/usr/bin"))[:400]:
        path = os.path.join("/usr/bin", name)
        if os.path.islink(path) or not reader.is_elf(path):
            continue
        try:
            sections, relocs = reader.text_sections(path)
        except reader.NotElf:
            continue
        if any(s.name.startswith(".plt") for s in sections):
            checked += 1
            assert callsites._stub_targets(md, "x86-64", sections, relocs) == \
                _by_capstone(monkeypatch, md, sections, relocs), path
    if not checked:
        pytest.skip("no x86-64 binary with a PLT in /usr/bin")
