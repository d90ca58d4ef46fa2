"""Calls through a function pointer held in a structure slot, and the functions stored in such slots.

An indirect call that loads its target from [base + offset] (x86-64 `mov rax,[rax+0x20]; jmp rax`
or `call [rax+0x20]`; aarch64 `ldr x1,[x1,#32]; br x1`) may reach the functions whose address the
code stores into a slot at the same offset (`lea rax,[rip+F]; mov [rbx+0x20],rax`; aarch64
`adrp; add` or a GOT load, then `str`/`stp`). An offset alone names no type, so a store counts only
when the storing function also writes every other field the calling function reads from the same
structure (mariadb's `create_new_thread` reads fields 0x8, 0x10 and 0x20 of its scheduler; the
scheduler set-up functions write all three). A slot with more candidates than MAX_CANDIDATES, or
none, gives no evidence. Stores from data initialisers (a static table) are not seen.
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import dataclass

from syscall_lint.elf.callgraph import descend

MAX_CANDIDATES = 6  # functions per slot: more, and the slot says nothing about this call
WINDOW = 8  # instructions after the address is made in which the store must follow
_X86_LEA_RIP = re.compile(rb"[\x48\x4c]\x8d[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]", re.S)
_X86_INDIRECT = re.compile(rb"\xff[\x50-\x57\x60-\x67\x90-\x97\xa0-\xa7\xd0-\xd7\xe0-\xe7]")
_MEM = re.compile(r"\[(\w+)(?: \+ (0x[0-9a-f]+|\d+))?\]")
_A64_MEM = re.compile(r"\[(\w+)(?:, #(0x[0-9a-f]+|\d+))?\]$")


@dataclass(frozen=True)
class SlotCall:
    site: int
    offset: int  # of the slot in its structure
    fields: frozenset  # the other offsets the calling function reads from the same structure
    tail: bool


@dataclass(frozen=True)
class SlotStore:
    target: int  # the function stored
    offset: int
    writer: int  # start of the function that stores it
    site: int


def may_call_indirectly(machine: str, data: bytes) -> bool:
    """A cheap screen of one function's bytes before it is disassembled."""
    if machine == "x86-64":
        return _X86_INDIRECT.search(data) is not None
    words = struct.unpack_from(f"<{len(data) // 4}I", data)
    return any((w & 0xFFFFFC1F) in (0xD63F0000, 0xD61F0000) for w in words)  # blr / br


_A64_ADRP = bytes(int(b & 0x9F == 0x90) for b in range(256))  # top byte of `adrp` → 1
_REGISTER = re.compile(r"^(r[a-z0-9]+|x\d+)$")


def _is_register(text: str) -> bool:
    """A 64-bit general register (a pointer can be copied only through one of these)."""
    return _REGISTER.match(text) is not None and text not in ("rsp", "rbp", "rip")


def _int(text) -> int:
    return int(text, 0) if text else 0


def slot_calls(machine: str, insns: list) -> list:
    """[SlotCall] of one function's disassembly (capstone's lite tuples)."""
    x86 = machine == "x86-64"
    loaded = {}  # register → (offset loaded, key of the structure it was loaded from)
    origin = {}  # register → key naming the structure it points to (the load that made it)
    reads = {}  # structure key → offsets read from it
    out = []
    for addr, _size, mnem, ops in insns:
        parts = [p.strip() for p in ops.split(",", 1)] if ops else []
        if x86 and mnem in ("call", "jmp") and parts:
            m = _MEM.search(parts[0])
            if m and parts[0].startswith("qword ptr [") and m.group(1) != "rip":
                key = origin.get(m.group(1), ("reg", m.group(1)))
                reads.setdefault(key, set()).add(_int(m.group(2)))
                out.append((addr, _int(m.group(2)), key, mnem == "jmp"))
            elif parts[0] in loaded:
                off, key = loaded[parts[0]]
                out.append((addr, off, key, mnem == "jmp"))
            continue
        if not x86 and mnem in ("blr", "br") and parts:
            if parts[0] in loaded:
                off, key = loaded[parts[0]]
                out.append((addr, off, key, mnem == "br"))
            continue
        if len(parts) != 2:
            continue
        dest, src = parts
        if (x86 and mnem == "mov" and src.startswith("qword ptr [")) or (not x86 and mnem == "ldr" and dest.startswith("x")):
            m = (_MEM if x86 else _A64_MEM).search(src)
            if m and m.group(1) not in ("rip", "sp", "rsp", "rbp"):
                base, off = m.group(1), _int(m.group(2))
                key = origin.get(base, ("reg", base))
                reads.setdefault(key, set()).add(off)
                loaded[dest] = (off, key)
                origin[dest] = ("field", off)  # a pointer read from a field: keyed by that field
                continue
        if mnem == "mov" and (src in loaded or src in origin or _is_register(src)):  # a copy (`mov x16, x1`)
            if src in loaded:
                loaded[dest] = loaded[src]
            else:
                loaded.pop(dest, None)
            origin[dest] = origin.get(src, ("reg", src))
            continue
        loaded.pop(dest, None)
        origin.pop(dest, None)
    return [SlotCall(site, off, frozenset(reads.get(key, set()) - {off}), tail) for site, off, key, tail in out]


def slot_stores(machine: str, sections, starts: set, function_at, md, got: dict) -> dict:
    """offset → [SlotStore] of every function address stored into a structure slot by code."""
    found = []
    if machine == "x86-64":
        for sec in sections:
            data, base = sec.data, sec.address
            for pos, target in _x86_lea_targets(base, data, starts):
                reg = ((data[pos] >> 2) & 1) << 3 | (data[pos + 2] >> 3) & 7
                if not _x86_may_store(data[pos + 7:pos + 7 + 8 * WINDOW], reg):
                    continue
                insns = list(md.disasm_lite(data[pos:pos + 7 + 8 * WINDOW], base + pos))
                if not insns or insns[0][2] != "lea":
                    continue
                hit = _x86_store(insns)
                if hit is not None:
                    found.append((target,) + hit)
    else:
        for sec in sections:
            data, base = sec.data, sec.address
            n = len(data) // 4
            # read word by word on demand: unpacking a 9 MB text at once holds 2 million ints
            words = memoryview(data[:4 * n]).cast("I") if sys.byteorder == "little" else struct.unpack_from(f"<{n}I", data)
            # the adrp words that can make a function's address: on arrays, else from their top
            # bytes by C loops (a large binary has millions of words)
            from syscall_lint.elf import vector

            keys = vector.sorted_keys(starts)
            chosen = _a64_adrp_making(data, base, keys, got) if keys is not None else None
            if chosen is None:
                marks = data[3::4][:n].translate(_A64_ADRP)
                chosen = [m.start() for m in re.finditer(b"\x01", marks)]
            for i in chosen:
                w = words[i]
                if i + 1 >= n:
                    continue
                rd = w & 31
                imm = (((w >> 5) & 0x7FFFF) << 2) | ((w >> 29) & 3)
                imm -= (imm & 0x100000) << 1
                page = ((base + 4 * i) & ~0xFFF) + (imm << 12)
                # the low 12 bits come from the first later `add`/`ldr` through the register
                # (compilers schedule other instructions, even a second adrp, in between)
                address = reg = None
                through_got = False
                for k in range(i + 1, min(n, i + 1 + WINDOW)):
                    nxt = words[k]
                    if (nxt >> 5) & 31 == rd and (nxt & 0xFFC00000) == 0x91000000:  # add xN, xd, #lo12
                        address, reg = page + ((nxt >> 10) & 0xFFF), nxt & 31
                        break
                    if (nxt >> 5) & 31 == rd and (nxt & 0xFFC00000) == 0xF9400000:  # ldr xN, [xd, #slot]
                        address, reg, through_got = page + ((nxt >> 10) & 0xFFF) * 8, nxt & 31, True
                        break
                    if nxt & 31 == rd:  # the page register is written again
                        break
                if reg is None or (not through_got and address not in starts):
                    continue
                store = None
                for j in range(k + 1, min(n, k + 1 + WINDOW)):
                    s = words[j]
                    rn = (s >> 5) & 31
                    if (s & 0xFFC00000) == 0xF9000000 and s & 31 == reg and rn != 31:  # str
                        store = (((s >> 10) & 0xFFF) * 8, f"x{rn}", base + 4 * j)
                        break
                    if (s & 0xFFC00000) == 0xA9000000 and rn != 31 and reg in (s & 31, (s >> 10) & 31):  # stp
                        off = ((s >> 15) & 0x7F) - (((s >> 15) & 0x40) << 1)
                        store = (off * 8 + (8 if (s >> 10) & 31 == reg and s & 31 != reg else 0), f"x{rn}", base + 4 * j)
                        break
                    if s & 31 == reg and (s & 0x3B000000) != 0x39000000:  # the register is written again
                        break
                if store is None:
                    continue
                # a GOT slot is looked up only now: most GOT loads are not stored anywhere
                target = got.get(address) if through_got else address
                if target in starts:
                    found.append((target,) + store)
    out = {}
    for target, offset, base_reg, site in found:
        func = function_at(site)
        if func is not None:
            out.setdefault(offset, []).append((SlotStore(target, offset, func.start, site), base_reg))
    return out


def _x86_lea_targets(base: int, data: bytes, starts: set):
    """(offset, function start) of every `lea r64, [rip + disp32]` that makes a function's address:
    on arrays when numpy is there (a large text holds ~100,000 such leas, most of data)."""
    from syscall_lint.elf import vector

    if vector.ENABLED and base + len(data) < vector.LIMIT and len(data) > 16:
        np = vector.np
        raw = np.frombuffer(data, dtype=np.uint8)
        at = np.flatnonzero(raw[1:-6] == 0x8D) + 1  # the opcode, with a REX byte before it and 4 bytes after
        at = at[((raw[at - 1] & 0xFB) == 0x48) & ((raw[at + 1] & 0xC7) == 0x05)]
        disp = (raw[at + 2].astype(np.int64) | raw[at + 3].astype(np.int64) << 8 | raw[at + 4].astype(np.int64) << 16
                | raw[at + 5].astype(np.int64) << 24)
        disp = disp - ((disp & 0x80000000) << 1)
        pos = at - 1
        target = pos + base + 7 + disp
        keys = np.sort(np.fromiter(starts, dtype=np.int64, count=len(starts)))
        keep = vector._member(target, keys)
        return list(zip(pos[keep].tolist(), target[keep].tolist()))
    out = []
    for m in _X86_LEA_RIP.finditer(data):
        pos = m.start()
        if pos + 7 > len(data):
            continue
        target = base + pos + 7 + struct.unpack_from("<i", data, pos + 3)[0]
        if target in starts:
            out.append((pos, target))
    return out


def vector_array(values):
    from syscall_lint.elf import vector

    return vector.np.array(values, dtype=vector.np.int64)


def _a64_adrps(base: int, data: bytes):
    """Every `adrp` of an aarch64 text on arrays: (numpy, the words, their count, the adrps' word
    indices, the pages they make, their destination registers); None without numpy."""
    from syscall_lint.elf import vector

    if not vector.ENABLED or base + len(data) >= vector.LIMIT:
        return None
    np = vector.np
    n = len(data) // 4
    words = np.frombuffer(data, dtype="<u4", count=n)  # a view: only the gathered words are widened
    at = np.flatnonzero((words & 0x9F000000) == 0x90000000).astype(np.int64)
    w = words[at].astype(np.int64)
    imm = ((w >> 5) & 0x7FFFF) << 2 | ((w >> 29) & 3)
    imm = imm - ((imm & 0x100000) << 1)
    page = ((at * 4 + base) & ~0xFFF) + (imm << 12)
    return np, words, n, at, page, w & 31


def _a64_addresses(base: int, data: bytes):
    """(addresses made by `adrp` + `add`, GOT slots read by `adrp` + `ldr`) within WINDOW words, on
    arrays: a superset of what slot_stores pairs (a screen); None without numpy."""
    found = _a64_adrps(base, data)
    if found is None:
        return None
    np, words, n, at, page, rd = found
    direct, slots = [], []
    for k in range(1, WINDOW + 1):
        ok = at + k < n
        nxt = words[np.minimum(at + k, n - 1)].astype(np.int64)
        same = ok & (((nxt >> 5) & 31) == rd)
        add = same & ((nxt & 0xFFC00000) == 0x91000000)
        ldr = same & ((nxt & 0xFFC00000) == 0xF9400000)
        direct.append((page + ((nxt >> 10) & 0xFFF))[add])
        slots.append((page + ((nxt >> 10) & 0xFFF) * 8)[ldr])
    return set(np.concatenate(direct).tolist()), set(np.concatenate(slots).tolist())


def _a64_adrp_making(data: bytes, base: int, starts_keys, got) -> list | None:
    """Word indices of the `adrp`s whose pair (within WINDOW words) makes one of the sorted
    `starts_keys`, directly or through a GOT slot; None without numpy (every adrp is then read)."""
    found = _a64_adrps(base, data)
    if found is None:
        return None
    np, words, n, at, page, rd = found
    from syscall_lint.elf import vector

    keep = np.zeros(len(at), dtype=bool)
    for k in range(1, WINDOW + 1):
        nxt = words[np.minimum(at + k, n - 1)].astype(np.int64)
        same = (at + k < n) & (((nxt >> 5) & 31) == rd)
        add = same & ((nxt & 0xFFC00000) == 0x91000000)
        keep |= add & vector._member(page + ((nxt >> 10) & 0xFFF), starts_keys)
        ldr = same & ((nxt & 0xFFC00000) == 0xF9400000)
        if hasattr(got, "holds") and ldr.any():
            keep[ldr] |= got.holds((page + ((nxt >> 10) & 0xFFF) * 8)[ldr], starts_keys)
        elif ldr.any():
            return None
    return at[keep].tolist()


def _x86_may_store(window: bytes, reg: int) -> bool:
    """Do these bytes hold a `mov r/m64, reg` (a store or a copy of the register) or a `movq xmm, reg`?
    A screen before capstone: most addresses a `lea` makes are passed as arguments."""
    at = window.find(b"\x89")
    while at > 0:
        rex = window[at - 1]
        if at + 1 < len(window) and rex & 0xF8 == 0x48 and (rex >> 2) & 1 == reg >> 3 \
                and (window[at + 1] >> 3) & 7 == reg & 7:
            return True
        at = window.find(b"\x89", at + 1)
    at = window.find(b"\x0f\x6e")
    while at > 0:
        if at + 2 < len(window) and window[at - 1] & 1 == reg >> 3 and window[at + 2] >> 6 == 3 \
                and window[at + 2] & 7 == reg & 7:
            return True
        at = window.find(b"\x0f\x6e", at + 1)
    return False


_VECTOR_STORES = ("movups", "movdqu", "movaps", "movdqa")


def _x86_store(insns: list):
    """(offset, base register, site) of the store of the address a `lea` made, through copies and
    GCC's pairing of two pointers in one 16-byte store (`movq xmm, reg; punpcklqdq; movups`)."""
    lane = {insns[0][3].split(",")[0].strip(): 0}  # where the address is → its offset in that register
    for addr, _size, mnem, ops in insns[1:WINDOW + 1]:
        dest, _, src = (p.strip() for p in ops.partition(","))
        if (mnem == "mov" and dest.startswith("qword ptr [") or mnem in _VECTOR_STORES and dest.startswith("xmmword ptr [")) \
                and src in lane:
            m = _MEM.search(dest)
            if m and m.group(1) not in ("rip", "rsp", "rbp"):
                return _int(m.group(2)) + lane[src], m.group(1), addr
            return None
        if mnem in ("mov", "movq") and src in lane and (dest.startswith("r") or dest.startswith("xmm")):
            lane[dest] = lane[src]
            continue
        if mnem == "punpcklqdq" and src in lane:  # the source's low half becomes the high half
            lane[dest] = 8
            continue
        if mnem == "punpcklqdq" and dest in lane:
            continue
        lane.pop(dest, None)
        if not lane:
            return None
    return None


_CALLER_SAVED = frozenset({"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"} | {f"x{i}" for i in range(19)})
_NO_DEST = frozenset({"cmp", "test", "push", "str", "stp", "stur", "strb", "strh", "cbz", "cbnz", "tbz", "tbnz",
                      "cmn", "tst", "ret", "b", "jmp", "nop", "prfm"})


def _aliases(reg: str) -> set:
    """A 64-bit register's names (a write to its 32-bit half replaces it too)."""
    if reg.startswith("x"):
        return {reg, "w" + reg[1:]}
    if reg[1:].isdigit() or reg[1:2].isdigit():  # r8 … r15
        return {reg, reg + "d"}
    return {reg, "e" + reg[1:]}


def _writes(mnem: str, ops: str, names: set, caller_saved: bool) -> bool:
    """Does this instruction give one of `names` a new value? (A call does, to a caller-saved one.)"""
    if mnem.startswith(("call", "bl")):
        return caller_saved
    first = ops.split(",", 1)[0].strip()
    if mnem in _NO_DEST or mnem.startswith(("j", "b.", "st")) or "ptr [" in first:
        return False  # a compare, a branch or a store: no register written
    parts = [p.strip() for p in ops.split(",")]
    dests = parts[:2] if mnem in ("ldp", "ldnp", "ldaxp", "ldxp") else parts[:1]
    return any(d in names for d in dests)


_FRAME = re.compile(r"\[(rbp|rsp|sp|x29)(?:[ ,+#-]+[0-9a-fx]+)?\]$")


def _frame_slot(insn):
    """The stack slot a load reads (`mov rax, qword ptr [rbp - 0x18]`, `ldr x0, [sp, #0x18]`), or None."""
    _addr, _size, mnem, ops = insn
    if mnem not in ("mov", "ldr", "ldur"):
        return None
    src = ops.split(",", 1)[1].strip() if "," in ops else ""
    src = src.replace("qword ptr ", "")
    return src if _FRAME.search(src) else None


def fields_written(machine: str, insns: list, base_reg: str, site: int) -> set:
    """Offsets a function stores to through `base_reg` while it holds the value it has at `site` (the
    code laid out around the store up to the register's redefinitions; a 16-byte store counts for
    two fields)."""
    names = _aliases(base_reg)
    caller_saved = base_reg in _CALLER_SAVED
    at = next((i for i, insn in enumerate(insns) if insn[0] == site), None)
    if at is None:
        return set()
    lo = at
    while lo > 0 and not _writes(insns[lo - 1][2], insns[lo - 1][3], names, caller_saved):
        lo -= 1
    # at -O0 the pointer lives in a stack slot and is reloaded before each store: a reload of the
    # same slot keeps the same value
    slot = _frame_slot(insns[lo - 1]) if lo > 0 else None

    def ends(i):
        return _writes(insns[i][2], insns[i][3], names, caller_saved) and (slot is None or _frame_slot(insns[i]) != slot)

    while lo > 0 and not ends(lo - 1):
        lo -= 1
    hi = at + 1
    while hi < len(insns) and not ends(hi):
        hi += 1
    if hi < len(insns):
        hi += 1  # a store through the register may be the instruction that ends its life (a call)
    out = set()
    pattern = _MEM
    for _addr, _size, mnem, ops in insns[lo:hi]:
        if machine == "x86-64":
            if not mnem.startswith("mov"):
                continue
            dest = ops.split(",", 1)[0]
            m = pattern.search(dest)
            if m and m.group(1) == base_reg:
                off = _int(m.group(2))
                out.add(off)
                if dest.startswith("xmmword"):
                    out.add(off + 8)
        elif mnem in ("str", "stp", "stur"):
            m = re.search(r"\[(\w+)(?:, #(-?0x[0-9a-f]+|-?\d+))?\]", ops)
            if m and m.group(1) == base_reg:
                off = _int(m.group(2))
                out.add(off)
                if mnem == "stp" and ops.startswith("x"):
                    out.add(off + 8)
                elif mnem == "stp" or ops.startswith("q"):
                    out.add(off + 4 if ops.startswith("w") else off + 8)
    return out

MAX_FUNCTIONS = 64  # functions disassembled for their slot calls in one search (a bound on time)


class PointerIndex:
    """Slot calls and slot stores of one binary, found on demand (only a loop that accepts and reaches
    no spawn by direct calls asks)."""

    def __init__(self, info, sections, graph):
        from syscall_lint.elf.callsites import _capstone

        self.info, self.sections, self.graph = info, sections, graph
        self.machine = info.machine
        self._md = _capstone(info.machine)
        self._md.skipdata = True
        self._stores = None
        self._taken = None
        self._got = None
        self._calls = {}
        self._fields = {}

    def _insns(self, start):
        func = self.graph.function(start)
        return self.graph.instructions(self.info, self.sections, func, self._md) if func is not None else []

    def _bytes(self, func) -> bytes:
        for sec in self.sections:
            if sec.address <= func.start < sec.address + len(sec.data):
                return sec.data[func.start - sec.address:func.end - sec.address]
        return b""

    def slot_calls_of(self, start: int) -> list:
        if start not in self._calls:
            func = self.graph.function(start)
            found = []
            if func is not None and may_call_indirectly(self.machine, self._bytes(func)):
                found = slot_calls(self.machine, self._insns(start))
            self._calls[start] = found
        return self._calls[start]

    def may_hold(self, nodes) -> bool:
        """Could a slot hold one of these functions — is the address of one of them made anywhere in
        the code? (x86-64: a `lea` of it, found on arrays; aarch64 is not screened.) Most binaries
        that get here have none, and the slot stores are never collected."""
        if self._taken is None:
            starts = set(self.graph._starts)
            code = [sec for sec in self.sections if not sec.name.startswith(".plt")]
            if self.machine == "x86-64":
                self._taken = {target for sec in code for _pos, target in _x86_lea_targets(sec.address, sec.data, starts)}
            else:
                made = [_a64_addresses(sec.address, sec.data) for sec in code]
                if any(m is None for m in made):
                    self._taken = True  # not screened without numpy
                else:
                    self._taken = {a for direct, _slots in made for a in direct}
                    slots = [slot for _direct, got_slots in made for slot in got_slots]
                    got = self._relative() if slots else {}
                    if hasattr(got, "found"):
                        self._taken.update(got.found(vector_array(slots)))
        if self._taken is True:
            return True
        return any(isinstance(n, int) and n in self._taken for n in nodes)

    def _relative(self):
        """The binary's R_*_RELATIVE slots, read once."""
        from syscall_lint.elf.reader import relative_addends

        if self._got is None:
            self._got = relative_addends(self.info.path, self.machine)
        return self._got

    def stores(self) -> dict:
        if self._stores is None:
            got = self._relative() if self.machine == "aarch64" else {}
            starts = set(self.graph._starts)
            self._stores = slot_stores(self.machine, [s for s in self.sections if not s.name.startswith(".plt")],
                                       starts, self.graph.function_at, self._md, got)
        return self._stores

    def candidates(self, call: SlotCall) -> list:
        """Functions stored into this slot by code that writes every other field the call's function
        reads from the same structure."""
        out = []
        for store, base_reg in self.stores().get(call.offset, ()):
            key = (store.writer, base_reg, store.site)
            if key not in self._fields:
                self._fields[key] = fields_written(self.machine, self._insns(store.writer), base_reg, store.site)
            if call.fields <= self._fields[key] and store.target not in out:
                out.append(store.target)
        return out

    def reach(self, start: int, dist: dict, budget: int, label):
        """(chain of names, description) when code reached from `start` by direct calls makes a slot
        call whose candidates (at most MAX_CANDIDATES) include one reaching a `dist` name within
        `budget` calls in all; else None."""
        seen = {start}
        frontier = [(start, (label(start),))]
        disassembled = 0
        for level in range(budget):
            following = []
            for node, path in frontier:
                if self.graph.function(node) is None:
                    continue
                disassembled += 1
                if disassembled > MAX_FUNCTIONS:
                    return None
                for call in self.slot_calls_of(node):
                    cands = self.candidates(call)
                    if not cands or len(cands) > MAX_CANDIDATES:
                        continue
                    hits = [c for c in cands if c in dist and level + 1 + dist[c] <= budget]
                    if hits:
                        names = ", ".join(label(c) for c in cands)
                        description = (f"through a function pointer (slot +{call.offset:#x} called in {label(node)}; "
                                       f"functions stored in that slot: {names})")
                        return path + descend(self.graph.sites, hits[0], dist, label), description
                for site in self.graph.sites.get(node, ()):
                    if isinstance(site.target, int) and site.target not in seen:
                        seen.add(site.target)
                        following.append((site.target, path + (label(site.target),)))
            frontier = following
        return None
