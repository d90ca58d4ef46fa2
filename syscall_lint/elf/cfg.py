"""A function's control-flow graph and its natural loops, for x86-64 and aarch64.

Blocks split at branch targets and after branches; a back-edge is an edge to a block that dominates
its source, and its natural loop is the header plus every block that reaches the back-edge's source
without passing the header. Loops that share a header are one loop. A loop body is therefore the
code that really repeats, not every byte laid out between the header and the branch back (which
also holds unrelated blocks: error paths, other loops' tails). An indirect jump (a switch) is given
the function's orphan blocks as successors: a jump table's targets have no other predecessor.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

_TARGET = re.compile(r"^#?(0x[0-9a-f]+)$")
X86_ENDS = ("ret", "retq", "hlt", "ud2", "int3")
A64_ENDS = ("ret", "br", "brk", "hlt", "udf", "eret")
_A64_BRANCH_INITIALS = frozenset("rbhuect")  # first letters of A64_ENDS and of b, b.cond, cbz/cbnz, tbz/tbnz
_X86_BRANCH_INITIALS = frozenset("rhuijlb")  # first letters of X86_ENDS, of j*, loop* and `bnd jmp`


@dataclass
class Block:
    start: int
    end: int  # address after the last instruction
    insns: list  # (address, size, mnemonic, op)
    succs: list = field(default_factory=list)  # block starts
    preds: list = field(default_factory=list)


@dataclass(frozen=True)
class NaturalLoop:
    header: int
    latches: tuple  # starts of the blocks that branch back to the header
    blocks: frozenset  # starts of the body's blocks
    spans: tuple  # (start, end) address ranges of the body's blocks, sorted

    def contains(self, addr: int) -> bool:
        # the spans are disjoint and sorted (blocks do not overlap): a binary search over their
        # starts, not a scan (a server's main loop has hundreds of blocks, asked about every call)
        starts = self.__dict__.get("_starts")
        if starts is None:
            starts = self.__dict__["_starts"] = [start for start, _ in self.spans]
        i = bisect_right(starts, addr) - 1
        return i >= 0 and addr < self.spans[i][1]

    @property
    def size(self) -> int:
        return sum(end - start for start, end in self.spans)


def branch(machine: str, mnemonic: str, op: str):
    """(is a branch, is conditional, direct target or None, ends flow)."""
    if machine == "x86-64":
        if mnemonic in X86_ENDS:
            return True, False, None, True
        if mnemonic[0] == "j" or mnemonic.startswith("loop"):
            m = _TARGET.match(op)
            target = int(m.group(1), 16) if m else None
            uncond = mnemonic in ("jmp", "bnd jmp")
            return True, not uncond, target, uncond
        return False, False, None, False
    if mnemonic[:1] not in _A64_BRANCH_INITIALS:  # ldr, str, mov, add, …: most instructions
        return False, False, None, False
    if mnemonic in A64_ENDS:
        return True, False, None, True
    if mnemonic == "b" or mnemonic.startswith(("b.", "cbz", "cbnz", "tbz", "tbnz")):
        m = _TARGET.match(op.rsplit(",", 1)[-1].strip())
        target = int(m.group(1), 16) if m else None
        return True, mnemonic != "b", target, mnemonic == "b"
    return False, False, None, False


def blocks(machine: str, insns: list, start: int, end: int) -> dict:
    """start → Block for the instructions of one function [start, end)."""
    if not insns:
        return {}
    leaders = {insns[0][0]}
    indirect = []
    initials = _X86_BRANCH_INITIALS if machine == "x86-64" else _A64_BRANCH_INITIALS
    for i, (address, size, mnemonic, op) in enumerate(insns):
        if mnemonic[:1] not in initials:  # most instructions: not a branch (branch() says so too)
            continue
        is_branch, _cond, target, _ends = branch(machine, mnemonic, op)
        if not is_branch:
            continue
        if target is not None and start <= target < end:
            leaders.add(target)
        if i + 1 < len(insns):
            leaders.add(insns[i + 1][0])
    out, current = {}, None
    for ins in insns:
        if ins[0] in leaders or current is None:
            current = Block(ins[0], ins[0], [])
            out[ins[0]] = current
        current.insns.append(ins)
        current.end = ins[0] + ins[1]
    order = sorted(out)
    for i, s in enumerate(order):
        blk = out[s]
        address, size, mnemonic, op = blk.insns[-1]
        is_branch, cond, target, ends = branch(machine, mnemonic, op)
        nxt = order[i + 1] if i + 1 < len(order) else None
        if is_branch:
            if target is not None and target in out:
                blk.succs.append(target)
            elif target is None and mnemonic in ("jmp", "bnd jmp", "br") and "rip" not in op:
                indirect.append(blk)  # a switch through a jump table (a GOT jump is a tail call)
            if cond and nxt is not None:
                blk.succs.append(nxt)
        elif nxt is not None:
            blk.succs.append(nxt)
    for s in order:
        for t in out[s].succs:
            out[t].preds.append(s)
    if indirect:
        orphans = [s for s in order[1:] if not out[s].preds]
        for blk in indirect:
            for o in orphans:
                blk.succs.append(o)
                out[o].preds.append(blk.start)
    return out


def dominators(graph: dict, entry: int) -> dict:
    """block → immediate dominator (Cooper, Harvey and Kennedy's iterative algorithm), for the
    blocks reachable from the entry."""
    order, seen, stack = [], {entry}, [(entry, iter(graph[entry].succs))]
    while stack:  # post-order by an explicit stack: no recursion limit on large functions
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            order.append(node)
            stack.pop()
        elif nxt not in seen:
            seen.add(nxt)
            stack.append((nxt, iter(graph[nxt].succs)))
    rank = {n: i for i, n in enumerate(order)}
    idom = {entry: entry}
    changed = True
    while changed:
        changed = False
        for node in reversed(order):
            if node == entry:
                continue
            preds = [p for p in graph[node].preds if p in idom]
            if not preds:
                continue
            new = preds[0]
            for p in preds[1:]:
                a, b = p, new
                while a != b:
                    while rank[a] < rank[b]:
                        a = idom[a]
                    while rank[b] < rank[a]:
                        b = idom[b]
                new = a
            if idom.get(node) != new:
                idom[node] = new
                changed = True
    return idom


def _dominates(idom: dict, a: int, b: int) -> bool:
    while True:
        if b == a:
            return True
        parent = idom.get(b)
        if parent is None or parent == b:
            return False
        b = parent


def natural_loops(graph: dict) -> list:
    """NaturalLoop per header, innermost (smallest) first. A back-edge is an edge to a block that
    dominates its source; a body walks predecessors from the latches up to the header."""
    if not graph:
        return []
    idom = dominators(graph, min(graph))
    bodies = {}
    for s, blk in graph.items():
        if s not in idom:
            continue
        for h in blk.succs:
            if h in idom and _dominates(idom, h, s):
                body = bodies.setdefault(h, ({h}, []))
                body[1].append(s)
                stack = [s]
                while stack:
                    n = stack.pop()
                    if n in body[0]:
                        continue
                    body[0].add(n)
                    stack.extend(graph[n].preds)

    loops = []
    for h, (body, latches) in bodies.items():
        spans = tuple(sorted((graph[b].start, graph[b].end) for b in body))
        loops.append(NaturalLoop(h, tuple(sorted(latches)), frozenset(body), spans))
    loops.sort(key=lambda lp: lp.size)
    return loops
