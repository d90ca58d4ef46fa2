"""Which functions call which imports, and in which loops: capstone over x86-64 and aarch64 code.

Import stubs are resolved to names through the PLT/GOT relocations (dynamic binaries) or the symbol
table (static ones). A loop is a backward branch inside a function; `accept` and `pthread_create`
called inside the same loop is the thread-per-connection shape.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

MAX_CODE = 64 << 20  # disassemble at most this much code per binary
MAX_LOOP = 4096  # bytes: an accept loop that starts a handler is small
_HEX = re.compile(r"#?(0x[0-9a-f]+)")
_RIP = re.compile(r"\[rip ([+-]) (0x[0-9a-f]+)\]")


@dataclass
class CodeMap:
    calls: list = field(default_factory=list)  # (address, target name)
    loops: list = field(default_factory=list)  # (start, end) of backward branches
    functions: list = field(default_factory=list)  # (start, end, name)
    _starts: list = field(default_factory=list)

    def function_at(self, addr):
        if len(self._starts) != len(self.functions):
            self._starts = [f[0] for f in self.functions]
        starts = self._starts
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and self.functions[i][0] <= addr < self.functions[i][1]:
            return self.functions[i]
        return None


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


def build(info, sections, relocs, interesting: set) -> CodeMap | None:
    """Call sites of the `interesting` imports, and the functions that hold them.

    Direct calls are found by scanning the code bytes for call/branch encodings that land on an
    interesting stub (cheap); only functions holding calls of both groups are disassembled later."""
    md = _capstone(info.machine)
    if md is None:
        return None
    md.skipdata = True
    targets = _stub_targets(md, info.machine, sections, relocs)
    if info.static or not targets:
        for addr, _size, name in info.functions:
            if _base(name) in interesting:
                targets.setdefault(addr, name)
    wanted = {addr: name for addr, name in targets.items() if _base(name) in interesting}
    got = {slot: name for slot, name in relocs.items() if _base(name) in interesting}
    code = CodeMap()
    code.functions = _functions(info, sections)
    total = 0
    for name, base, data in sections:
        if name.startswith(".plt") or name in (".init", ".fini"):
            continue
        total += len(data)
        if total > MAX_CODE:
            break
        if info.machine == "x86-64":
            _scan_x86(base, data, wanted, got, code.calls)
        else:
            _scan_a64(base, data, wanted, code.calls)
    return code


_X86_CALL = re.compile(rb"[\xe8\xe9]|\xff\x15", re.S)
_A64_BRANCH = re.compile(rb"[\x14-\x17\x94-\x97]")


def _scan_x86(base, data, wanted, got, calls) -> None:
    frombytes = int.from_bytes
    for m in _X86_CALL.finditer(data):
        pos = m.start()
        if data[pos] == 0xFF:
            if pos + 6 <= len(data):
                slot = base + pos + 6 + frombytes(data[pos + 2:pos + 6], "little", signed=True)
                if slot in got:
                    calls.append((base + pos, got[slot]))
        elif pos + 5 <= len(data):
            target = base + pos + 5 + frombytes(data[pos + 1:pos + 5], "little", signed=True)
            if target in wanted:
                calls.append((base + pos, wanted[target]))


def _scan_a64(base, data, wanted, calls) -> None:
    for m in _A64_BRANCH.finditer(data):
        pos = m.start()
        if pos % 4 != 3:
            continue
        word = int.from_bytes(data[pos - 3:pos + 1], "little")
        imm = word & 0x3FFFFFF
        if imm & 0x2000000:
            imm -= 1 << 26
        target = base + pos - 3 + imm * 4
        if target in wanted:
            calls.append((base + pos - 3, wanted[target]))


def loops_in(info, sections, func, md) -> list:
    """Backward branches inside one function, by disassembling just that function."""
    start, end, _ = func
    if end - start > 1 << 20:
        return []
    x86 = info.machine == "x86-64"
    for _name, base, data in sections:
        if not base <= start < base + len(data):
            continue
        chunk = data[start - base:min(end, base + len(data)) - base]
        loops = []
        for address, _size, mnemonic, op in md.disasm_lite(chunk, start):
            if (x86 and mnemonic[0] == "j") or (not x86 and (mnemonic == "b" or mnemonic.startswith(("b.", "cb", "tb")))):
                m = _HEX.search(op)
                if m:
                    target = int(m.group(1), 16)
                    if start <= target < address:
                        loops.append((target, address))
        return loops
    return []


def _functions(info, sections) -> list:
    funcs = [(a, a + s, n) for a, s, n in info.functions if s]
    if funcs:
        return funcs
    from syscall_lint.elf.reader import eh_frame_starts

    # Stripped: the unwind table's sorted function starts give the boundaries
    starts = eh_frame_starts(info.path)
    if starts:
        ends = starts[1:] + [max(base + len(data) for _, base, data in sections)]
        return [(a, b, f"sub_{a:x}") for a, b in zip(starts, ends)]
    return [(addr, addr + len(data), name) for name, addr, data in sections]


def same_loop(info, sections, code: CodeMap, first: set, second: set):
    """(function, loop start, loop end) where a call to one of `first` and one of `second` sit in one loop."""
    a_calls = [addr for addr, name in code.calls if _base(name) in first]
    b_calls = [addr for addr, name in code.calls if _base(name) in second]
    if not a_calls or not b_calls:
        return None
    candidates = {code.function_at(a) for a in a_calls} & {code.function_at(b) for b in b_calls}
    md = _capstone(info.machine)
    md.skipdata = True
    for func in sorted(f for f in candidates if f is not None):
        for start, end in loops_in(info, sections, func, md):
            if end - start > MAX_LOOP:
                continue
            if any(start <= a <= end for a in a_calls) and any(start <= b <= end for b in b_calls):
                if any(start <= addr <= end for addr, name in code.calls if _base(name) == "listen"):
                    continue  # the loop re-creates its listening socket: one connection at a time
                return func[2], start, end
    return None


def _base(name: str) -> str:
    """`__libc_accept`, `accept@plt`, `__accept` → `accept` (static binaries use glibc's internal names)."""
    name = name.split("@", 1)[0]
    for prefix in ("__libc_", "__GI___", "__GI_", "__"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name
