"""A screen before a function-scope binary rule's call graph (SCL101's write → rename): can any
function of this x86-64 binary hold a call reaching the first group and a call reaching the
second, each within the rule's depth (at most 2)?

Most binaries that import a rename and no sync have no such function (50 of the 65 under /usr/bin
and /usr/lib/x86_64-linux-gnu), and for them the whole call graph — every call resolved, every
relocation named, the paths evaluated — only answered "no". The screen reads the code and the
slots of the dozen imports in question, finds the functions as the graph does
(graphcols.bounds), and says "no" only when the graph would have no candidate function: it asks
a wider question than the rule (no order, no sync check, no limit on callers), never a narrower
one, so a "no" here is the graph's "no" (tests/test_elf_screen.py holds it to that on every
fixture and on real binaries).
"""

from __future__ import annotations

import bisect

from syscall_lint.elf import vector
from syscall_lint.elf.callsites import _base


def may_match(info, spec, sections, slots, scans: dict) -> bool:
    """False only when no function can hold both groups of a function-scope `spec`; True when it
    may, or when the screen does not apply (another machine or scope, deeper paths, static code,
    no unwind table, a function of the binary named like a group's call, numpy absent). The
    sections' scans (graphcols.x86_scans) are left in `scans` for the graph."""
    from syscall_lint.elf import callgraph, graphcols, reader

    if not applies(info, spec):
        return True
    first_depth, second_depth = spec.depth, spec.second_depth or spec.depth
    wanted = spec.first | spec.second
    if reader.defines_function_named(info.path, wanted):
        return True  # the graph counts such a function as the call itself (static-style code)
    code = [s for s in sections if not s.name.startswith(".plt")]
    if not code:
        return False
    np = vector.np
    stubs = _stubs(np, sections, slots)
    if stubs is None:
        return True
    found = graphcols.x86_scans(code)
    if not found:
        return found is None  # out of numpy's range: the graph decides; no code scanned: no call
    scans.update(found)
    rel_sites, rel_dests, slot_sites, slot_slots = [], [], [], []
    for slot, rel in found.values():
        rel_sites.append(rel[0])
        rel_dests.append(rel[1])
        slot_sites.append(slot[0])
        slot_slots.append(slot[1])
    rel_sites, rel_dests = np.concatenate(rel_sites), np.concatenate(rel_dests)
    slot_sites, slot_slots = np.concatenate(slot_sites), np.concatenate(slot_slots)
    order = np.argsort(rel_sites, kind="stable")
    rel_sites, rel_dests = rel_sites[order], rel_dests[order]

    def direct(group) -> list:
        """Sorted sites of the calls (and tail jumps) to a stub or through a slot of the group."""
        to_stub = _addresses(np, stubs, group)
        to_slot = _addresses(np, slots, group)
        found = np.concatenate((rel_sites[vector.member(rel_dests, to_stub)],
                                slot_sites[vector.member(slot_slots, to_slot)]))
        return sorted(found.tolist())

    seconds = direct(spec.second)
    if not seconds:
        return False
    known = graphcols._known(info, code, with_names=False)
    if known is None:
        return True
    text_end = max(s.address + len(s.data) for s in code)
    starts, ends = graphcols.bounds(known[0], known[1], None, [], code, text_end, callgraph.MIN_GAP,
                                    callgraph._padding)
    firsts = direct(spec.first)
    first_starts = _holders(starts, ends, firsts)  # functions with a direct call to the first group
    second_starts = _holders(starts, ends, seconds)

    def reaches(start: int, end: int, direct_sites: list, holders: set, depth: int) -> bool:
        if _any_between(direct_sites, start, end):
            return True
        if depth < 2 or not holders:
            return False
        i, j = int(rel_sites.searchsorted(start)), int(rel_sites.searchsorted(end))
        return any(dest in holders for dest in rel_dests[i:j].tolist())

    scopes = second_starts if second_depth == 1 else _callers_or_holders(starts, ends, rel_sites, rel_dests,
                                                                         second_starts)
    for start in scopes:
        end = ends[bisect.bisect_left(starts, start)]
        if reaches(start, end, firsts, first_starts, first_depth):
            return True
    return False


def applies(info, spec) -> bool:
    """Does the screen read this binary for this rule? (x86-64 code with an unwind table, not
    static; a function-scope rule without pointer paths, each group within 2 calls; numpy.)"""
    second_depth = spec.second_depth or spec.depth
    return (info.machine == "x86-64" and vector.ENABLED and not info.static and info.unwind
            and spec.scope == "function" and not spec.indirect_depth and 1 <= spec.depth <= 2
            and 1 <= second_depth <= 2)


def _stubs(np, sections, slots: dict) -> dict | None:
    """PLT stub address → the imported names its jump may read, for the slots asked about: every
    `jmp [rip + d32]` (ff 25, `bnd` or another prefix before it) of a .plt* section reading one of
    them, at the 16-byte line callsites._stub_targets gives the stub (that of the jump's first
    byte, so also the line of a prefix). A wider answer than _stub_targets' (it also takes jumps
    its templates and capstone would not), never a narrower one. None when a section is out of
    numpy's range."""
    out = {}
    for sec in sections:
        if not sec.name.startswith(".plt"):
            continue
        found = vector.x86_slot_calls(sec.address, sec.data)
        if found is None:
            return None
        sites, read, jumps = found
        for site, slot in zip(sites[jumps].tolist(), read[jumps].tolist()):
            name = slots.get(slot)
            if name is None:
                continue
            out.setdefault(site & ~0xF, set()).add(name)
            offset = site - sec.address
            if offset and sec.data[offset - 1] in _PREFIXES:  # the jump may start at its prefix
                out.setdefault((site - 1) & ~0xF, set()).add(name)
    return out


# legacy prefixes and REX: bytes a decoder may read as the start of the jump before its ff 25
_PREFIXES = frozenset([0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65, 0x66, 0x67, *range(0x40, 0x50)])


def _addresses(np, mapping: dict, group) -> object:
    """Sorted int64 addresses of a mapping (address → imported name, or a set of them) where a name
    is in the group."""
    picked = [a for a, names in mapping.items() if 0 <= a < vector.LIMIT and any(
        _base(name) in group for name in ((names,) if isinstance(names, str) else names))]
    return np.array(sorted(picked), dtype=np.int64)


def _holders(starts: list, ends: list, sites: list) -> set:
    """Starts of the functions that hold at least one of the sites."""
    out = set()
    for site in sites:
        i = bisect.bisect_right(starts, site) - 1
        if i >= 0 and site < ends[i]:
            out.add(starts[i])
    return out


def _callers_or_holders(starts, ends, rel_sites, rel_dests, holders: set) -> set:
    """Starts of the functions holding a direct call of the group or a call to one that does
    (the scopes a depth-2 second group can be reached from)."""
    out = set(holders)
    if holders:
        keys = vector.np.array(sorted(holders), dtype=vector.np.int64)
        out |= _holders(starts, ends, rel_sites[vector.member(rel_dests, keys)].tolist())
    return out


def _any_between(sorted_sites: list, lo: int, hi: int) -> bool:
    i = bisect.bisect_left(sorted_sites, lo)
    return i < len(sorted_sites) and sorted_sites[i] < hi
