"""SCL501 in aarch64 code: spin-wait loops that re-read shared memory with plain loads, found from a
control-flow graph of each candidate loop.

1. Candidates come from the raw instruction words, without disassembling: aarch64 encodings are
   fixed-width, so a backward conditional branch (B.cond, CBZ/CBNZ, TBZ/TBNZ) or a backward B with
   a short offset is found by a byte pattern and two masks. Only a window around each is
   disassembled.
2. In the window, blocks and the back-edge's natural loop (cfg.py): rotated loops (a forward exit
   and an unconditional back-edge), several back-edges to one header and forward exits are all one
   loop. Hints (`yield`, `nop`, `isb`, `wfe`) and address materialisation (`adrp`/`add`) are neutral.
3. One pass over the body with simple def-use and constant propagation; stack slots (`[sp, #n]`,
   `[x29, #n]`) are registers, as -O0 code keeps every variable in one. The loop is a spin when it
   stores nothing to memory, calls nothing, makes no progress (no value it reads from the previous
   pass is rewritten: no counter, no walk), and its exit condition depends on a plain load from an
   address that is the same on every pass.
4. Not reported: an acquire load, exclusive or atomic, or a barrier in the loop; an acquire or a
   barrier right after the exit (a relaxed spin then `dmb ish` or an acquire: correct, and
   test-and-test-and-set, a spin followed by an acquire read-modify-write, inline or an
   outline-atomics helper call); a real address dependency from the polled value to the next load
   (a register rewritten by `adrp` is no dependency); a fence or acquire read-modify-write just
   before the loop (the lock is already held: haproxy's plock drain loops); a comparison with a
   code address (a devirtualised call's guard, not a poll).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from syscall_lint.elf import cfg, vector

PLAIN_LOADS = frozenset({"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrsw", "ldur", "ldurb", "ldurh", "ldursb",
                         "ldursh", "ldursw", "ldp", "ldpsw"})
ACQUIRE_LOADS = re.compile(r"^(ldar|ldapr|ldapur|ldaxr|ldaxp|ldxr|ldxp|ldlar)")
ATOMICS = re.compile(r"^(cas|swp|ldadd|ldclr|ldeor|ldset|ldsmax|ldsmin|ldumax|ldumin|stadd|stclr|steor|stset|"
                     r"stxr|stlxr|stxp|stlxp|stlr|stllr|stlur)")
# an atomic read-modify-write with acquire semantics: casa/casal, swpa/swpal, ldadda/ldaddal, …
ACQUIRE_RMW = re.compile(r"^(cas|swp|ldadd|ldclr|ldeor|ldset|ldsmax|ldsmin|ldumax|ldumin)(a|al)[bh]?$")
STORES = re.compile(r"^(str|stur|stp|stnp|st1|st2|st3|st4|stg|stz)")
HINTS = frozenset({"yield", "nop", "isb", "wfe", "wfi", "sevl", "sev", "hint", "prfm", "prfum", "bti", "paciasp",
                   "autiasp", "pacibsp", "autibsp"})
COMPARES = frozenset({"cmp", "cmn", "tst", "ccmp", "ccmn", "fcmp", "fccmp"})
LOAD_BARRIERS = re.compile(r"^dmb\s*(ish|ishld|sy|ld|osh|oshld|nsh|nshld)?$")
MAX_SPAN = 192  # bytes between a loop's header and its branch back (MAX_BODY instructions)
MAX_BODY = 48  # instructions in a spin loop's body
BEFORE = 16  # instructions looked at before the header
AFTER = 24  # instructions followed after an exit
WINDOW_BEFORE = BEFORE * 4 + 16
WINDOW_AFTER = 1024

# Candidates from raw words: the top byte of B.cond (0x54), CBZ/CBNZ (0x34/0x35/0xb4/0xb5),
# TBZ/TBNZ (0x36/0x37/0xb6/0xb7) and B (0x17, backward). A branch back by 4 to MAX_SPAN bytes has
# an offset field of all ones above its low bits, so the word's third byte is fixed: 0xff for
# B.cond, CBZ/CBNZ and B, low three bits 111 for TBZ/TBNZ (a branch to itself has an empty body:
# never a candidate). Each word's third and top bytes are classed by `translate` (two disjoint
# alphabets, so a match cannot straddle two words) and interleaved, and one regex finds the short
# backward branches: the per-match Python work is left to those (a superset: the exact offset is
# checked on each).
assert MAX_SPAN <= 2048  # the fixed third byte holds for offsets within 2 KiB


def _table(classes: dict, other: bytes) -> bytes:
    return bytes(next((c for c, test in classes.items() if test(b)), other)[0] for b in range(256))


_TOP_CLASS = _table({b"a": lambda b: b == 0x54 or b & 0x7E == 0x34, b"b": lambda b: b & 0x7E == 0x36,
                     b"c": lambda b: b == 0x17}, b".")
_THIRD_CLASS = _table({b"F": lambda b: b == 0xFF, b"S": lambda b: b & 7 == 7}, b"-")
_SHORT_BACK = re.compile(rb"F[ac]|[FS]b")
_REG = re.compile(r"\b([wx])(\d+)\b|\b(sp|wsp|xzr|wzr)\b")
_MEM = re.compile(r"\[([wx]\d+|sp)(?:, #(-?0x[0-9a-f]+|-?\d+))?\](!?)(?:, #(-?0x[0-9a-f]+|-?\d+))?")
_IMM = re.compile(r"#(-?0x[0-9a-f]+|-?\d+)")


@dataclass(frozen=True)
class Spin:
    start: int  # the loop header
    end: int  # the branch back
    load: str  # the plain load's mnemonic
    operand: str  # the polled location as written
    address: int  # the load's address


def candidates(base: int, data: bytes) -> list:
    """(header, branch) of every backward branch within MAX_SPAN bytes, from the raw words."""
    fast = vector.spin_candidates(base, data, MAX_SPAN)
    if fast is not None:  # numpy ran the same screen on arrays
        return fast
    out = []
    frombytes = int.from_bytes
    words = len(data) // 4
    pairs = bytearray(2 * words)
    pairs[0::2] = data[2:4 * words:4].translate(_THIRD_CLASS)
    pairs[1::2] = data[3:4 * words:4].translate(_TOP_CLASS)
    for m in _SHORT_BACK.finditer(pairs):
        pos = m.start() * 2 + 3
        word = frombytes(data[pos - 3:pos + 1], "little")
        if (word & 0xFF000010) == 0x54000000 or (word & 0x7E000000) == 0x34000000:
            imm = (word >> 5) & 0x7FFFF
            off = (imm - (1 << 19) if imm & (1 << 18) else imm) * 4
        elif (word & 0x7E000000) == 0x36000000:
            imm = (word >> 5) & 0x3FFF
            off = (imm - (1 << 14) if imm & (1 << 13) else imm) * 4
        elif (word & 0xFC000000) == 0x14000000:
            imm = word & 0x3FFFFFF
            off = (imm - (1 << 26) if imm & (1 << 25) else imm) * 4
        else:
            continue
        if -MAX_SPAN <= off <= 0:
            at = base + pos - 3
            if _may_spin(data, pos - 3 + off, pos - 3):
                out.append((at + off, at))
    return out


def _may_spin(data: bytes, lo: int, hi: int) -> bool:
    """From the raw words of [lo, hi]: no call, no barrier, no acquire or exclusive access, no store
    other than to the stack, and at least one load. Most loops fail here, undisassembled. (An exit
    block laid out inside the span that calls or stores hides its loop: a recall cost, measured on
    the fixtures at every optimisation level.)"""
    if lo < 0:
        return False
    loads = False
    pages = set()  # registers an `adrp` in the span set: their `add xN, xN, #lo12` is no counter
    for w in struct.unpack_from(f"<{(hi - lo) // 4}I", data, lo) if hi > lo else ():
        if (w & 0x9F000000) == 0x90000000:
            pages.add(w & 0x1F)  # adrp
            continue
        if (w & 0x1F000000) == 0x11000000 and (w & 0x1F) == (w >> 5) & 0x1F and (w & 0x1F) not in (31, 29) \
                and (w & 0x1F) not in pages:
            return False  # add/sub xN, xN, #imm: a counter or a walk, not a wait
        if (w & 0x3A000000) == 0x38000000 and (w & 0x01000000) == 0 and (w & 0x00200400) == 0x00000400:
            return False  # a load or store with writeback ([xN], #imm or [xN, #imm]!): a walk
        if (w & 0xFC000000) == 0x94000000 or (w & 0xFFFFFC1F) == 0xD63F0000:
            return False  # bl, blr (a ret or br may end an exit block laid out inside the span)
        if (w & 0xFFFFF01F) == 0xD503301F:
            return False  # dmb, dsb (isb is a hint here: neutral)
        if (w & 0x3F000000) == 0x08000000:
            return False  # load/store exclusive, acquire, release, compare-and-swap
        if (w & 0x3B200C00) == 0x38200000:
            return False  # LSE atomics (ldadd, swp, …)
        if (w & 0x3A000000) == 0x38000000 or (w & 0x3A000000) == 0x28000000:
            # a load or store (register forms: single, pair); bit 22 set is a load
            if w & 0x00400000:
                loads = True
            elif (w >> 5) & 0x1F not in (29, 31) and (w & 0x04000000) == 0:
                return False  # a store through a register other than sp/x29
    return loads


_BRANCH_GROUP = 0x14000000  # bits 28-26 = 101: branches, exception generation, system instructions


def _branch_successors(w: int, pos: int):
    """The offsets control may go to after the word `w` at `pos`, as cfg.blocks links them (a
    target only when it is a direct one); None for a word the raw walk does not model."""
    if (w & 0x1C000000) != _BRANCH_GROUP or (w & 0xFFC00000) == 0xD5000000:
        return (pos + 4,)  # not a branch (hints, barriers and system registers included): falls through
    if (w & 0xFFFFFC1F) == 0xD65F0000:
        return ()  # ret: ends the line (cfg.A64_ENDS)
    if (w & 0xFC000000) == 0x14000000:  # b
        imm = w & 0x3FFFFFF
        return (pos + (imm - (1 << 26) if imm & (1 << 25) else imm) * 4,)
    if (w & 0xFF000010) == 0x54000000 or (w & 0x7E000000) == 0x34000000:  # b.cond, cbz, cbnz
        imm = (w >> 5) & 0x7FFFF
        return (pos + 4, pos + (imm - (1 << 19) if imm & (1 << 18) else imm) * 4)
    if (w & 0x7E000000) == 0x36000000:  # tbz, tbnz
        imm = (w >> 5) & 0x3FFF
        return (pos + 4, pos + (imm - (1 << 14) if imm & (1 << 13) else imm) * 4)
    return None  # br (its block gets the orphans as successors), calls, exceptions, the rest


def leaves_before(data: bytes, lo: int, hi: int) -> bool:
    """From the raw words: is the branch back at `hi` unreachable from the header at `lo` along the
    span's own code ([lo, hi]; jumps elsewhere are no successor in the span's graph)? Then it is a
    jump to a join point, not a loop, and `Analyzer._loop` on the span finds the latch outside the
    header's forward set and returns None. Answered without disassembling: most candidates that
    pass `_may_spin` end this way (a function's epilogue or an if/else join laid out between the
    target and the jump). A word the walk does not model (a `br`, a call, `svc`, …) gives False: the
    disassembled check decides."""
    seen, stack = {lo}, [lo]
    while stack:
        pos = stack.pop()
        if pos == hi:
            return False
        if not lo <= pos < hi:
            continue
        nexts = _branch_successors(int.from_bytes(data[pos:pos + 4], "little"), pos)
        if nexts is None:
            return False
        for n in nexts:
            if lo <= n <= hi and n not in seen:  # cfg: a target outside the window is no successor
                seen.add(n)
                stack.append(n)
    return True


def _is_gpr_load(w: int) -> bool:
    """A load of a general register (not SIMD/FP, not a prefetch) in the load/store register
    classes, from the `size` and `opc` fields: ldr, ldrb, ldrh, ldrsb, ldrsh, ldrsw (and ldur*)."""
    size, opc = w >> 30, (w >> 22) & 3
    return not w & 0x04000000 and (opc == 1 or (opc == 2 and size != 3) or (opc == 3 and size < 2))


def _fields(w: int) -> tuple:
    """Every 5-bit field where an A64 instruction outside SVE/SME may name a general register."""
    return w & 0x1F, (w >> 5) & 0x1F, (w >> 10) & 0x1F, (w >> 16) & 0x1F


def _body(data: bytes, lo: int, hi: int):
    """The offsets of the loop body's words, in address order (the order `_poll` reads them): the
    words reachable from the header at `lo` within the span that reach the branch back at `hi`,
    on the graph cfg.blocks builds for the span. None when a word the walk does not model is
    reachable (a `br`, a call, `svc`, …) or the branch back is not."""
    succs, stack = {}, [lo]
    while stack:
        pos = stack.pop()
        if pos == hi:
            continue
        nexts = _branch_successors(int.from_bytes(data[pos:pos + 4], "little"), pos)
        if nexts is None:
            return None
        succs[pos] = nexts = [n for n in nexts if lo <= n <= hi]
        stack.extend(n for n in nexts if n not in succs and n != hi)
    if not any(hi in nexts for nexts in succs.values()) and lo != hi:
        return None
    preds = {}
    for pos, nexts in succs.items():
        for n in nexts:
            preds.setdefault(n, []).append(pos)
    body, stack = {hi}, [hi]
    while stack:
        for p in preds.get(stack.pop(), ()):
            if p not in body:
                body.add(p)
                stack.append(p)
    return sorted(body)


def poll_refuses(data: bytes, lo: int, hi: int) -> bool:
    """From the raw words: does an instruction of the loop body make `Analyzer._poll` give up? The
    body is the one `Analyzer._loop` finds on the span (`_body`), read in the same order, so the
    disassembled check reaches the instruction (or gives up earlier): a load through a register
    offset or from a literal pool (no `[xN, #imm]` address: given up), or an instruction that reads
    a register and writes it (`ldr x0, [x0, #8]`: a walk; `add x1, x1, x2`: a counter) when no
    body word before it may have written that register: then the value is carried from the
    previous pass, and `_poll` refuses. False whenever unsure (SVE/SME words, a word the body walk
    does not model): the disassembled check decides."""
    body = _body(data, lo, hi)
    if body is None:
        return False
    touched = set()  # register numbers any earlier body word may name
    live, written = set(), set()  # registers surely read before any write, surely written
    for pos in body:
        w = int.from_bytes(data[pos:pos + 4], "little")
        if (w >> 25) & 0xC == 0:
            return False  # SME, SVE or unallocated: registers outside the usual fields
        if _unaddressed_load(w):
            return True
        if (w & 0xFFFFE01F) == 0xD503201F:
            continue  # hints (nop, yield, …) and barriers (dmb, dsb, isb): no register operands
        reads, writes = _reads_writes(w)
        live.update(r for r in reads if r not in touched)
        written.update(writes)
        touched.update(_fields(w))
    # a register read from the previous pass and rewritten in this one: a counter or a walk
    return bool(live & written)


def _unaddressed_load(w: int) -> bool:
    """A general-register load `_poll` gives up on (its text has no `[xN, #imm]`): ldr/ldrsw from a
    literal pool, or ldr* [xN, xM{, extend}] (option x1x: the allocated ones)."""
    if (w & 0x3B000000) == 0x18000000:
        return not w & 0x04000000 and w >> 30 != 3  # ldr/ldrsw (literal), not prfm
    return (w & 0x3B204C00) == 0x38204800 and _is_gpr_load(w)


def _reads_writes(w: int):
    """(registers `_poll` surely reads, registers it surely writes) for the word `w`, from the
    classes whose operand text capstone writes in field order; ((), ()) for any other word. Reads
    come before writes in `_poll` (sources first). Register 31 is never counted: zr or sp.
    Unallocated or unpredictable encodings are left out: capstone gives `.byte` for them, which
    `_poll` neither reads nor writes (checked against capstone over random words in the tests)."""
    rd, rn, ra, rm = _fields(w)
    narrow_bad = not w & 0x80000000 and w & 0x8000  # a 32-bit form with a shift of 32 or more
    if ((w & 0x3B000000) == 0x39000000 or (w & 0x3B200C00) == 0x38000000) and _is_gpr_load(w):
        # ldr* [xN, #imm] / ldur*: the base read (a stack slot when it is sp or x29), rt written
        return ((rn,) if rn not in (29, 31) else ()), ((rd,) if rd != 31 else ())
    if (w & 0xFFC00000) in (0x29400000, 0x69400000, 0xA9400000) and rd != ra:  # ldp/ldpsw, signed offset
        return ((rn,) if rn not in (29, 31) else ()), tuple(r for r in (rd, ra) if r != 31)
    if rd == 31:
        return (), ()  # cmp/cmn/tst, or a write to zr whose text starts with a source
    if ((w & 0x1F200000) == 0x0B000000 and (w >> 22) & 3 != 3 or (w & 0x1F000000) == 0x0A000000) \
            and not narrow_bad:
        # add/sub/adds/subs, and/orr/eor/bic/orn/eon/ands/bics (shifted register; mov, mvn, neg)
        return tuple(r for r in (rn, rm) if r != 31), (rd,)
    if (w & 0x1F800000) == 0x11000000:  # add/sub (immediate); mov to or from sp
        return ((rn,) if rn != 31 else ()), (rd,)
    if (w & 0x1F800000) == 0x12800000 and (w >> 29) & 3 != 1 and (w & 0x80000000 or not w & 0x400000):
        return (), (rd,)  # movz, movn (mov); a 32-bit form only with hw 0 or 1
    if (w & 0x1F000000) == 0x10000000:  # adr, adrp
        return (), (rd,)
    if (w & 0x7E000000) in (0x34000000, 0x36000000):  # cbz/cbnz, tbz/tbnz: the tested register
        return (rd,), ()
    return (), ()


def _reg(name: str):
    """`w3`/`x3` → `r3`; sp, wsp → `sp`; zero registers → None."""
    if name in ("xzr", "wzr"):
        return None
    if name in ("sp", "wsp"):
        return "sp"
    return "r" + name[1:]


def _regs(text: str) -> list:
    out = []
    for m in _REG.finditer(text):
        r = _reg(m.group(0))
        if r is not None:
            out.append(r)
    return out


def _slot(op: str):
    """`[sp, #8]` / `[x29, #-4]` → a stack-slot name, else None."""
    m = _MEM.search(op)
    if m and m.group(1) in ("sp", "x29") and not m.group(3) and not m.group(4):
        return f"{m.group(1)}{int(m.group(2), 0) if m.group(2) else 0}"
    return None


@dataclass
class _Value:
    consts: frozenset = frozenset()  # code/data addresses the value may be (adrp/add/mov)
    loads: frozenset = frozenset()  # indices of this pass's memory loads it depends on
    varying: bool = False  # changes from pass to pass (not a loop invariant)


def _merge(values) -> _Value:
    consts, loads, varying = set(), set(), False
    for v in values:
        consts |= v.consts
        loads |= v.loads
        varying = varying or v.varying
    return _Value(frozenset(consts), frozenset(loads), varying)


class Analyzer:
    """Finds spin loops in one binary's aarch64 code."""

    def __init__(self, md, sections, helpers=None):
        self.md = md
        self.sections = [s for s in sections if not s.name.startswith(".plt")]
        self.code_ranges = [(s.address, s.address + len(s.data)) for s in self.sections]
        self._helpers = {} if helpers is None else helpers  # call target → "acquire" | "atomic" | None

    def spins(self) -> list:
        found, seen = [], set()
        for sec in self.sections:
            for header, branch in candidates(sec.address, sec.data):
                if header in seen:
                    continue
                hit = self._judge(sec, header, branch)
                if hit is not None:
                    seen.add(header)
                    found.append(hit)
        return found

    # --- one candidate ----------------------------------------------------------------------------

    def _window(self, sec, lo: int, hi: int) -> list:
        lo, hi = max(lo, sec.address), min(hi, sec.address + len(sec.data))
        lo -= (lo - sec.address) % 4
        return list(self.md.disasm_lite(sec.data[lo - sec.address:hi - sec.address], lo))

    def _loop(self, sec, header: int, branch: int, lo: int, hi: int, precise: bool = True):
        """(instructions, index, body blocks, body starts, poll) of the back-edge's natural loop
        within the window [lo, hi), when its body is a spin shape; else None."""
        insns = self._window(sec, lo, hi)
        index = {ins[0]: i for i, ins in enumerate(insns)}
        if header not in index or branch not in index:
            return None
        graph = cfg.blocks("aarch64", insns, insns[0][0], insns[-1][0] + 4)
        block_of = {}
        for start, blk in graph.items():
            for ins in blk.insns:
                block_of[ins[0]] = start
        head, latch = block_of.get(header), block_of.get(branch)
        if head != header or latch is None:
            return None
        # the loop: blocks the header reaches that reach the branch back. A backward jump to a
        # join point (an out-of-line path rejoining) reaches nothing from its "header": no loop.
        forward, stack = {head}, [head]
        while stack:  # anywhere in the window: a loop's out-of-line blocks belong to it too
            n = stack.pop()
            for t in graph[n].succs:
                if t not in forward and t >= header:
                    forward.add(t)
                    stack.append(t)
        if latch not in forward:
            return None
        body, stack = {latch}, [latch]
        while stack:
            n = stack.pop()
            for p in graph[n].preds:
                if p not in body and p in forward:
                    body.add(p)
                    stack.append(p)
        blocks = [graph[b] for b in sorted(body)]
        body_insns = [ins for blk in blocks for ins in blk.insns]
        if len(body_insns) > MAX_BODY:
            return None
        poll = self._poll(body_insns, branch, self._constants(insns[:index[header]]) if precise else {})
        if poll is None:
            return None
        return insns, index, blocks, body, poll

    def _judge(self, sec, header: int, branch: int):
        # first the raw words (no loop: the header's straight line leaves before the branch back),
        # then the span alone (cheap, and most candidates fail here); then the wide window, where
        # the loop's out-of-line blocks and the code after its exits are seen
        lo, hi = header - sec.address, branch - sec.address
        if leaves_before(sec.data, lo, hi) or poll_refuses(sec.data, lo, hi):
            return None
        if self._loop(sec, header, branch, header, branch + 4, precise=False) is None:
            return None
        found = self._loop(sec, header, branch, header - WINDOW_BEFORE, branch + WINDOW_AFTER)
        if found is None:
            return None
        insns, index, blocks, body, poll = found
        load_index, load_ins, loaded_regs, seqlock = poll
        if self._ordered_before(insns, index[header]):
            return None
        address, _size, mnemonic, op = load_ins
        spin = Spin(header, branch, mnemonic, op.split(",", 1)[1].strip(), address)
        if seqlock:
            return spin
        exits = sorted({s for blk in blocks for s in blk.succs if s not in body})
        for target in exits:
            if self._ordered_after(insns, index, target, loaded_regs) is False:
                return spin
        return None

    def _poll(self, body, back_edge: int, before: dict):
        """(load number, load instruction, registers holding the polled value) when the body is a
        spin on a plain load from one address, else None."""
        values = {}  # register or stack slot → _Value
        live_in, written = set(), set()
        loads = []  # (instruction, address value)
        deps = []  # the values the loop's conditional branches test
        decided = False

        def read(loc):
            if loc not in values:
                live_in.add(loc)
                values[loc] = _Value(before.get(loc, frozenset()))
            return values[loc]

        def write(loc, value):
            written.add(loc)
            values[loc] = value

        for ins in body:
            address, _size, mnemonic, op = ins
            if mnemonic in HINTS:
                continue
            if mnemonic in ("bl", "blr", "br", "ret", "svc", "hvc", "brk") or mnemonic.startswith(("dmb", "dsb")):
                return None  # a call, a barrier or a way out that is not a branch: not a plain spin
            if ACQUIRE_LOADS.match(mnemonic) or ATOMICS.match(mnemonic):
                return None  # acquire, exclusive or atomic access: ordered by its author
            parts = [p.strip() for p in op.split(",")]
            if STORES.match(mnemonic):
                slot = _slot(op)
                if slot is None:
                    return None  # a store to memory: the loop does work, it does not only wait
                write(slot, _merge(read(r) for r in _regs(parts[0])))
                continue
            if mnemonic in PLAIN_LOADS:
                m = _MEM.search(op)
                if m is None:
                    return None  # a literal-pool load
                base = _reg(m.group(1))
                slot = _slot(op)
                dests = [_reg(p) for p in parts[:2 if mnemonic in ("ldp", "ldpsw") else 1]]
                if slot is not None:
                    value = read(slot)
                    for d in dests:
                        if d is not None:
                            write(d, value)
                    continue
                addr = read(base)
                if m.group(3) or m.group(4):
                    write(base, _Value(addr.consts, addr.loads, True))  # writeback: a walk
                loads.append((ins, addr))
                value = _Value(frozenset(), frozenset({len(loads) - 1}) | addr.loads, False)
                for d in dests:
                    if d is not None:
                        write(d, value)
                continue
            if mnemonic in COMPARES:
                write("nzcv", _merge(read(r) for r in _regs(op)))
                continue
            if mnemonic.startswith("b.") or mnemonic in ("cbz", "cbnz", "tbz", "tbnz"):
                # every conditional branch in the body decides whether the loop goes on
                regs = _regs(parts[0])
                dep = read("nzcv") if mnemonic.startswith("b.") else read(regs[0]) if regs else _Value()
                if address == back_edge:
                    deps = [dep]  # a conditional branch back: its own test is the loop's condition
                    decided = True
                elif not decided:
                    deps.append(dep)
                continue
            if mnemonic == "b":
                continue
            # arithmetic, moves, address materialisation: the first operand is written
            regs = _regs(op)
            if not regs:
                continue
            dest, sources = regs[0], regs[1:]
            if mnemonic in ("csel", "csinc", "csinv", "csneg", "cset", "csetm", "cinc", "adc", "adcs", "sbc", "ngc"):
                sources = sources + ["nzcv"]
            if mnemonic in ("movk",):
                sources = sources + [dest]
            merged = _merge(read(r) for r in sources)
            consts = merged.consts
            if mnemonic == "adrp" or (mnemonic in ("mov", "movz", "movn") and not sources):
                imm = _IMM.search(op)
                consts = frozenset({int(imm.group(1), 0)}) if imm else frozenset()
            elif mnemonic == "add" and merged.consts and _IMM.search(op) and len(sources) == 1:
                off = int(_IMM.search(op).group(1), 0)
                consts = frozenset(c + off for c in merged.consts)
            if mnemonic.endswith("s") and mnemonic in ("adds", "subs", "ands", "bics"):
                write("nzcv", merged)
            write(dest, _Value(consts, merged.loads, merged.varying))
        # a value read from the previous pass and rewritten in this one: a counter or a walk
        carried = (live_in & written) - {"nzcv"}
        if carried:
            return None
        deps = _merge(deps)
        polled = [i for i in sorted(deps.loads) if not loads[i][1].varying]
        if not polled:
            return None
        if any(self._in_code(c) for c in deps.consts):
            return None  # compared with a code address: a devirtualised call's guard
        first = polled[0]
        ins, addr = loads[first]
        holders = {loc for loc, v in values.items() if first in v.loads and not loc.startswith(("sp", "x29"))}
        # a sequence-lock reader: the condition compares two loads of one location, and other
        # loads (the data) sit between them, all plain: the data reads are what is unordered
        where = [(_MEM.search(loads[i][0][3]).group(0), loads[i][1].consts) for i in polled]
        seqlock = len(loads) > len(polled) and any(where[i] == where[j] for i in range(len(where))
                                                   for j in range(i + 1, len(where)))
        return first, ins, holders, seqlock

    @staticmethod
    def _constants(insns) -> dict:
        """register → the addresses `adrp`/`add`/`mov` left in it before the loop (straight-line
        approximation over the window's instructions before the header)."""
        known = {}
        for _address, _size, mnemonic, op in insns:
            regs = _regs(op)
            if not regs or STORES.match(mnemonic) or mnemonic in COMPARES or mnemonic.startswith(("b", "cb", "tb")):
                continue
            dest = regs[0]
            imm = _IMM.search(op)
            if mnemonic == "adrp" and imm:
                known[dest] = frozenset({int(imm.group(1), 0)})
            elif mnemonic == "add" and imm and len(regs) == 2 and regs[1] in known:
                known[dest] = frozenset(c + int(imm.group(1), 0) for c in known[regs[1]])
            else:
                known.pop(dest, None)
        return known

    def _in_code(self, addr: int) -> bool:
        return any(lo <= addr < hi for lo, hi in self.code_ranges)

    # --- what orders the reads around the loop --------------------------------------------------------

    def _ordering(self, mnemonic: str, op: str, target=None) -> bool:
        if ACQUIRE_LOADS.match(mnemonic) or ACQUIRE_RMW.match(mnemonic):
            return True
        if mnemonic == "dmb":
            return bool(LOAD_BARRIERS.match(f"dmb {op}".strip()))
        if mnemonic in ("dsb", "isb"):
            return True  # isb after the exit's branch on the loaded value: ctrl+isb orders later loads
        if mnemonic == "bl" and target is not None:
            return self.helper(target) == "acquire"
        return False

    def _ordered_before(self, insns, head_index: int) -> bool:
        """A barrier (any dmb) or an acquire read-modify-write (inline or an outline-atomics call)
        shortly before the loop: the author orders this by hand (the lock is already held)."""
        for i in range(head_index - 1, max(head_index - BEFORE, 0) - 1, -1):
            _address, _size, mnemonic, op = insns[i]
            if mnemonic in ("ret", "br") or (mnemonic == "b" and i != head_index - 1):
                return False
            if mnemonic in ("dmb", "dsb") or ACQUIRE_RMW.match(mnemonic) or ACQUIRE_LOADS.match(mnemonic):
                return True
            if mnemonic == "bl":
                target = _IMM.search(op)
                if target and self.helper(int(target.group(1), 0)) is not None:
                    return True
        return False

    def _ordered_after(self, insns, index, target: int, loaded: set):
        """Does something order the reads after this exit? True (a barrier, an acquire, an address
        dependency, on the path before it returns or calls: reads before a fence the author placed
        are taken as private), False (plain reads of memory and no fence: the data the flag guards)
        or None (the path returns or calls without reading memory: nothing here to judge). Follows
        unconditional branches a little."""
        carried = set(loaded)
        read = False
        steps, i = 0, index.get(target)
        while i is not None and steps < AFTER and i < len(insns):
            _address, _size, mnemonic, op = insns[i]
            call = None
            if mnemonic == "bl":
                m = _IMM.search(op)
                call = int(m.group(1), 0) if m else None
            if self._ordering(mnemonic, op, call):
                return True
            if mnemonic in PLAIN_LOADS or ACQUIRE_LOADS.match(mnemonic):
                m = _MEM.search(op)
                if m and _reg(m.group(1)) in carried:
                    return True  # an address dependency on the polled value orders the read on Arm
                if m and _slot(op) is None and not (m.group(1) == "sp"):
                    read = True  # a plain read of memory after the poll: unordered unless a fence follows
            if mnemonic in ("ret", "br", "blr", "bl"):
                return False if read else None
            if mnemonic == "b":
                t = _IMM.search(op)
                i = index.get(int(t.group(1), 0)) if t else None
                steps += 1
                continue
            regs = _regs(op)
            if regs and not STORES.match(mnemonic) and mnemonic not in COMPARES and \
                    not mnemonic.startswith(("b.", "cb", "tb")):
                dest, sources = regs[0], regs[1:]
                if any(s in carried for s in sources) and mnemonic != "adrp":
                    carried.add(dest)
                else:
                    carried.discard(dest)  # rewritten (by adrp, a constant, another value): no dependency
            i += 1
            steps += 1
        return False if read else None

    # --- outline atomics ------------------------------------------------------------------------------

    def helper(self, target: int):
        """"acquire" / "atomic" when `bl target` calls an outline-atomics helper (libgcc's
        __aarch64_<op><size>_<order>: `adrp x16; ldrb w16, [x16, #n]; cbz w16, …; <LSE op>; ret`),
        else None."""
        if target in self._helpers:
            return self._helpers[target]
        kind = None
        for sec in self.sections:
            if sec.address <= target < sec.address + len(sec.data):
                head = [h for h in self.md.disasm_lite(sec.data[target - sec.address:target - sec.address + 28], target)
                        if h[2] not in HINTS]  # `bti c` first when built with branch protection
                names = [h[2] for h in head]
                if len(names) >= 4 and names[0] == "adrp" and "x16" in head[0][3] and names[1] == "ldrb" \
                        and names[2] in ("cbz", "cbnz"):
                    op = names[3]
                    kind = "acquire" if ACQUIRE_RMW.match(op) else "atomic" if ATOMICS.match(op) else None
                break
        self._helpers[target] = kind
        return kind
