"""numpy kernels for the call scans of callgraph.py, used when numpy is installed (it is optional).

The pure pipelines there (split/map/compress) cost ~1 µs per candidate opcode: a 9 MB text holds
~300,000, a third of a second per binary. Here the same arithmetic runs on arrays. Each kernel gives
exactly what the pure pipeline gives (tests/test_elf_scan.py runs both against a per-byte decoder);
addresses too large for int64 arithmetic fall back to the pure path (the kernels return None).
"""

from __future__ import annotations

try:  # optional: without numpy the pure pipelines answer alone
    import numpy as np
except ImportError:  # pragma: no cover - depends on the environment
    np = None

# addresses at or beyond this could overflow int64 sums (site + 5 + rel32): such code goes the pure way
LIMIT = 1 << 60
ENABLED = np is not None


def sorted_keys(targets):
    """The int addresses of a target table within [0, LIMIT), sorted (for searchsorted); computed
    once per binary and passed to each scan."""
    if not ENABLED:
        return None
    return np.sort(np.fromiter((t for t in targets if isinstance(t, int) and 0 <= t < LIMIT), dtype=np.int64))


def _member(values, keys):
    """values[i] in keys, for sorted keys."""
    if not len(keys):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(keys, values)
    at[at == len(keys)] = 0
    return keys[at] == values


def x86_rel32(base: int, data: bytes, opcode: int, targets, keys=None):
    """(sites, destinations) of every `opcode` byte followed by a whole rel32, both lists, kept only
    where the destination is in `targets` (when given); None when the addresses are out of range."""
    return _kept_lists(x86_rel32_arrays(base, data, opcode), targets, keys)


def _x86_bytes(base: int, data: bytes):
    """The code as a uint8 array, or None without numpy or when a rel32 destination (base ± 2 GiB)
    could leave int64 range."""
    if not ENABLED or not 0 <= base < LIMIT - len(data) - (1 << 33):
        return None
    return np.frombuffer(data, dtype=np.uint8)


def x86_rel32_arrays(base: int, data: bytes, opcode: int):
    """x86_rel32 unfiltered, as int64 arrays (sites, destinations); None when out of range."""
    raw = _x86_bytes(base, data)
    if raw is None:
        return None
    if len(raw) < 5:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    offsets = np.flatnonzero(raw[:len(raw) - 4] == opcode)
    sites = offsets.astype(np.int64) + base
    return sites, sites + 5 + _rel32(raw, offsets + 1)


def x86_rel32_pairs(base: int, data: bytes):
    """x86_rel32_arrays for `call` (e8) and `jmp` (e9) in one pass: (sites, destinations, is a
    jump), in site order; None when out of range."""
    raw = _x86_bytes(base, data)
    if raw is None:
        return None
    if len(raw) < 5:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool)
    offsets = np.flatnonzero((raw[:len(raw) - 4] & 0xFE) == 0xE8)
    sites = offsets.astype(np.int64) + base
    return sites, sites + 5 + _rel32(raw, offsets + 1), raw[offsets] == 0xE9


def _rel32(raw, at):
    """The little-endian signed 32-bit values at byte offsets `at` of `raw` (each at most
    len(raw) - 4), as int64: one gather through a view of every unaligned 4-byte window."""
    windows = np.ndarray((len(raw) - 3,), dtype="<i4", buffer=raw, strides=(1,))
    return windows[at].astype(np.int64)


def x86_slot_calls(base: int, data: bytes):
    """(sites, slots, is a jump) of every `call`/`jmp [rip+rel32]` (ff 15 / ff 25 and a whole
    rel32), as arrays; None when out of range. (The two-byte opcodes cannot overlap: the second
    byte is never 0xff.)"""
    raw = _x86_bytes(base, data)
    if raw is None:
        return None
    if len(raw) < 6:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool)
    # the 0xff bytes first (a few percent of code), then their second byte: two passes over the
    # text instead of five
    offsets = np.flatnonzero(raw[:len(raw) - 5] == 0xFF)
    second = raw[offsets + 1]
    offsets = offsets[(second == 0x15) | (second == 0x25)]
    sites = offsets.astype(np.int64) + base
    return sites, sites + 6 + _rel32(raw, offsets + 2), raw[offsets + 1] == 0x25


def lookup(values, keys, codes):
    """(which values are among the sorted int64 `keys`, the `codes` of those that are)."""
    if not len(keys):
        return np.zeros(len(values), dtype=bool), np.zeros(0, dtype=np.int64)
    at = np.searchsorted(keys, values)
    at[at == len(keys)] = 0
    found = keys[at] == values
    return found, codes[at[found]]


def a64_branch_arrays(base: int, data: bytes, first_top: int):
    """a64_branches unfiltered, as int64 arrays (sites, destinations); None when out of range."""
    if not ENABLED or not 0 <= base < LIMIT - 4 * len(data) - (1 << 30):
        return None
    words = np.frombuffer(data, dtype="<u4", count=len(data) // 4)
    top = words >> 24
    index = np.flatnonzero((top >= first_top) & (top <= first_top + 3))
    imm = (words[index] & 0x3FFFFFF).astype(np.int64)
    sites = index.astype(np.int64) * 4 + base
    return sites, sites + ((imm ^ 0x2000000) - 0x2000000) * 4


def member(values, keys):
    """values[i] in keys (sorted int64 keys), as a boolean array."""
    return _member(values, keys)


def a64_branches(base: int, data: bytes, first_top: int, targets, keys=None):
    """(sites, destinations) of every aligned word whose top byte is first_top..first_top+3 (`bl`:
    0x94, `b`: 0x14), kept only where the destination is in `targets` (when given)."""
    return _kept_lists(a64_branch_arrays(base, data, first_top), targets, keys)


def _kept_lists(found, targets, keys):
    """(sites, destinations) as lists, only where the destination is in `targets` (when given)."""
    if found is None:
        return None
    sites, dest = found
    if targets is not None:
        keep = _member(dest, sorted_keys(targets) if keys is None else keys)
        sites, dest = sites[keep], dest[keep]
    return sites.tolist(), dest.tolist()


def fde_ranges(endian: str, table: bytes, count: int, base: int, frames: bytes, frames_base: int):
    """reader.eh_frame_ranges' (start, end or None) for the `count` entries of an .eh_frame_hdr
    search table, in table order; None when numpy is missing or the addresses are out of range."""
    found = fde_columns(endian, table, count, base, frames, frames_base)
    if found is None:
        return None
    starts, ends, known = found
    ends_list = ends.tolist()
    for i in np.flatnonzero(~known).tolist():
        ends_list[i] = None
    return list(zip(starts.tolist(), ends_list))


def fde_columns(endian: str, table: bytes, count: int, base: int, frames: bytes, frames_base: int):
    """fde_ranges as arrays: starts and ends (int64) and which ends are known (bool)."""
    if not ENABLED or not (0 <= base < LIMIT and 0 <= frames_base < LIMIT):
        return None
    pairs = np.frombuffer(table, dtype=endian + "i4", count=count * 2, offset=12).astype(np.int64)
    starts, fdes = pairs[0::2] + base, pairs[1::2] + base
    offsets = fdes - frames_base
    inside = np.flatnonzero((offsets >= 0) & (offsets <= len(frames) - 16))
    ends = np.zeros(count, dtype=np.int64)
    known = np.zeros(count, dtype=bool)
    if len(inside) and len(frames) >= 16:
        raw = np.frombuffer(frames, dtype=np.uint8)
        at = offsets[inside]
        begin = _word(raw, at + 8, endian).view(np.int32).astype(np.int64)
        span = _word(raw, at + 12, endian).astype(np.int64)
        good = (fdes[inside] + 8 + begin == starts[inside]) & (span > 0) & (span < 1 << 28)
        ends[inside[good]] = starts[inside[good]] + span[good]
        known[inside[good]] = True
    return starts, ends, known


def _word(raw, at, endian: str):
    """The 32-bit words at byte offsets `at` of `raw`, as uint32."""
    b = [raw[at + k].astype(np.uint32) for k in range(4)]
    if endian == "<":
        return b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


CHUNK_WORDS = 1 << 18  # words screened at once: the arrays stay a few MB whatever the text's size


def spin_candidates(base: int, data: bytes, max_span: int):
    """spin.candidates' (header, branch) pairs: every backward branch within max_span bytes whose
    span passes spin._may_spin's raw-word screen, in address order. The screen's per-word tests
    become arrays over a chunk of the section and prefix sums answer each span; only a span holding
    an `add xN, xN, #imm` is finished word by word (whether an `adrp xN` before it in the span makes
    it an address, not a counter). Chunks overlap by a span, so a loop across a boundary is seen."""
    if not ENABLED or not 0 <= base < LIMIT - len(data):
        return None
    n = len(data) // 4
    out = []
    back = max_span // 4 + 1
    for first in range(0, n, CHUNK_WORDS):
        start = max(0, first - back)  # the words a branch at `first` may span back to
        end = min(n, first + CHUNK_WORDS)
        out.extend(_spin_chunk(base + 4 * start, data[4 * start:4 * end], max_span, first - start))
    return out


def _spin_chunk(base: int, data: bytes, max_span: int, first: int) -> list:
    """spin_candidates for the branches at word `first` and after of one chunk."""
    n = len(data) // 4
    if n == 0:
        return []
    w = np.frombuffer(data, dtype="<u4", count=n)
    raw = np.frombuffer(data, dtype=np.uint8, count=4 * n)
    top, third = raw[3::4], raw[2::4]
    # spin.py's prefilter on the raw bytes (the top and third byte classes), then its decode
    top_a = (top == 0x54) | ((top & 0x7E) == 0x34)
    screened = ((third == 0xFF) & (top_a | (top == 0x17))) | (((third == 0xFF) | ((third & 7) == 7))
                                                              & ((top & 0x7E) == 0x36) & ~top_a)
    branch = np.flatnonzero(screened)
    branch = branch[branch >= first]
    c = w[branch].astype(np.int64)
    cond19 = ((c & 0xFF000010) == 0x54000000) | ((c & 0x7E000000) == 0x34000000)
    test14 = ~cond19 & ((c & 0x7E000000) == 0x36000000)
    jump26 = ~cond19 & ~test14 & ((c & 0xFC000000) == 0x14000000)
    imm19, imm14, imm26 = (c >> 5) & 0x7FFFF, (c >> 5) & 0x3FFF, c & 0x3FFFFFF
    off = np.where(cond19, (imm19 ^ (1 << 18)) - (1 << 18),
                   np.where(test14, (imm14 ^ (1 << 13)) - (1 << 13), (imm26 ^ (1 << 25)) - (1 << 25))) * 4
    short = (cond19 | test14 | jump26) & (off >= -max_span) & (off <= 0)
    branch = branch[short]
    lo = branch + off[short] // 4  # word indices: the span is words lo .. branch-1
    keep = lo >= 0
    branch, lo = branch[keep], lo[keep]
    if not len(branch):
        return []
    # the screen, word by word
    rd, rn = w & 0x1F, (w >> 5) & 0x1F
    adrp = (w & 0x9F000000) == 0x90000000
    ldst = ((w & 0x3A000000) == 0x38000000) | ((w & 0x3A000000) == 0x28000000)
    is_load = ldst & ((w & 0x00400000) != 0)
    store = ldst & ~is_load & (rn != 29) & (rn != 31) & ((w & 0x04000000) == 0)
    kill = ~adrp & ((((w & 0x3A000000) == 0x38000000) & ((w & 0x01000000) == 0) & ((w & 0x00200400) == 0x400))
                    | ((w & 0xFC000000) == 0x94000000) | ((w & 0xFFFFFC1F) == 0xD63F0000)
                    | ((w & 0xFFFFF01F) == 0xD503301F) | ((w & 0x3F000000) == 0x08000000)
                    | ((w & 0x3B200C00) == 0x38200000) | store)
    counter = ~adrp & ((w & 0x1F000000) == 0x11000000) & (rd == rn) & (rd != 31) & (rd != 29)
    loads = ~adrp & is_load

    def prefix(mask):
        return np.concatenate(([0], np.cumsum(mask, dtype=np.int32)))

    kills, counters, load_count = prefix(kill), prefix(counter), prefix(loads)
    alive = (kills[branch] == kills[lo]) & (load_count[branch] > load_count[lo])
    branch, lo = branch[alive], lo[alive]
    has_counter = counters[branch] > counters[lo]
    out = []
    adds = np.flatnonzero(counter)
    for b, l, check in zip(branch.tolist(), lo.tolist(), has_counter.tolist()):
        if check and not _counters_are_addresses(w, rd, adds, l, b):
            continue
        out.append((base + 4 * l, base + 4 * b))
    return out


def _counters_are_addresses(w, rd, adds, lo: int, hi: int) -> bool:
    """Is every `add xN, xN, #imm` in words lo..hi-1 preceded, within the span, by an `adrp xN`?"""
    pages = set()
    first = int(np.searchsorted(adds, lo))
    last = int(np.searchsorted(adds, hi))
    upto = lo
    for p in adds[first:last].tolist():
        for q in range(upto, p):
            word = int(w[q])
            if (word & 0x9F000000) == 0x90000000:
                pages.add(word & 0x1F)
        upto = p
        if int(rd[p]) not in pages:
            return False
    return True
