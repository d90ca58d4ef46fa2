"""SCL501 in aarch64 code: spin-wait loops that re-load a flag with a plain load and no acquire.

A loop qualifies when a short backward branch closes a body that (1) loads from one non-stack
address with a plain LDR/LDRB/LDRH (no writeback), (2) branches on what it loaded, (3) holds no
acquire or exclusive load, no barrier, no store and no call — and nothing right after the loop's
exit orders the reads that follow (a DMB, an acquire load or atomic, or an address dependency).
"""

from __future__ import annotations

import re

PLAIN_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrsw", "ldur", "ldurb", "ldurh", "ldursb", "ldursh",
               "ldursw"}
ORDERING = re.compile(r"^(ldar|ldapr|ldaxr|ldxr|ldaxp|ldxp|dmb|dsb|isb|wfe|cas|casa|casal|swpa|swpal|ldadda|"
                      r"ldaddal|ldseta|ldclra|stlr|stxr|stlxr)")
STORES = re.compile(r"^(str|stur|stp|stlr|stxr|stlxr|st1)")
MAX_BODY = 64  # bytes: a spin loop is a handful of instructions
_MEM = re.compile(r"\[([xw]\d+|sp)(?:, #(-?0x[0-9a-f]+|-?\d+))?\](!?)")


def spin_loops(md, base: int, data: bytes, functions) -> list:
    """[(function name or None, start, end, load mnemonic, operand)]."""
    insns = list(md.disasm_lite(data, base))
    index = {ins[0]: i for i, ins in enumerate(insns)}
    found = []
    for i, (address, size, mnemonic, op) in enumerate(insns):
        if not (mnemonic.startswith(("b.", "cbz", "cbnz", "tbz", "tbnz")) or mnemonic == "b"):
            continue
        target = _target(op)
        if target is None or not (address - MAX_BODY <= target <= address) or target not in index:
            continue
        body = insns[index[target]: i + 1]
        hit = _plain_poll(body)
        if hit is None:
            continue
        if _ordered_after(insns, i + 1, hit[2], index):
            continue
        j = index[target] - 1
        while j > 0 and insns[j][2] == "nop":  # alignment padding before the loop head
            j -= 1
        if j >= 0 and ORDERING.match(insns[j][2]):
            continue  # a fence right before the loop: the author is ordering this by hand
        func = _function(functions, target)
        found.append((func, target, address, hit[0], hit[1]))
    return found


def _target(op: str):
    m = re.search(r"#(0x[0-9a-f]+)$", op)
    return int(m.group(1), 16) if m else None


ALU = {"cmp", "cmn", "tst", "ccmp", "and", "ands", "orr", "eor", "ubfx", "sbfx", "lsr", "lsl", "asr", "uxtb",
       "uxth", "sxtw", "sxtb", "sxth", "mov", "nop"}
MAX_INSNS = 6


def _plain_poll(body):
    """(load mnemonic, operand, destination) when the body is load → test → branch back, and nothing else."""
    if len(body) > MAX_INSNS:
        return None
    loads = []
    for address, size, mnemonic, op in body[:-1]:
        if mnemonic in PLAIN_LOADS:
            m = _MEM.search(op)
            if m is None or m.group(1) in ("sp", "x29") or m.group(3) == "!" or "], #" in op:
                return None  # stack, frame or a post/pre-indexed walk over memory: not a poll
            loads.append((mnemonic, op.split(",", 1)[1].strip(), op.split(",", 1)[0].strip(), m.group(1)))
        elif mnemonic not in ALU:
            return None  # a store, call, other branch, barrier or acquire: not a plain spin
    if len(loads) != 1:
        return None
    mnemonic, operand, dest, base_reg = loads[0]
    if dest[1:] == base_reg[1:]:
        return None  # p = p->next: a pointer chase, not a re-read of one location
    for address, size, mn, op in body[:-1]:
        if mn not in PLAIN_LOADS and op.split(",", 1)[0].strip()[1:] == base_reg[1:]:
            return None  # the address changes: a walk, not a re-read of one location
    regs = {dest}
    for address, size, mn, op in body[:-1]:
        parts = [p.strip() for p in op.split(",")]
        if mn in ALU and len(parts) > 1 and any(p in regs for p in parts[1:]):
            regs.add(parts[0])
        if mn in ("cmp", "cmn", "tst", "ccmp") and parts and parts[0] in regs:
            regs.add("nzcv")
    branch_mn, branch_op = body[-1][2], body[-1][3]
    if branch_mn.startswith("b.") and "nzcv" not in regs:
        return None
    if branch_mn.startswith(("cb", "tb")) and branch_op.split(",", 1)[0].strip() not in regs:
        return None
    if branch_mn == "b":
        return None
    return mnemonic, operand, dest


def _ordered_after(insns, index, loaded_reg: str, addr_index) -> bool:
    """Does something order the reads after the loop's exit? Follows unconditional branches a little."""
    steps, i = 0, index
    while steps < 8 and 0 <= i < len(insns):
        _, _, mnemonic, op = insns[i]
        if ORDERING.match(mnemonic):
            return True
        m = _MEM.search(op)
        if mnemonic.startswith("ld") and m and m.group(1)[1:] == loaded_reg[1:]:
            return True  # an address dependency on the loaded value orders the read on Arm
        if mnemonic == "b":
            target = _target(op)
            if target is None or target not in addr_index:
                return False
            i = addr_index[target]
        elif mnemonic in ("ret", "br", "blr", "bl"):
            return False
        else:
            i += 1
        steps += 1
    return False


def _function(functions, addr):
    for start, size, name in functions:
        if start <= addr < start + max(size, 1):
            return name
    return None
