"""Which way a call's failure goes: the branch on its return value right after the call.

A server's `accept` (or its wrapper) returns -1 on failure. When the code right after the call
compares the result with -1 or tests its sign and branches, the side taken on failure is not the
path of an accepted connection (dante's arm64 build forks a core-dumping error reporter there).
Only these shapes are read — `cmn w0,#1; b.ne`, `tbnz w0,#31`, `cmp w0,#0; b.lt`, `cmp eax,-1; je`,
`test eax,eax; js` — the result followed through register copies; anything else says nothing.
"""

from __future__ import annotations

MAX_INSNS = 16  # instructions after the call in which the branch on its result must come

_RESULT = {"x86-64": ("eax", "rax"), "aarch64": ("w0", "x0")}
# condition → (after `cmp r, -1`/`cmn r, #1`: taken on failure?, after a sign test: taken on failure?)
_X86 = {"je": (True, None), "jne": (False, None), "js": (None, True), "jns": (None, False),
        "jl": (None, True), "jge": (None, False)}
_A64 = {"b.eq": (True, None), "b.ne": (False, None), "b.lt": (None, True), "b.ge": (None, False),
        "b.mi": (None, True), "b.pl": (None, False)}


def _sub(reg: str) -> str:
    """The 32-bit name of a 64-bit register (x5 → w5, rbx → ebx, r12 → r12d)."""
    if reg.startswith("x"):
        return "w" + reg[1:]
    if reg.startswith("r") and reg[1:2].isdigit():
        return reg + "d"
    if reg.startswith("r"):
        return "e" + reg[1:]
    return reg


def success_target(machine: str, graph: dict, block: int, call: int):
    """(the block that branches on the call's result, the start of the block its success side leads
    to), or None when no such branch is read. `graph` is cfg.blocks' map of block start → Block."""
    if machine not in _RESULT:
        return None
    held = set(_RESULT[machine])
    tested = None  # "eq-1" after a compare with -1, "sign" after a sign test
    blk, seen, count = graph.get(block), set(), 0
    started = False
    while blk is not None and blk.start not in seen:
        seen.add(blk.start)
        for addr, _size, mnem, ops in blk.insns:
            if not started:
                started = addr == call
                continue
            count += 1
            if count > MAX_INSNS:
                return None
            parts = [p.strip() for p in ops.split(",")]
            if machine == "aarch64" and mnem in ("tbnz", "tbz") and len(parts) == 3 and parts[0] in held \
                    and parts[1] == "#0x1f":
                return _pick(blk, parts[2], taken_fails=mnem == "tbnz")
            if mnem in ("cmp", "cmn", "test") and parts and parts[0] in held:
                if (mnem == "cmp" and parts[1:] in (["-1"], ["#-1"], ["0xffffffff"])) or (mnem == "cmn" and parts[1:] == ["#1"]):
                    tested = "eq-1"
                elif (mnem == "test" and parts[1:] == [parts[0]]) or (mnem == "cmp" and parts[1:] in (["0"], ["#0"])):
                    tested = "sign"
                else:
                    return None
                continue
            table = _X86 if machine == "x86-64" else _A64
            if mnem in table and tested is not None:
                fails = table[mnem][0 if tested == "eq-1" else 1]
                if fails is None:
                    return None
                return _pick(blk, parts[-1], taken_fails=fails)
            if mnem.startswith(("j", "b.", "b", "ret", "call", "bl", "cb", "tb")):
                return None  # another branch or call before the test: not read
            if mnem in ("mov", "sxtw", "movsxd") and len(parts) == 2 and parts[1] in held:
                held |= {parts[0], _sub(parts[0])}
                continue
            if parts and parts[0] in held and mnem not in ("str", "stp", "stur") and not parts[0].startswith("["):
                held -= {parts[0], _sub(parts[0])}  # the result is overwritten
                if not held:
                    return None
        if not started:
            return None
        blk = graph.get(blk.succs[0]) if len(blk.succs) == 1 else None  # a call ends some blocks
    return None


def _pick(blk, operand: str, taken_fails: bool):
    """(blk's start, the successor of `blk` that is not the failure side)."""
    try:
        target = int(operand.lstrip("#"), 0)
    except ValueError:
        return None
    if target not in blk.succs or len(blk.succs) != 2:
        return None
    if not taken_fails:
        return blk.start, target
    other = [s for s in blk.succs if s != target]
    return (blk.start, other[0]) if other else None
