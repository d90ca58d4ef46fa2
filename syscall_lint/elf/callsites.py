"""Import stubs and names: capstone for x86-64 and aarch64, PLT stubs resolved to imported names
through the PLT/GOT relocations, and glibc's internal names mapped to the public ones. The call
graph that uses them is in callgraph.py."""

from __future__ import annotations

import re

_HEX = re.compile(r"#?(0x[0-9a-f]+)")
_RIP = re.compile(r"\[rip ([+-]) (0x[0-9a-f]+)\]")


def _capstone(machine: str):
    import capstone

    if machine == "x86-64":
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    if machine == "aarch64":
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    return None


def _stub_targets(md, machine, sections, relocs) -> dict:
    """PLT stub address → imported name."""
    stubs = {}
    for name, addr, data in sections:
        if not name.startswith(".plt"):
            continue
        if machine == "x86-64":
            if _x86_stubs_from_templates(data, addr, relocs, stubs):
                continue
            for ins in md.disasm_lite(data, addr):
                address, _size, mnemonic, op = ins
                if mnemonic in ("jmp", "bnd jmp") and "rip" in op:
                    m = _RIP.search(op)
                    if m:
                        got = address + _size + (int(m.group(2), 16) * (1 if m.group(1) == "+" else -1))
                        if got in relocs:
                            stubs[address & ~0xF] = relocs[got]
        else:
            page = None
            start = None
            for address, _size, mnemonic, op in md.disasm_lite(data, addr):
                if mnemonic == "adrp":
                    m = _HEX.search(op)
                    page, start = (int(m.group(1), 16) if m else None), address
                elif mnemonic == "ldr" and page is not None and "x16" in op:
                    m = re.search(r"#(0x[0-9a-f]+)\]", op)
                    off = int(m.group(1), 16) if m else 0
                    got = page + off
                    if got in relocs:
                        stubs[start] = relocs[got]
                    page = None
    return stubs


# The instructions linkers write in x86-64 PLT sections (.plt, .plt.sec, .plt.got, lazy or IBT), as
# whole encodings: `jmp [rip + d32]` and `bnd jmp [rip + d32]` (_PLT_JUMP), and (_PLT_OTHER) `push
# [rip + d32]`, `push imm32`, `jmp rel32`, `bnd jmp rel32`, `endbr64`, and the nop and int3 padding.
# No encoding is a prefix of another, so a section made only of them splits into instructions one
# way, the way capstone's sweep splits it (tests/test_elf_plt_templates.py checks each against it).
_PLT_JUMP = rb"\xf2?\xff\x25"  # then the 4 displacement bytes
_PLT_OTHER = (rb"\xff\x35....|\x68....|\xf2?\xe9....|\xf3\x0f\x1e\xfa"
              rb"|\x0f\x1f(?:\x40\x00|\x00|\x44\x00\x00)|\x66(?:\x90|\x0f\x1f\x44\x00\x00"
              rb"|\x2e\x0f\x1f\x84\x00\x00\x00\x00\x00)|\x90|\xcc")
_PLT_SECTION = re.compile(rb"(?:" + _PLT_JUMP + rb"....|" + _PLT_OTHER + rb")*", re.DOTALL)
# each jump with the other instructions before it: matches start and end on instruction boundaries
_PLT_NEXT_JUMP = re.compile(rb"(?:" + _PLT_OTHER + rb")*(" + _PLT_JUMP + rb")(....)", re.DOTALL)


def _x86_stubs_from_templates(data: bytes, addr: int, relocs, stubs: dict) -> bool:
    """_stub_targets' x86-64 loop for a section made only of these encodings, read from the bytes
    instead of capstone's text (a PLT holds thousands of instructions); False, with `stubs`
    untouched, for any other section (capstone reads it)."""
    if _PLT_SECTION.fullmatch(data) is None:
        return False
    step, m = _PLT_NEXT_JUMP.match, _PLT_NEXT_JUMP.match(data)
    while m is not None:  # anchored at each jump's end: a search could start inside an instruction
        at = m.end()
        d = int.from_bytes(m.group(2), "little", signed=True)
        if not -10 < d < 10:  # capstone writes those as `[rip]` or `[rip + 8]`, which _RIP does not read
            address = addr + m.start(1)
            got = addr + at + d
            if got in relocs:
                stubs[address & ~0xF] = relocs[got]
        m = step(data, at)
    return True


def _base(name: str) -> str:
    """`__libc_accept`, `accept@plt`, `__accept` → `accept` (static binaries use glibc's internal names)."""
    if name[:2] != "__" and "@" not in name:  # most names: nothing to strip
        return name
    name = name.split("@", 1)[0]
    for prefix in ("__libc_", "__GI___", "__GI_", "__"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name
