"""Functions and the direct calls between them, for x86-64 and aarch64 code.

Function boundaries are merged from every source a binary offers: the symbol tables (.symtab,
.dynsym), the unwind table (.eh_frame_hdr FDEs, always, not only when symbols are missing), and
the targets of direct calls. Calls are found by scanning the code bytes for call and branch
encodings (x86-64 `call`/`jmp rel32` and `call`/`jmp [rip+GOT]`; aarch64 `bl`/`b`) — cheap, no
disassembly — and a call counts when it lands on a function start or an import stub. Imports are
resolved through the PLT/GOT relocations (dynamic binaries) or the symbol table (static ones).

A node of the graph is a function start (int) or an imported name (str). `distances` answers
"which functions reach one of these names within N calls", by a breadth-first walk over the
reversed edges from the names.
"""

from __future__ import annotations

import bisect
from itertools import accumulate, compress, filterfalse, repeat
from operator import add, and_, itemgetter, mul, not_, or_, sub, xor
import re
import struct
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import NamedTuple

from syscall_lint.elf import graphcols, vector
from syscall_lint.elf.calltable import ListCalls
from syscall_lint.elf.callsites import _base, _capstone, _stub_targets

# a loop body longer than this is a whole program's main loop, not a serving loop
MAX_LOOP = 4096
MAX_FUNCTION = 1 << 20  # bytes disassembled for one function's loops
# code scanned for a call graph: beyond this (libLLVM, node: 28-53 MB) the scan costs seconds and
# the binary is not judged from its call graph (it says so in a note)
MAX_GRAPH_CODE = 16 << 20
MIN_GAP = 16  # bytes of code outside every known function before the gap counts as one
_X86_GOT_CALL = re.compile(rb"\xff[\x15\x25]")  # call/jmp [rip+slot]


class Function(NamedTuple):  # a tuple: a large binary has tens of thousands
    start: int
    end: int
    name: str


class CallSite(NamedTuple):  # a tuple: hundreds of thousands are made per large binary
    address: int
    target: object  # function start (int) or imported name (str)
    tail: bool = False  # a jump, not a call: control does not come back


class _Sites:
    """function start → [CallSite] in address order, answered on demand from the binary's calls
    sorted by address (a binary search per function): a question touches a few functions, a binary
    has thousands."""

    def __init__(self, graph=None):
        self.graph = graph
        self._made = {}

    def get(self, start, default=None):
        found = self._made.get(start)
        if found is None:
            found = self.graph._sites_of(start) if self.graph is not None else []
            self._made[start] = found
        return found or default

    def __getitem__(self, start):
        found = self.get(start)
        if found is None:
            raise KeyError(start)
        return found

    def __contains__(self, start):
        return bool(self.get(start))

    def __iter__(self):
        return (start for start in self.graph._starts if self.get(start)) if self.graph else iter(())

    def __len__(self):
        return sum(1 for _ in self)

    def __bool__(self):
        return self.graph is not None and len(self.graph._table) > 0

    def keys(self):
        return list(self)

    def items(self):
        return [(start, self.get(start)) for start in self]

    def values(self):
        return [self.get(start) for start in self]


@dataclass
class CallGraph:
    machine: str
    sites: _Sites = field(default=None)  # function start → [CallSite] in address order
    names: dict = field(default_factory=dict)  # function start → every symbol name at that address
    # the functions, sorted by start, as two columns: a large binary has tens of thousands and a
    # question reads a few, so a Function (and its name) is made when asked for
    _starts: list = field(default_factory=list)
    _ends: list = field(default_factory=list)
    _callers: dict = field(default_factory=dict)  # node → starts of the functions calling it (on demand)
    _by_base: dict | None = None  # base symbol name → function starts holding it
    _called: list | None = None  # (imported name, its base name) of the names called, first called first
    _disassembled: dict = field(default_factory=dict)  # function start → its instructions (loops, slots)
    # every resolved call: calltable.ListCalls or ArrayCalls
    _table: object = field(default_factory=lambda: ListCalls([]))

    def __post_init__(self):
        self.sites = _Sites(self)

    def instructions(self, info, sections, func: Function, md) -> list:
        """instructions() of one function, disassembled once for every question (its loops, its
        slot calls, the fields it writes)."""
        found = self._disassembled.get(func.start)
        if found is None:
            found = self._disassembled[func.start] = instructions(info, sections, func, md)
        return found

    def calls(self) -> list:
        """(site, node, tail) of every resolved call, by site."""
        return self._table.rows()

    def _sites_of(self, start: int) -> list:
        """The calls in one function, minus jumps inside it (branches, not calls)."""
        func = self.function(start)
        if func is None:
            return []
        lo, hi = func.start, func.end
        return [CallSite._make(call) for call in self._table.between(lo, hi)
                if not (call[2] and type(call[1]) is int and lo <= call[1] < hi)]

    def callers(self, node) -> set:
        """Starts of the functions with a call to `node`."""
        found = self._callers.get(node)
        if found is None:
            found = set()
            for site, _target, tail in self._table.to(node):
                func = self.function_at(site)
                if func is not None and not (tail and type(node) is int and func.start <= node < func.end):
                    found.add(func.start)
            self._callers[node] = found
        return found

    @property
    def functions(self) -> list:
        """Every Function, sorted by start."""
        return [self._function(i) for i in range(len(self._starts))]

    def _function(self, i: int) -> Function:
        start = self._starts[i]
        return Function(start, self._ends[i], _pick_name(self.names.get(start)) or f"sub_{start:x}")

    def function_at(self, addr: int):
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self._starts[i] <= addr < self._ends[i]:
            return self._function(i)
        return None

    def function(self, start: int):
        i = bisect.bisect_left(self._starts, start)
        return self._function(i) if i < len(self._starts) and self._starts[i] == start else None

    def label(self, node) -> str:
        if isinstance(node, str):
            return node
        func = self.function(node)
        return func.name if func else f"sub_{node:x}"

    def fan_in(self, node) -> int:
        """How many functions call this node."""
        return len(self.callers(node))

    def distances(self, wanted: set, depth: int, max_fan_in: int = 0) -> dict:
        """node → fewest calls from that node's code to one of the `wanted` names (0 for the names
        themselves), for every node within `depth` calls; with `max_fan_in`, only through functions
        called from at most that many places."""
        dist = {}
        queue = deque()
        if self._called is None:  # the imported names called, with their base names (once per graph)
            self._called = [(name, _base(name)) for name in self._table.called_names()]
        for node, base_name in self._called:
            if base_name in wanted and self.callers(node):
                dist[node] = 0
                queue.append(node)
        if self._by_base is None:
            self._by_base = by_base = defaultdict(list)
            for start, names in self.names.items():
                if len(names) == 1:  # most functions have one name, most names no prefix to strip
                    name = names[0]
                    by_base[name if name[:2] != "__" and "@" not in name else _base(name)].append(start)
                    continue
                for base_name in {_base(n) for n in names}:
                    by_base[base_name].append(start)
        for start in sorted({s for name in wanted for s in self._by_base.get(name, ())}):
            if start not in dist:  # static: the libc function itself
                dist[start] = 0
                queue.append(start)
        while queue:
            node = queue.popleft()
            d = dist[node] + 1
            if d > depth:
                continue
            if max_fan_in and isinstance(node, int) and dist[node] > 0 and len(self.callers(node)) > max_fan_in:
                continue  # a utility called from everywhere: reaching through it says nothing of the caller
            for caller in self.callers(node):
                if caller not in dist:
                    dist[caller] = d
                    queue.append(caller)
        return dist


def too_large(code_bytes: int) -> bool:
    """Is code of this size (PLT stubs not counted) beyond the call graph's budget?"""
    return code_bytes > MAX_GRAPH_CODE


def build(info, sections, relocs, scans=None) -> CallGraph | None:
    """The call graph of one binary's code, or None for a machine whose calls are not decoded (or
    code beyond MAX_GRAPH_CODE: the byte scan is linear and Python-speed)."""
    md = _capstone(info.machine)
    if md is None:
        return None
    md.skipdata = True
    x86 = info.machine == "x86-64"
    code = [s for s in sections if not s.name.startswith(".plt")]
    if too_large(sum(len(s.data) for s in code)):
        return None
    stubs = _stub_targets(md, info.machine, sections, relocs)  # PLT stub address → imported name
    got = dict(relocs)  # GOT slot → imported name (x86-64 `call [rip+slot]`, -fno-plt)
    text_end = max((s.address + len(s.data) for s in code), default=0)
    # direct-call targets are function starts too (fixed-width aarch64 words are reliable; a byte
    # scan over x86-64 can hit a call opcode inside another instruction, so two callers are needed,
    # and the unwind table, when there is one, already lists every function GCC and clang emit)
    all_targets = not x86 or not info.unwind
    graph = CallGraph(info.machine)
    columns = graphcols.build(info, code, stubs, got, x86, all_targets, text_end, MIN_GAP, _padding, scans)
    if columns is not None:
        graph._starts, graph._ends, graph.names, graph._table = columns
        return graph
    known = _known_functions(info, code)  # start → (end or None, names)
    targets = dict(stubs)
    targets.update((start, start) for start in known)
    raw_calls = []  # (site, node, tail): node a function start or an imported name
    keys = vector.sorted_keys(targets)  # for numpy's membership tests, once for every section
    for sec in code:
        if sec.name in (".init", ".fini"):
            continue
        if x86:
            _scan_x86(sec.address, sec.data, got, None if all_targets else targets, raw_calls, keys)
        else:
            _scan_a64(sec.address, sec.data, targets, raw_calls, keys)
    if all_targets:
        # calls (not jumps) to addresses no table names, counted in C loops
        counts = Counter(filterfalse(targets.__contains__, compress(map(itemgetter(1), raw_calls),
                                                                    map(not_, map(itemgetter(2), raw_calls)))))
        for target, n in counts.items():
            if not isinstance(target, int):
                continue  # an imported name (a call through the GOT): not a function of this binary
            if (n >= 2 or not x86) and _in_code(code, target):
                known[target] = [None, []]
                targets[target] = target
    graph._starts, graph._ends, graph.names = _bounds(known, text_end, code)
    if all_targets:  # resolve what the scan kept unfiltered
        # an address becomes its function or stub name; a name stays; an unknown address goes
        nodes = list(map(itemgetter(1), raw_calls))
        keep = list(map(or_, map(targets.__contains__, nodes), map(isinstance, nodes, repeat(str))))
        raw_calls = list(zip(compress(map(itemgetter(0), raw_calls), keep),
                             compress(map(targets.get, nodes, nodes), keep),
                             compress(map(itemgetter(2), raw_calls), keep)))
    graph._table = ListCalls(sorted(raw_calls, key=itemgetter(0)))  # by site
    return graph


def _in_code(code, addr: int) -> bool:
    return any(s.address <= addr < s.address + len(s.data) for s in code)


def _bounds(known: dict, text_end: int, code):
    """(starts, ends, names) of the functions, sorted by start: each known start runs to its
    recorded end or the next start (the last to the end of the code), and the gaps get functions
    of their own (_fill_gaps). `names` maps a start to its symbol names."""
    starts = sorted(known)
    kept, ends, names = [], [], {}
    for start, limit in zip(starts, starts[1:] + [text_end]):
        end, found = known[start]
        end = min(end, limit) if end else limit
        if end <= start:
            continue
        kept.append(start)
        ends.append(end)
        if found:
            names[start] = found
    return (*_fill_gaps(kept, ends, code), names)


def _fill_gaps(starts: list, ends: list, code) -> tuple:
    """Code no symbol or unwind entry covers (crtstuff's helpers, hand-written assembly) becomes a
    function of its own from the gap's first instruction, so every call site lies in a function.
    (starts, ends) in, (starts, ends) out, sorted by start."""
    out = []  # (start, end)
    placed = set()
    for sec in code:
        lo, hi = sec.address, sec.address + len(sec.data)
        cursor = lo
        for i in range(bisect.bisect_left(starts, lo), bisect.bisect_left(starts, hi)):
            start, end = starts[i], ends[i]
            if start - cursor > MIN_GAP:
                gap = cursor + _padding(sec, cursor, start)
                if start - gap > MIN_GAP:
                    out.append((gap, start))
            out.append((start, end))
            placed.add(start)
            cursor = max(cursor, end)
        if hi - cursor > MIN_GAP:
            gap = cursor + _padding(sec, cursor, hi)
            if hi - gap > MIN_GAP:
                out.append((gap, hi))
    out.extend(pair for pair in zip(starts, ends) if pair[0] not in placed)
    out.sort(key=itemgetter(0))  # by start
    return list(map(itemgetter(0), out)), list(map(itemgetter(1), out))


def _padding(sec, start: int, end: int) -> int:
    """Bytes of alignment padding (nop, int3, zero words) at the start of a gap."""
    data, base, n = sec.data, sec.address, 0
    while start + n < end and data[start - base + n] in (0x90, 0xCC, 0x00, 0x66, 0x0F, 0x1F, 0x44, 0x84, 0x2E):
        n += 1
    return n


def boundaries(info, sections) -> list:
    """Function bounds from the symbol tables and the unwind table, without scanning calls (for
    naming a code address): [Function] sorted by start."""
    known = _known_functions(info, sections or None)
    starts = sorted(known)
    out = []
    for i, start in enumerate(starts):
        end, names = known[start]
        limit = starts[i + 1] if i + 1 < len(starts) else (end or start + 1)
        end = min(end, limit) if end else limit
        if end > start:
            out.append(Function(start, end, _pick_name(names) or f"sub_{start:x}"))
    return out


def _known_functions(info, code) -> dict:
    """start → (end or None, [names]) from the symbol tables and the unwind table."""
    from syscall_lint.elf.reader import eh_frame_ranges

    lo = min((s.address for s in code), default=0) if code else 0
    hi = max((s.address + len(s.data) for s in code), default=0) if code else 1 << 64
    known = {}  # start → [end or None, names]: lists, updated in place (tens of thousands per binary)
    get = known.get
    for addr, size, name in info.functions:
        if not lo <= addr < hi:
            continue
        entry = get(addr)
        if entry is None:
            entry = known[addr] = [None, []]
        if size:
            entry[0] = max(entry[0] or 0, addr + size)
        entry[1].append(name)
    for start, end in eh_frame_ranges(info.path):
        if not lo <= start < hi:
            continue
        entry = get(start)
        if entry is None:
            known[start] = [end or None, []]
        elif end or entry[0]:
            entry[0] = max(entry[0] or 0, end or 0) or None
    return known


def _pick_name(names: list) -> str | None:
    """The most telling of several symbols at one address: a public name over __libc_ internals."""
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    return sorted(names, key=lambda n: (n.startswith("_"), len(n)))[0]


def _byte_offsets(data: bytes, byte: bytes) -> list:
    """Every offset of `byte` in `data`, by C loops (split, then running sums of the piece lengths)."""
    pieces = data.split(byte)
    pieces.pop()
    return list(map(add, accumulate(map(add, map(len, pieces), repeat(1))), repeat(-1)))


def _scan_x86(base, data, got, targets, calls, keys=None) -> None:
    """(site, target, is a jump) for every `call`/`jmp rel32` (kept only when it lands in `targets`,
    if given) and every `call`/`jmp [rip+slot]` through an imported GOT slot (the slot's name).

    A large binary holds hundreds of thousands of calls: the opcode offsets, the arithmetic and the
    filtering run in split/map/compress pipelines (C loops), not in one Python step per call."""
    unpack = struct.Struct("<i").unpack_from
    size = len(data)
    for m in _X86_GOT_CALL.finditer(data):
        pos = m.start()
        if pos + 6 <= size:
            name = got.get(base + pos + 6 + unpack(data, pos + 2)[0])
            if name is not None:
                calls.append((base + pos, name, data[pos + 1] == 0x25))
    last = size - 5  # a rel32 needs four bytes after its opcode
    found = []
    for opcode, tail in ((b"\xe8", False), (b"\xe9", True)):
        hit = vector.x86_rel32(base, data, opcode[0], targets, keys)
        if hit is not None:  # numpy did the same arithmetic on arrays
            sites, dest = hit
            found.extend(zip(sites, dest if targets is None else map(targets.__getitem__, dest), repeat(tail)))
            continue
        offsets = _byte_offsets(data, opcode)
        while offsets and offsets[-1] > last:
            offsets.pop()
        n = len(offsets)
        if not n:
            continue
        rel_at = list(map(add, offsets, repeat(1, n)))
        rels = map(itemgetter(0), map(unpack, repeat(data, n), rel_at))
        dest = list(map(add, rels, map(add, offsets, repeat(base + 5, n))))  # site + 5 + rel
        sites = map(add, offsets, repeat(base, n))
        if targets is None:
            found.extend(zip(sites, dest, repeat(tail, n)))
        else:
            keep = list(map(targets.__contains__, dest))
            found.extend(zip(compress(sites, keep), map(targets.__getitem__, compress(dest, keep)), repeat(tail, n)))
    calls.extend(found)


_A64_BL = bytes(int(0x94 <= b <= 0x97) for b in range(256))  # top byte of `bl` → 1, any other → 0
_A64_B = bytes(int(0x14 <= b <= 0x17) for b in range(256))  # top byte of `b`


def _scan_a64(base, data, targets, calls, keys=None) -> None:
    """(site, target, is a jump) for every `bl` (any target: a new function start when unknown) and
    every `b` that lands on a known function or stub (a tail call; other `b`s are branches).

    Words are aligned, so each word's top byte (data[3::4]) names its opcode: the words to decode
    are found, and their offsets computed, in C loops (translate, split, map), not per word."""
    tops = data[3::4]
    words = struct.Struct("<I").unpack_from
    for table, tail in ((_A64_BL, False), (_A64_B, True)):
        hit = vector.a64_branches(base, data, 0x14 if tail else 0x94, targets if tail else None, keys)
        if hit is not None:  # numpy did the same arithmetic on arrays
            sites, dest = hit
            calls.extend(zip(sites, map(targets.__getitem__, dest) if tail else dest, repeat(tail)))
            continue
        index = _byte_offsets(tops.translate(table), b"\x01")
        n = len(index)
        if not n:
            continue
        at = list(map(mul, index, repeat(4, n)))
        imm = map(and_, map(itemgetter(0), map(words, repeat(data, n), at)), repeat(0x3FFFFFF, n))
        signed = map(sub, map(xor, imm, repeat(0x2000000, n)), repeat(0x2000000, n))
        sites = list(map(add, at, repeat(base, n)))
        dest = list(map(add, sites, map(mul, signed, repeat(4, n))))
        if not tail:
            calls.extend(zip(sites, dest, repeat(False, n)))
        else:
            keep = list(map(targets.__contains__, dest))
            calls.extend(zip(compress(sites, keep), map(targets.__getitem__, compress(dest, keep)), repeat(True, n)))


def instructions(info, sections, func: Function, md) -> list:
    """The disassembly of one function, as capstone's (address, size, mnemonic, op_str)."""
    if func.end - func.start > MAX_FUNCTION:
        return []
    for sec in sections:
        base, data = sec.address, sec.data
        if base <= func.start < base + len(data):
            chunk = data[func.start - base:min(func.end, base + len(data)) - base]
            return list(md.disasm_lite(chunk, func.start))
    return []


def flow(info, sections, func: Function, md=None, graph=None):
    """(blocks, natural loops innermost first) of one function, by disassembling just that function
    (through `graph`'s cache when given)."""
    from syscall_lint.elf import cfg

    if md is None:
        md = _capstone(info.machine)
        md.skipdata = True
    insns = graph.instructions(info, sections, func, md) if graph is not None else instructions(info, sections, func, md)
    graph = cfg.blocks(info.machine, insns, func.start, func.end)
    return graph, cfg.natural_loops(graph)


def descend(sites, node, dist: dict, label) -> tuple:
    """The labels of one shortest call chain from `node` down to a wanted name, following `dist`
    (from CallGraph.distances) through `sites` (node → its call sites): each step goes to a callee
    one call closer."""
    out = []
    while True:
        out.append(label(node))
        if isinstance(node, str) or dist.get(node, 0) == 0:
            return tuple(out)
        below = [s.target for s in sites.get(node, ()) if dist.get(s.target, 99) == dist[node] - 1]
        if not below:
            return tuple(out)
        node = min(below, key=lambda t: (isinstance(t, int), str(t)))
