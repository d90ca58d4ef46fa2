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


def _base(name: str) -> str:
    """`__libc_accept`, `accept@plt`, `__accept` → `accept` (static binaries use glibc's internal names)."""
    if name[:2] != "__" and "@" not in name:  # most names: nothing to strip
        return name
    name = name.split("@", 1)[0]
    for prefix in ("__libc_", "__GI___", "__GI_", "__"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name
