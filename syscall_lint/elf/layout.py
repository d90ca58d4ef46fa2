"""The section and program header tables, the dynamic section and GNU version needs, decoded with
struct from the bytes pyelftools locates. pyelftools' construct-based parsing costs ~300 Python-level
parses per file; this reads the same fields in a handful of unpack calls, with every offset and
count checked against the file's size, so hostile headers cannot make it loop or allocate wildly."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add, or_

try:  # optional (see vector.py): relocation rows on arrays
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None

MAX_SECTIONS = 1 << 16
MAX_DYNAMIC = 100_000
ROWS_ON_ARRAYS = 64  # named relocation rows beyond which numpy reads them (a few are cheaper one by one)


class Corrupt(Exception):
    pass


@dataclass
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int


SHT_PROGBITS, SHT_SYMTAB, SHT_DYNAMIC, SHT_NOBITS, SHT_DYNSYM = 1, 2, 6, 8, 11
SHF_EXECINSTR = 0x4
PT_DYNAMIC, PT_INTERP = 2, 3
DT_NEEDED, DT_FLAGS_1 = 1, 0x6FFFFFFB


class Layout:
    def __init__(self, fh, size: int, header, bits: int, little: bool):
        self.fh, self.size, self.bits, self.little = fh, size, bits, little
        self.e = "<" if little else ">"
        self._data = {}  # (offset, size) → bytes of the sections read so far
        self.sections = self._sections(header)
        self.by_name = {}
        for sec in self.sections:
            self.by_name.setdefault(sec.name, sec)
        self.segments = self._segments(header)

    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0 or offset > self.size:
            raise Corrupt(f"data at offset {offset:#x} lies beyond the end of the file")
        size = min(size, self.size - offset)
        self.fh.seek(offset)
        return self.fh.read(size)

    def data(self, sec: Section) -> bytes:
        """A section's bytes, read once per open file: the string and symbol tables are asked for
        by several readers (on /usr/bin + /usr/lib/x86_64-linux-gnu, 4,300 of 18,600 reads, 63 MB)."""
        if sec.type == SHT_NOBITS:
            return b""
        key = (sec.offset, sec.size)
        found = self._data.get(key)
        if found is None:
            found = self._data[key] = self.read(sec.offset, sec.size)
        return found

    def _sections(self, h) -> list:
        shoff, shnum, shentsize, shstrndx = h["e_shoff"], h["e_shnum"], h["e_shentsize"], h["e_shstrndx"]
        if shoff == 0:
            return []
        fmt = struct.Struct(self.e + ("IIQQQQIIQQ" if self.bits == 64 else "IIIIIIIIII"))
        if shentsize < fmt.size:
            raise Corrupt(f"section header entries of {shentsize} bytes are too small")
        if shnum == 0:  # extended numbering: the count is in section 0's sh_size
            shnum = fmt.unpack(self.read(shoff, fmt.size).ljust(fmt.size, b"\0"))[5]
        if shnum > MAX_SECTIONS or shoff + shnum * shentsize > self.size:
            raise Corrupt("section header table lies beyond the end of the file")
        raw = self.read(shoff, shnum * shentsize)
        rows = [fmt.unpack_from(raw, i * shentsize) for i in range(shnum)]
        names = b""
        if 0 < shstrndx < shnum:
            r = rows[shstrndx]
            names = self.read(r[4], min(r[5], 1 << 24)) if r[1] != SHT_NOBITS else b""
        out = []
        for r in rows:
            end = names.find(b"\0", r[0]) if r[0] < len(names) else -1
            name = names[r[0]:end].decode("latin-1") if end >= 0 else ""
            out.append(Section(name, r[1], r[2], r[3], r[4], r[5], r[6], r[9]))
        return out

    def _segments(self, h) -> list:
        phoff, phnum, phentsize = h["e_phoff"], h["e_phnum"], h["e_phentsize"]
        if phoff == 0 or phnum == 0:
            return []
        fmt = struct.Struct(self.e + ("IIQQQQQQ" if self.bits == 64 else "IIIIIIII"))
        if phentsize < fmt.size or phnum > 0xFFFF or phoff + phnum * phentsize > self.size:
            raise Corrupt("program header table lies beyond the end of the file")
        raw = self.read(phoff, phnum * phentsize)
        out = []
        for i in range(phnum):
            r = fmt.unpack_from(raw, i * phentsize)
            # (type, offset, filesz) in both layouts
            out.append((r[0], r[2], r[5]) if self.bits == 64 else (r[0], r[1], r[4]))
        return out

    def interp(self):
        for ptype, offset, filesz in self.segments:
            if ptype == PT_INTERP:
                return self.read(offset, min(filesz, 4096)).split(b"\0", 1)[0].decode("latin-1")
        return None

    def has_dynamic_segment(self) -> bool:
        return any(ptype == PT_DYNAMIC for ptype, _, _ in self.segments)

    def strings(self, index: int) -> bytes:
        if 0 <= index < len(self.sections):
            return self.data(self.sections[index])
        return b""

    def dynamic(self):
        """(DT_NEEDED names, DT_FLAGS_1)."""
        sec = self.by_name.get(".dynamic")
        if sec is None or sec.type != SHT_DYNAMIC:
            return [], 0
        data = self.data(sec)
        fmt = struct.Struct(self.e + ("qQ" if self.bits == 64 else "iI"))
        strtab = self.strings(sec.link)
        needed, flags_1 = [], 0
        for i in range(min(len(data) // fmt.size, MAX_DYNAMIC)):
            tag, val = fmt.unpack_from(data, i * fmt.size)
            if tag == 0:
                break
            if tag == DT_NEEDED and val < len(strtab):
                needed.append(strtab[val:strtab.find(b"\0", val)].decode("latin-1"))
            elif tag == DT_FLAGS_1:
                flags_1 = val
        return needed, flags_1

    def version_names(self) -> dict:
        """vna_other index → version name, from .gnu.version_r (bounded walk)."""
        sec = self.by_name.get(".gnu.version_r")
        if sec is None:
            return {}
        data = self.data(sec)
        strtab = self.strings(sec.link)
        need, aux = struct.Struct(self.e + "HHIII"), struct.Struct(self.e + "IHHII")
        names, off, guard = {}, 0, 0
        while 0 <= off <= len(data) - need.size and guard < 4096:
            _ver, cnt, _file, aux_off, nxt = need.unpack_from(data, off)
            a = off + aux_off
            for _ in range(min(cnt, 4096)):
                if not 0 <= a <= len(data) - aux.size:
                    break
                _h, _f, other, name, anext = aux.unpack_from(data, a)
                if name < len(strtab):
                    names[other] = strtab[name:strtab.find(b"\0", name)].decode("latin-1")
                if anext == 0:
                    break
                a += anext
            guard += 1
            if nxt == 0:
                break
            off += nxt
        return names

    def relocations(self, symbols_by_index) -> dict:
        """GOT slot address → symbol name, from the PLT and dynamic relocation tables."""
        out = {}
        for name in (".rela.plt", ".rela.dyn", ".rel.plt", ".rel.dyn"):
            sec = self.by_name.get(name)
            if sec is None:
                continue
            rela = name.startswith(".rela")
            if self.bits == 64:
                fmt = struct.Struct(self.e + ("QQq" if rela else "QQ"))
                shift = 32
            else:
                fmt = struct.Struct(self.e + ("IIi" if rela else "II"))
                shift = 8
            data = self.data(sec)
            rows = _named_rows(data, fmt.size, self.bits, self.little)
            if _np is not None and len(rows) > ROWS_ON_ARRAYS:
                out.update(self._named_slots(data, fmt.size, rows, shift, symbols_by_index))
                continue
            for i in rows:
                r = fmt.unpack_from(data, i * fmt.size)
                sym = r[1] >> shift
                if sym and sym < len(symbols_by_index) and symbols_by_index[sym]:
                    out[r[0]] = symbols_by_index[sym]
        return out

    def _named_slots(self, data: bytes, size: int, rows: list, shift: int, symbols_by_index):
        """(slot, name) of the given relocation rows, in order, on arrays: each symbol's name is
        looked up once, not once per row (a library's data relocations name the same symbols
        again and again)."""
        width = self.bits // 8
        word = _np.dtype(self.e + ("u8" if self.bits == 64 else "u4"))
        fields = [("offset", word), ("info", word)]
        if size > 2 * width:
            fields.append(("addend", f"V{size - 2 * width}"))
        table = _np.frombuffer(data, dtype=_np.dtype(fields), count=len(data) // size)
        table = table[_np.array(rows, dtype=_np.int64)]
        syms = (table["info"] >> word.type(shift)).astype(_np.int64)
        ok = (syms > 0) & (syms < len(symbols_by_index))
        offsets, syms = table["offset"][ok].tolist(), syms[ok]
        names = {s: symbols_by_index[s] for s in _np.unique(syms).tolist()}
        return [(offset, name) for offset, name in zip(offsets, map(names.__getitem__, syms.tolist())) if name]


_NONZERO = bytes(int(b != 0) for b in range(256))


def _named_rows(data: bytes, size: int, bits: int, little: bool) -> list:
    """Indices of the relocation entries whose symbol number is not 0, in order. A PIE's relocations
    are mostly R_*_RELATIVE (no symbol): the symbol bytes of every entry are sliced out as columns
    and tested in C loops, and only the others are unpacked."""
    count = len(data) // size
    data = data[:count * size]
    # the symbol number's bytes in r_info (after r_offset): its high half in 64-bit entries (r_info at
    # byte 8), its top 3 bytes in 32-bit ones (r_info at byte 4)
    if bits == 64:
        at, width = (12 if little else 8), 4
    else:
        at, width = (5 if little else 4), 3
    marks = bytes(count)
    for k in range(width):
        marks = bytes(map(or_, marks, data[at + k::size]))
    flipped = marks.translate(_NONZERO).translate(_FLIP)
    pieces = flipped.split(b"\0")
    pieces.pop()
    return list(map(add, accumulate(map(add, map(len, pieces), repeat(1))), repeat(-1)))


_FLIP = bytes(int(b == 0) for b in range(256))
