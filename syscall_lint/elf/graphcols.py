"""callgraph.build on numpy columns: the function table and the calls of a binary without one
Python object per function or per call.

A large binary has tens of thousands of functions and hundreds of thousands of calls, and a rule
asks about a few of them. Here the known starts and ends (symbol tables and unwind table), the
call scan, the new starts found from calls, the resolution of each call, the function bounds and
the gap functions are arrays; Python loops only over the symbol names and the gaps. The result is
exactly the pure pipeline's (callgraph.build without numpy): tests/test_elf_callgraph.py compares
them on every fixture, plain and stripped.
"""

from __future__ import annotations

from syscall_lint.elf import vector
from syscall_lint.elf.calltable import ArrayCalls


def build(info, code, stubs: dict, got: dict, x86: bool, all_targets: bool, text_end: int, min_gap: int, padding,
          scans=None):
    """(function starts, their ends, start → symbol names, ArrayCalls), or None without numpy or
    for addresses beyond its range (callgraph.build then takes the pure way). `scans`: x86_scans
    already made for these sections (by a screen)."""
    if not vector.ENABLED or not code or text_end >= vector.LIMIT:
        return None
    np = vector.np
    known = _known(info, code)
    if known is None:
        return None
    starts, ends, names = known
    name_list = sorted(set(stubs.values()) | (set(got.values()) if x86 else set()))
    codes = {name: ~i for i, name in enumerate(name_list)}
    stub_keys, stub_codes = _table(np, stubs, codes)
    at_start = vector.member(stub_keys, starts)  # a stub at a function start is that function
    tkeys = np.concatenate((starts, stub_keys[~at_start]))
    tcodes = np.concatenate((starts, stub_codes[~at_start]))
    order = np.argsort(tkeys, kind="stable")
    tkeys, tcodes = tkeys[order], tcodes[order]
    slots = _table(np, got, codes) if x86 else None
    found = _calls(np, x86, code, slots, tkeys, tcodes, all_targets, name_list, scans)
    if found is None:
        return None
    calls, added = found
    starts, ends = bounds(starts, ends, names, added, code, text_end, min_gap, padding)
    return starts, ends, names, calls


def bounds(starts, ends, names, added, code, text_end: int, min_gap: int, padding):
    """(function starts, their ends) as sorted lists, from the known starts and ends (`_known`)
    and the starts found from calls; the starts of functions dropped for having no length leave
    `names` (when given)."""
    np = vector.np
    if added:
        starts = np.concatenate((starts, np.array(added, dtype=np.int64)))
        ends = np.concatenate((ends, np.zeros(len(added), dtype=np.int64)))
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
    # each start runs to its recorded end or the next start (the last to the end of the code)
    limit = np.append(starts[1:], np.int64(text_end))
    ends = np.where(ends > 0, np.minimum(ends, limit), limit)
    keep = ends > starts
    if names is not None:
        for dropped in starts[~keep].tolist():
            names.pop(dropped, None)
    starts, ends = starts[keep], ends[keep]
    return _fill_gaps(np, starts, ends, code, min_gap, padding)


def _table(np, mapping: dict, codes: dict):
    """(sorted int64 addresses, their node codes) of an address → name mapping."""
    if mapping and not 0 <= min(mapping) <= max(mapping) < vector.LIMIT:
        mapping = {k: v for k, v in mapping.items() if 0 <= k < vector.LIMIT}
    keys = np.array(list(mapping), dtype=np.int64)
    values = np.array(list(map(codes.__getitem__, mapping.values())), dtype=np.int64)
    order = np.argsort(keys)  # the keys are unique
    return keys[order], values[order]


def _known(info, code, with_names: bool = True):
    """callgraph._known_functions as columns: (sorted unique starts, their ends with 0 for
    unknown, start → names in symbol order (None without `with_names`)), or None beyond numpy's
    range."""
    from syscall_lint.elf.reader import eh_frame_columns, function_columns

    np = vector.np
    lo = min(s.address for s in code)
    hi = max(s.address + len(s.data) for s in code)
    pieces_s, pieces_e = [], []
    names = {}
    if with_names:
        funcs = info.functions
        addrs, sizes, _names = zip(*funcs) if funcs else ((), (), ())
    else:  # the same columns, no name decoded
        addrs, sizes = function_columns(info)
    if len(addrs):
        a, z = np.asarray(addrs, dtype=np.uint64), np.asarray(sizes, dtype=np.uint64)
        if int(a.max()) >= vector.LIMIT or int(z.max()) >= vector.LIMIT:
            return None
        a, z = a.astype(np.int64), z.astype(np.int64)
        inside = (a >= lo) & (a < hi)
        a, z = a[inside], z[inside]
        pieces_s.append(a)
        pieces_e.append(np.where(z > 0, a + z, 0))  # a symbol's end, 0 when it has no size
        if with_names:
            setdefault = names.setdefault
            for addr, _size, name in funcs:
                if lo <= addr < hi:
                    setdefault(addr, []).append(name)
    unwind = eh_frame_columns(info.path)
    if unwind is None:
        return None
    e_starts, e_ends, e_known = unwind
    inside = (e_starts >= lo) & (e_starts < hi)
    pieces_s.append(e_starts[inside])
    pieces_e.append(np.where(e_known[inside], e_ends[inside], 0))
    every_s, every_e = np.concatenate(pieces_s), np.concatenate(pieces_e)
    starts, where = np.unique(every_s, return_inverse=True)
    ends = np.zeros(len(starts), dtype=np.int64)
    np.maximum.at(ends, where, every_e)  # the farthest end any source gives
    return starts, ends, names if with_names else None


def x86_scans(code) -> dict | None:
    """Section address → (vector.x86_slot_calls, vector.x86_rel32_pairs) of the sections a call
    graph scans (not .init/.fini), or None when one is out of numpy's range."""
    out = {}
    for sec in code:
        if sec.name in (".init", ".fini"):
            continue
        slot_calls = vector.x86_slot_calls(sec.address, sec.data)
        rel = vector.x86_rel32_pairs(sec.address, sec.data)  # call and jmp rel32
        if slot_calls is None or rel is None:
            return None
        out[sec.address] = slot_calls, rel
    return out


def _calls(np, x86: bool, code, slots, tkeys, tcodes, all_targets: bool, name_list: list, scans=None):
    """(ArrayCalls, the starts added from calls to addresses no table names), or None out of range."""
    # per section, in the pure scan's order: (sites, slots or destinations, tail, kind); the final
    # sort by site is stable, so a site found twice (overlapping sections) keeps that order
    parts = []
    for sec in code:
        if sec.name in (".init", ".fini"):
            continue
        if x86:
            if scans is not None and sec.address in scans:
                slot_calls, rel = scans[sec.address]
            else:
                slot_calls = vector.x86_slot_calls(sec.address, sec.data)
                rel = vector.x86_rel32_pairs(sec.address, sec.data)  # call and jmp rel32
            if slot_calls is None or rel is None:
                return None
            parts.append((slot_calls[0], slot_calls[1], slot_calls[2], "slot"))
            parts.append((rel[0], rel[1], rel[2], "rel"))
        else:
            bl = vector.a64_branch_arrays(sec.address, sec.data, 0x94)
            b = vector.a64_branch_arrays(sec.address, sec.data, 0x14)
            if bl is None or b is None:
                return None
            parts.append((bl[0], bl[1], False, "call"))
            # an aarch64 `b` counts only when it lands on a start some table names (the others
            # are branches); an x86-64 `jmp` also when it lands on one found from the calls below
            parts.append((b[0], b[1], True, "branch"))
    named_keys, named_codes = tkeys, tcodes
    added = []
    if all_targets:
        # direct-call targets are function starts too (x86-64: two calls needed, see callgraph.build)
        calls = [dest if kind == "call" else dest[~tail] for _, dest, tail, kind in parts if kind in ("call", "rel")]
        dest = np.concatenate(calls) if calls else np.zeros(0, dtype=np.int64)
        found, counts = np.unique(dest[~vector.member(dest, tkeys)], return_counts=True)
        added = [t for t in found[counts >= (2 if x86 else 1)].tolist()
                 if any(s.address <= t < s.address + len(s.data) for s in code)]
        if added:
            more = np.array(added, dtype=np.int64)
            tkeys, tcodes = np.concatenate((tkeys, more)), np.concatenate((tcodes, more))
            order = np.argsort(tkeys, kind="stable")
            tkeys, tcodes = tkeys[order], tcodes[order]
    sites, nodes, tails = [], [], []
    for site, dest, tail, kind in parts:
        if kind == "slot":
            keep, node = vector.lookup(dest, *slots)
        elif kind == "branch":
            keep, node = vector.lookup(dest, named_keys, named_codes)
        else:
            keep, node = vector.lookup(dest, tkeys, tcodes)
        sites.append(site[keep])
        nodes.append(node)
        tails.append(np.full(len(node), tail, dtype=bool) if isinstance(tail, bool) else tail[keep])
    if not sites:
        empty = np.zeros(0, dtype=np.int64)
        return ArrayCalls(np, empty, empty, np.zeros(0, dtype=bool), name_list), added
    site, node, tail = np.concatenate(sites), np.concatenate(nodes), np.concatenate(tails)
    order = np.argsort(site, kind="stable")
    return ArrayCalls(np, site[order], node[order], tail[order], name_list), added


def _fill_gaps(np, starts, ends, code, min_gap: int, padding):
    """callgraph._fill_gaps on columns: (starts, ends) lists sorted by start, a function added for
    each stretch of more than min_gap bytes of a code section that no function covers."""
    pieces_s, pieces_e = [], []
    placed = np.zeros(len(starts), dtype=bool)
    for sec in code:
        lo, hi = sec.address, sec.address + len(sec.data)
        i, j = int(starts.searchsorted(lo)), int(starts.searchsorted(hi))
        inner_s, inner_e = starts[i:j], ends[i:j]
        placed[i:j] = True
        reach = np.maximum.accumulate(np.concatenate((np.array([lo], dtype=np.int64), inner_e)))
        gap_s, gap_e = [], []
        for k in np.flatnonzero(inner_s - reach[:-1] > min_gap).tolist():
            cursor, start = int(reach[k]), int(inner_s[k])
            gap = cursor + padding(sec, cursor, start)
            if start - gap > min_gap:
                gap_s.append(gap)
                gap_e.append(start)
        cursor = int(reach[-1])
        if hi - cursor > min_gap:
            gap = cursor + padding(sec, cursor, hi)
            if hi - gap > min_gap:
                gap_s.append(gap)
                gap_e.append(hi)
        pieces_s += [inner_s, np.array(gap_s, dtype=np.int64)]
        pieces_e += [inner_e, np.array(gap_e, dtype=np.int64)]
    pieces_s.append(starts[~placed])
    pieces_e.append(ends[~placed])
    every_s, every_e = np.concatenate(pieces_s), np.concatenate(pieces_e)
    order = np.argsort(every_s, kind="stable")
    return every_s[order].tolist(), every_e[order].tolist()
