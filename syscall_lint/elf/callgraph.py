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
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field

from syscall_lint.elf.callsites import _base, _capstone, _stub_targets

# a loop body longer than this is a whole program's main loop, not a serving loop
MAX_LOOP = 4096
MAX_FUNCTION = 1 << 20  # bytes disassembled for one function's loops
# code scanned for a call graph: beyond this (libLLVM, node: 28-53 MB) the scan costs seconds and
# the binary is not judged from its call graph (it says so in a note)
MAX_GRAPH_CODE = 16 << 20
MIN_GAP = 16  # bytes of code outside every known function before the gap counts as one
_X86_CALL = re.compile(rb"[\xe8\xe9]|\xff[\x15\x25]", re.S)
_A64_BRANCH = re.compile(rb"[\x14-\x17\x94-\x97]")


@dataclass(frozen=True)
class Function:
    start: int
    end: int
    name: str


@dataclass(frozen=True)
class CallSite:
    address: int
    target: object  # function start (int) or imported name (str)
    tail: bool = False  # a jump, not a call: control does not come back


@dataclass
class CallGraph:
    machine: str
    functions: list = field(default_factory=list)  # Function, sorted by start
    sites: dict = field(default_factory=dict)  # function start → [CallSite] in address order
    names: dict = field(default_factory=dict)  # function start → every symbol name at that address
    _starts: list = field(default_factory=list)
    _callers: dict = field(default_factory=dict)

    def function_at(self, addr: int):
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self.functions[i].start <= addr < self.functions[i].end:
            return self.functions[i]
        return None

    def function(self, start: int):
        i = bisect.bisect_left(self._starts, start)
        return self.functions[i] if i < len(self._starts) and self._starts[i] == start else None

    def label(self, node) -> str:
        if isinstance(node, str):
            return node
        func = self.function(node)
        return func.name if func else f"sub_{node:x}"

    def fan_in(self, node) -> int:
        """How many functions call this node."""
        self._index_callers()
        return len(self._callers.get(node, ()))

    def _index_callers(self) -> None:
        if not self._callers:
            callers = defaultdict(set)
            for start, sites in self.sites.items():
                for site in sites:
                    callers[site.target].add(start)
            self._callers = callers

    def distances(self, wanted: set, depth: int, max_fan_in: int = 0) -> dict:
        """node → fewest calls from that node's code to one of the `wanted` names (0 for the names
        themselves), for every node within `depth` calls; with `max_fan_in`, only through functions
        called from at most that many places."""
        self._index_callers()
        dist = {}
        queue = deque()
        for node in self._callers:
            if isinstance(node, str) and _base(node) in wanted:
                dist[node] = 0
                queue.append(node)
        for start, names in self.names.items():
            if start not in dist and any(_base(n) in wanted for n in names):  # static: the libc function itself
                dist[start] = 0
                queue.append(start)
        while queue:
            node = queue.popleft()
            d = dist[node] + 1
            if d > depth:
                continue
            if max_fan_in and isinstance(node, int) and dist[node] > 0 and len(self._callers.get(node, ())) > max_fan_in:
                continue  # a utility called from everywhere: reaching through it says nothing of the caller
            for caller in self._callers.get(node, ()):
                if caller not in dist:
                    dist[caller] = d
                    queue.append(caller)
        return dist


def build(info, sections, relocs) -> CallGraph | None:
    """The call graph of one binary's code, or None for a machine whose calls are not decoded (or
    code beyond MAX_GRAPH_CODE: the byte scan is linear and Python-speed)."""
    md = _capstone(info.machine)
    if md is None:
        return None
    md.skipdata = True
    x86 = info.machine == "x86-64"
    code = [s for s in sections if not s.name.startswith(".plt")]
    if sum(len(s.data) for s in code) > MAX_GRAPH_CODE:
        return None
    stubs = _stub_targets(md, info.machine, sections, relocs)  # PLT stub address → imported name
    got = dict(relocs)  # GOT slot → imported name (x86-64 `call [rip+slot]`, -fno-plt)
    text_end = max((s.address + len(s.data) for s in code), default=0)
    known = _known_functions(info, code)  # start → (end or None, names)
    # direct-call targets are function starts too (fixed-width aarch64 words are reliable; a byte
    # scan over x86-64 can hit a call opcode inside another instruction, so two callers are needed,
    # and the unwind table, when there is one, already lists every function GCC and clang emit)
    all_targets = not x86 or not info.unwind
    targets = dict(stubs)
    targets.update((start, start) for start in known)
    raw_calls = []  # (site, node, tail): node a function start or an imported name
    for sec in code:
        if sec.name in (".init", ".fini"):
            continue
        if x86:
            _scan_x86(sec.address, sec.data, got, None if all_targets else targets, raw_calls)
        else:
            _scan_a64(sec.address, sec.data, targets, raw_calls)
    if all_targets:
        counts = defaultdict(int)
        for site, target, tail in raw_calls:
            if not tail and target not in targets:
                counts[target] += 1
        for target, n in counts.items():
            if (n >= 2 or not x86) and any(s.address <= target < s.address + len(s.data) for s in code):
                known[target] = (None, [])
                targets[target] = target
    graph = CallGraph(info.machine)
    starts = sorted(known)
    for i, start in enumerate(starts):
        end, names = known[start]
        limit = starts[i + 1] if i + 1 < len(starts) else text_end
        end = min(end, limit) if end else limit
        if end <= start:
            continue
        graph.functions.append(Function(start, end, _pick_name(names) or f"sub_{start:x}"))
        if names:
            graph.names[start] = names
    graph.functions = _fill_gaps(graph.functions, code)
    graph._starts = [f.start for f in graph.functions]
    if all_targets:  # resolve what the scan kept unfiltered
        raw_calls = [(site, targets[t] if isinstance(t, int) else t, tail) for site, t, tail in raw_calls
                     if not isinstance(t, int) or t in targets]
    resolved = sorted(raw_calls)
    # one sweep over sites and functions, both sorted by address (no search per site)
    funcs, k, n = graph.functions, 0, len(graph.functions)
    sites_of = graph.sites
    for site, node, tail in resolved:
        while k < n and funcs[k].end <= site:
            k += 1
        if k >= n:
            break
        caller = funcs[k]
        if site < caller.start:
            continue
        if tail and isinstance(node, int) and caller.start <= node < caller.end:
            continue  # a jump inside its own function: a branch, not a call
        sites_of.setdefault(caller.start, []).append(CallSite(site, node, tail))
    return graph


def _fill_gaps(functions: list, code) -> list:
    """Code no symbol or unwind entry covers (crtstuff's helpers, hand-written assembly) becomes a
    function of its own from the gap's first instruction, so every call site lies in a function."""
    out = []
    for sec in code:
        lo, hi = sec.address, sec.address + len(sec.data)
        inside = [f for f in functions if lo <= f.start < hi]
        cursor = lo
        for f in inside:
            if f.start - cursor > MIN_GAP:
                start = cursor + _padding(sec, cursor, f.start)
                if f.start - start > MIN_GAP:
                    out.append(Function(start, f.start, f"sub_{start:x}"))
            out.append(f)
            cursor = max(cursor, f.end)
        if hi - cursor > MIN_GAP:
            start = cursor + _padding(sec, cursor, hi)
            if hi - start > MIN_GAP:
                out.append(Function(start, hi, f"sub_{start:x}"))
    placed = {f.start for f in out}
    out.extend(f for f in functions if f.start not in placed)
    out.sort(key=lambda f: f.start)
    return out


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
    known = {}
    for addr, size, name in info.functions:
        if not lo <= addr < hi:
            continue
        end, names = known.get(addr, (None, []))
        if size:
            end = max(end or 0, addr + size)
        names.append(name)
        known[addr] = (end, names)
    for start, end in eh_frame_ranges(info.path):
        if not lo <= start < hi:
            continue
        old_end, names = known.get(start, (None, []))
        known[start] = (max(old_end or 0, end or 0) or None, names)
    return known


def _pick_name(names: list) -> str | None:
    """The most telling of several symbols at one address: a public name over __libc_ internals."""
    if not names:
        return None
    return sorted(names, key=lambda n: (n.startswith("_"), len(n)))[0]


def _scan_x86(base, data, got, targets, calls) -> None:
    """(site, target, is a jump) for every `call`/`jmp rel32` (kept only when it lands in `targets`,
    if given) and every `call`/`jmp [rip+slot]` through an imported GOT slot (the slot's name)."""
    frombytes = int.from_bytes
    size = len(data)
    append = calls.append
    for m in _X86_CALL.finditer(data):
        pos = m.start()
        op = data[pos]
        if op == 0xFF:
            if pos + 6 <= size:
                slot = base + pos + 6 + frombytes(data[pos + 2:pos + 6], "little", signed=True)
                name = got.get(slot)
                if name is not None:
                    append((base + pos, name, data[pos + 1] == 0x25))
        elif pos + 5 <= size:
            target = base + pos + 5 + frombytes(data[pos + 1:pos + 5], "little", signed=True)
            if targets is None:
                append((base + pos, target, op == 0xE9))
            else:
                node = targets.get(target)
                if node is not None:
                    append((base + pos, node, op == 0xE9))


def _scan_a64(base, data, targets, calls) -> None:
    """(site, target, is a jump) for every `bl` (any target: a new function start when unknown) and
    every `b` that lands on a known function or stub (a tail call; other `b`s are branches)."""
    frombytes = int.from_bytes
    append = calls.append
    for m in _A64_BRANCH.finditer(data):
        pos = m.start()
        if pos % 4 != 3:
            continue
        word = frombytes(data[pos - 3:pos + 1], "little")
        imm = word & 0x3FFFFFF
        if imm & 0x2000000:
            imm -= 1 << 26
        site = base + pos - 3
        target = site + imm * 4
        if word & 0x80000000:
            append((site, target, False))
        elif target in targets:
            append((site, targets[target], True))


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


def flow(info, sections, func: Function, md=None):
    """(blocks, natural loops innermost first) of one function, by disassembling just that function."""
    from syscall_lint.elf import cfg

    if md is None:
        md = _capstone(info.machine)
        md.skipdata = True
    insns = instructions(info, sections, func, md)
    graph = cfg.blocks(info.machine, insns, func.start, func.end)
    return graph, cfg.natural_loops(graph)
