"""Read what the rules need from an ELF file, leanly: pyelftools validates and decodes the ELF
header; the tables the rules read are decoded from their bytes with struct (layout.py)."""

from __future__ import annotations

import struct
from itertools import accumulate, islice, repeat
from operator import add, and_, ge, itemgetter, or_
from dataclasses import dataclass, field
from typing import NamedTuple, Optional


from syscall_lint.elf import vector
from syscall_lint.elf.magic import is_elf  # noqa: F401 (reader.is_elf)
from syscall_lint.elf.layout import SHF_EXECINSTR, SHT_NOBITS, SHT_PROGBITS, Corrupt, Layout
from syscall_lint.inputs import InputRefused, open_regular

MAX_FILE = 1 << 30  # 1 GiB: larger files are refused, not read
MAX_SYMBOLS = 2_000_000
# Code held in memory per binary. The largest text on a Debian system is ~53 MB (libLLVM); what lies
# beyond this budget is not analysed rather than read.
MAX_CODE = 64 << 20
# Real binaries have a handful of executable sections (at most 6 across /usr/bin and /usr/lib); a table
# of thousands is hostile, and each one would be scanned.
MAX_CODE_SECTIONS = 256
MACHINES = {"EM_X86_64": "x86-64", "EM_AARCH64": "aarch64", "EM_ARM": "arm", "EM_386": "x86",
            "EM_RISCV": "riscv", "EM_PPC64": "ppc64", "EM_PPC": "ppc", "EM_S390": "s390x", "EM_MIPS": "mips",
            "EM_LOONGARCH": "loongarch", "EM_SPARCV9": "sparc64"}
STT_FUNC, STT_GNU_IFUNC = 2, 10


class NotElf(Exception):
    pass


@dataclass
class Symbol:
    name: str
    value: int
    size: int
    kind: int
    defined: bool
    version: Optional[str] = None


@dataclass
class ElfInfo:
    path: str
    bits: int
    little: bool
    machine: str
    kind: str
    interp: Optional[str]
    needed: list = field(default_factory=list)
    imports: dict = field(default_factory=dict)  # name -> version or None
    static: bool = False
    stripped: bool = False
    runtime: Optional[str] = None  # go | rust | None
    unwind: bool = False  # has an .eh_frame_hdr search table (function bounds for stripped code)
    _functions: Optional[list] = None
    _exports: Optional[set] = None

    @property
    def functions(self) -> list:
        """(addr, size, name) of defined functions, sorted; decoded on first use (most audits never ask)."""
        if self._functions is None:
            try:
                with _open(self.path) as (layout, _header):
                    found = _defined_functions(layout, layout.by_name.get(".symtab"))
                    if found is None:  # no .symtab, or not one named entry in it
                        found = _defined_functions(layout, layout.by_name.get(".dynsym")) or set()
            except Corrupt as exc:
                raise NotElf(f"corrupt ELF: {exc}") from None
            self._functions = sorted(found)
        return self._functions

    @property
    def exports(self) -> set:
        """Names of the functions the dynamic symbol table defines; decoded on first use (a shared
        library can define tens of thousands, and no rule reads them)."""
        if self._exports is None:
            try:
                with _open(self.path) as (layout, _header):
                    self._exports = _exports(layout)
            except Corrupt as exc:
                raise NotElf(f"corrupt ELF: {exc}") from None
        return self._exports

    @property
    def arch_label(self) -> str:
        return f"ELF{self.bits} {self.machine}{'' if self.little else ' big-endian'}"


class CodeSection(NamedTuple):
    name: str
    address: int
    data: bytes


_HELD: dict = {}  # path -> (Layout, header) while `holding(path)` keeps it open, or None before the first open


class holding:
    """Within this block every open of `path` shares one file handle and one Layout (its parsed
    section table and the tables it has read): an audit opens a binary for its header and imports,
    then for its symbols, unwind table, code and relocations, and a library's tables were parsed
    and read again each time."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        _HELD[self.path] = None
        return self

    def __exit__(self, *exc):
        held = _HELD.pop(self.path, None)
        if held is not None:
            held[0].fh.close()


class _open:
    """Open, check the magic and size, parse the header with pyelftools, lay out the tables."""

    def __init__(self, path: str):
        self.path = path
        self.shared = False

    def __enter__(self):
        held = _HELD.get(self.path)
        if held is not None:
            self.shared = True
            return held
        opened = self._open()
        if self.path in _HELD:  # the first open inside `holding`: kept for the others
            _HELD[self.path] = opened
            self.shared = True
        return opened

    def _open(self):
        try:
            self.fh = open_regular(self.path, MAX_FILE)
        except InputRefused as exc:  # a FIFO, device or socket is refused without blocking
            raise NotElf(str(exc)) from None
        try:
            self.fh.seek(0, 2)
            size = self.fh.tell()
            self.fh.seek(0)
            if self.fh.read(4) != b"\x7fELF":
                raise NotElf("not an ELF file (wrong magic)")
            fast = _plain_header(self.fh, size)
            if fast is not None:
                header, bits, little = fast
                return Layout(self.fh, size, header, bits, little), header
            from elftools.elf.elffile import ELFFile  # only for headers the struct reader leaves to it

            self.fh.seek(0)
            elf = ELFFile(self.fh)
            header = elf.header
            return Layout(self.fh, size, header, elf.elfclass, elf.little_endian), header
        except BaseException:
            self.fh.close()
            raise

    def __exit__(self, *exc):
        if not self.shared:
            self.fh.close()


# The header of a well-formed file is read with struct: pyelftools builds ~200 construct parsers per
# file (an eighth of an audit of /usr/bin). Anything unusual — an unknown machine or type, a section
# table or its string table beyond the file — goes to pyelftools as before, for the same checks and
# the same one-line error.
_PLAIN_MACHINES = {62: "EM_X86_64", 183: "EM_AARCH64", 3: "EM_386", 40: "EM_ARM", 243: "EM_RISCV", 21: "EM_PPC64",
                   20: "EM_PPC", 22: "EM_S390", 8: "EM_MIPS", 258: "EM_LOONGARCH", 43: "EM_SPARCV9"}
_PLAIN_TYPES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_EHDR = {64: "HHIQQQIHHHHHH", 32: "HHIIIIIHHHHHH"}
_SHDR = {64: (64, "IIQQQQ"), 32: (40, "IIIIII")}  # entry size, the fields up to sh_size


def _plain_header(fh, size: int):
    """(header fields, bits, little) of an ordinary ELF header, or None to let pyelftools judge."""
    fh.seek(0)
    raw = fh.read(64)
    if len(raw) < 52 or raw[4] not in (1, 2) or raw[5] not in (1, 2) or raw[6] != 1:
        return None
    bits, endian = (64 if raw[4] == 2 else 32), ("<" if raw[5] == 1 else ">")
    fmt = struct.Struct(endian + _EHDR[bits])
    if len(raw) < 16 + fmt.size:
        return None
    (etype, machine, version, _entry, phoff, shoff, _flags, ehsize, phentsize, phnum, shentsize, shnum,
     shstrndx) = fmt.unpack_from(raw, 16)
    entsize, fields = _SHDR[bits]
    if (etype not in _PLAIN_TYPES or machine not in _PLAIN_MACHINES or version != 1 or ehsize != 16 + fmt.size
            or shentsize != entsize or not 0 < shstrndx < shnum or shoff + shnum * entsize > size):
        return None
    fh.seek(shoff + shstrndx * entsize)
    strtab = struct.unpack(endian + fields, fh.read(struct.calcsize(endian + fields)))
    if strtab[4] + strtab[5] > size:
        return None
    header = {"e_type": _PLAIN_TYPES[etype], "e_machine": _PLAIN_MACHINES[machine], "e_phoff": phoff,
              "e_phnum": phnum, "e_phentsize": phentsize, "e_shoff": shoff, "e_shnum": shnum,
              "e_shentsize": shentsize, "e_shstrndx": shstrndx}
    return header, bits, raw[5] == 1


def _symbols(layout: Layout, sec, versions: Optional[dict] = None, keep_index: bool = False) -> list:
    """Decode a symbol table from its bytes (~4x faster than pyelftools' Symbol objects).
    With keep_index, the list is indexed by symbol number (None for unnamed entries)."""
    if sec is None or sec.type == SHT_NOBITS:
        return []
    strings = layout.strings(sec.link)
    data = layout.data(sec)
    if layout.bits == 64:
        fmt = struct.Struct(layout.e + "IBBHQQ")
    else:
        fmt = struct.Struct(layout.e + "IIIBBH")
    count = min(len(data) // fmt.size, MAX_SYMBOLS)
    versym = None
    if versions is not None:
        vs = layout.by_name.get(".gnu.version")
        if vs is not None:
            raw = layout.data(vs)
            versym = struct.unpack_from(f"{layout.e}{len(raw) // 2}H", raw)
    out = [None] if keep_index else []
    table = fmt.iter_unpack(data[fmt.size:count * fmt.size]) if count > 1 else ()
    n_strings = len(strings)
    find = strings.find
    cut = {}  # name offset → name: tables share names (a .symtab repeats many of .dynsym's)
    for i, row in enumerate(table, 1):
        if layout.bits == 64:
            name_off, info, _other, shndx, value, sym_size = row
        else:
            name_off, value, sym_size, info, _other, shndx = row
        name = cut.get(name_off)
        if name is None:
            name = ""
            if name_off < n_strings:
                end = find(b"\0", name_off)
                name = strings[name_off:end if end >= 0 else n_strings].decode("utf-8", "replace")
            cut[name_off] = name
        if not name:
            if keep_index:
                out.append(None)
            continue
        version = versions.get(versym[i] & 0x7FFF) if versym is not None and i < len(versym) else None
        out.append(Symbol(name, value, sym_size, info & 0xF, shndx != 0, version))
    return out


RUST_MARKERS = ("_ZN3std", "rust_begin_unwind", "__rust", "rust_eh_personality")


def _undefined_rows(layout: Layout, sec):
    """(entry format, table bytes, indices of the undefined entries) of a symbol table. The section
    index column is sliced out of the bytes and searched for zeros in C loops: a library defines
    tens of thousands of symbols, a program imports a few hundred."""
    if sec is None or sec.type == SHT_NOBITS:
        return None, b"", []
    data = layout.data(sec)
    fmt = struct.Struct(layout.e + ("IBBHQQ" if layout.bits == 64 else "IIIBBH"))
    count = min(len(data) // fmt.size, MAX_SYMBOLS)
    if count < 2:
        return fmt, data, []
    data = data[:count * fmt.size]
    at = 6 if layout.bits == 64 else 14  # st_shndx
    shndx = bytes(map(or_, data[at::fmt.size], data[at + 1::fmt.size]))
    return fmt, data, [i for i in _zero_offsets(shndx) if i > 0]


def _zero_offsets(data: bytes) -> list:
    pieces = data.split(b"\0")
    pieces.pop()
    return list(map(add, accumulate(map(add, map(len, pieces), repeat(1))), repeat(-1)))


def _name(strings: bytes, offset: int) -> str:
    if offset >= len(strings):
        return ""
    end = strings.find(b"\0", offset)
    return strings[offset:end if end >= 0 else len(strings)].decode("utf-8", "replace")


_FUNCTION_KIND = bytes(int(b & 0xF in (STT_FUNC, STT_GNU_IFUNC)) for b in range(256))  # st_info → 1 for code
_NONZERO = bytes(int(b != 0) for b in range(256))


def _defined_functions(layout: Layout, sec):
    """{(value, size, name)} of the named, defined, nonzero function entries of a symbol table (what
    _symbols gives for them), or None when the table has no named entry at all. The entries are
    picked by slicing the st_info and st_shndx columns out of the bytes (C loops); only those
    are unpacked."""
    if sec is None or sec.type == SHT_NOBITS:
        return None
    data = layout.data(sec)
    fmt = struct.Struct(layout.e + ("IBBHQQ" if layout.bits == 64 else "IIIBBH"))
    count = min(len(data) // fmt.size, MAX_SYMBOLS)
    if count < 2:
        return None
    data, size = data[:count * fmt.size], fmt.size
    strings = layout.strings(sec.link)
    # st_info and st_shndx as byte offsets in an entry; st_value and st_size as unpacked field numbers
    at_info, at_shndx, at_value, at_size = (4, 6, 4, 5) if layout.bits == 64 else (12, 14, 1, 2)
    rows = fmt.unpack_from
    if not any(_name(strings, rows(data, i * size)[0]) for i in range(1, count)):
        return None
    defined = bytes(map(or_, data[at_shndx::size], data[at_shndx + 1::size])).translate(_NONZERO)
    wanted = bytes(map(and_, data[at_info::size].translate(_FUNCTION_KIND), defined))
    out = set()
    find, limit = strings.find, len(strings)  # _name inlined: a library defines tens of thousands
    for i in _zero_offsets(wanted.translate(_FLIP)):
        if i == 0:
            continue
        row = rows(data, i * size)
        at = row[0]
        if row[at_value] and at < limit:
            end = find(b"\0", at)
            name = strings[at:end if end >= 0 else limit].decode("utf-8", "replace")
            if name:
                out.add((row[at_value], row[at_size], name))
    return out


def function_columns(info):
    """(addresses, sizes) as numpy uint64 arrays of the entries ElfInfo.functions lists (duplicates
    aside), without decoding a name: the same table choice (.symtab when it names any entry, else
    .dynsym) and the same picks (a named, defined function entry with a nonzero value)."""
    np = vector.np
    if info._functions is not None:
        found = info._functions
        return (np.array([f[0] for f in found], dtype=np.uint64), np.array([f[1] for f in found], dtype=np.uint64))
    try:
        with _open(info.path) as (layout, _header):
            got = _function_columns(layout, layout.by_name.get(".symtab"))
            if got is None:
                got = _function_columns(layout, layout.by_name.get(".dynsym"))
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None
    if got is None:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty
    return got


def _function_columns(layout: Layout, sec):
    """_defined_functions' picks as (values, sizes) columns, or None when the table names no entry."""
    np = vector.np
    if sec is None or sec.type == SHT_NOBITS:
        return None
    data = layout.data(sec)
    e = layout.e
    if layout.bits == 64:
        dtype = np.dtype([("name", e + "u4"), ("info", "u1"), ("other", "u1"), ("shndx", e + "u2"),
                          ("value", e + "u8"), ("size", e + "u8")])
    else:
        dtype = np.dtype([("name", e + "u4"), ("value", e + "u4"), ("size", e + "u4"), ("info", "u1"),
                          ("other", "u1"), ("shndx", e + "u2")])
    count = min(len(data) // dtype.itemsize, MAX_SYMBOLS)
    if count < 2:
        return None
    table = np.frombuffer(data, dtype=dtype, count=count)[1:]
    strings = np.frombuffer(layout.strings(sec.link), dtype=np.uint8)
    at = table["name"].astype(np.int64)
    named = at < len(strings)
    named[named] = strings[at[named]] != 0  # a name's first byte: an empty name is a NUL
    if not named.any():
        return None
    kind = table["info"] & 0xF
    picked = named & ((kind == STT_FUNC) | (kind == STT_GNU_IFUNC)) & (table["shndx"] != 0) & (table["value"] != 0)
    return table["value"][picked].astype(np.uint64), table["size"][picked].astype(np.uint64)


_FLIP = bytes(int(b == 0) for b in range(256))  # the picked entries' 1s become the zeros _zero_offsets finds


def _imports(layout: Layout, sec) -> dict:
    """name → version of every undefined named entry of .dynsym, in table order (what _symbols
    would give for them, without decoding the defined ones)."""
    fmt, data, rows = _undefined_rows(layout, sec)
    if not rows:
        return {}
    strings = layout.strings(sec.link)
    versions = layout.version_names()
    versym = None
    vs = layout.by_name.get(".gnu.version")
    if vs is not None:
        raw = layout.data(vs)
        versym = struct.unpack_from(f"{layout.e}{len(raw) // 2}H", raw)
    out = {}
    # _name inlined: ~100 imports per file, over every file of an audit
    unpack, size, find, limit = fmt.unpack_from, fmt.size, strings.find, len(strings)
    for i in rows:
        at = unpack(data, i * size)[0]  # st_name
        if at >= limit:
            continue
        end = find(b"\0", at)
        name = strings[at:end if end >= 0 else limit].decode("utf-8", "replace")
        if name:
            out.setdefault(name, versions.get(versym[i] & 0x7FFF) if versym is not None and i < len(versym) else None)
    return out


def _exports(layout: Layout) -> set:
    return {sym.name for sym in _symbols(layout, layout.by_name.get(".dynsym"))
            if sym.defined and sym.kind in (STT_FUNC, STT_GNU_IFUNC)}


def _names_start_with(layout: Layout, imports: dict, prefixes: tuple) -> bool:
    """Does an imported or exported function's name start with one of the prefixes? A name that
    does holds the prefix's bytes in .dynstr, so a string table without them answers no unread."""
    sec = layout.by_name.get(".dynsym")
    if sec is None:
        return False
    strings = layout.strings(sec.link)
    if not any(p.encode() in strings for p in prefixes):
        return False
    return any(n.startswith(prefixes) for n in imports) or any(n.startswith(prefixes) for n in _exports(layout))


class _SymbolNames:
    """Symbol number → name (None when unnamed) of one table, decoded per entry on demand: the
    relocations name a fraction of a library's symbols."""

    def __init__(self, layout: Layout, sec):
        self.fmt, self.data = None, b""
        if sec is not None and sec.type != SHT_NOBITS:
            self.data = layout.data(sec)
            self.fmt = struct.Struct(layout.e + ("IBBHQQ" if layout.bits == 64 else "IIIBBH"))
            self.strings = layout.strings(sec.link)
        self.count = min(len(self.data) // self.fmt.size, MAX_SYMBOLS) if self.fmt else 0
        self._cache = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        name = self._cache.get(i)
        if name is None and i not in self._cache:
            name = None
            if 0 < i < self.count:
                name = _name(self.strings, self.fmt.unpack_from(self.data, i * self.fmt.size)[0]) or None
            self._cache[i] = name
        return name


def read(path: str) -> ElfInfo:
    try:
        with _open(path) as (layout, header):
            return _read(layout, header, path)
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None


def _read(layout: Layout, header, path: str) -> ElfInfo:
    machine = MACHINES.get(header["e_machine"], str(header["e_machine"]).replace("EM_", "").lower())
    interp = layout.interp()
    info = ElfInfo(path, layout.bits, layout.little, machine, "", interp)
    info.needed, flags_1 = layout.dynamic()
    info.imports = _imports(layout, layout.by_name.get(".dynsym"))
    info.stripped = ".symtab" not in layout.by_name
    info.unwind = ".eh_frame_hdr" in layout.by_name
    etype = header["e_type"]
    if etype == "ET_DYN":
        info.kind = "PIE executable" if (interp or flags_1 & 0x08000000) else "shared library"
    elif etype == "ET_EXEC":
        info.kind = "executable"
    else:
        info.kind = {"ET_REL": "relocatable object", "ET_CORE": "core dump"}.get(etype, str(etype))
    info.static = info.kind in ("executable", "PIE executable") and interp is None
    names = layout.by_name
    if ".go.buildinfo" in names or ".gopclntab" in names or ".note.go.buildid" in names:
        info.runtime = "go"
    elif _names_start_with(layout, info.imports, RUST_MARKERS):
        info.runtime = "rust"
    return info


def eh_frame_starts(path: str) -> list:
    """Function start addresses from .eh_frame_hdr's sorted search table: boundaries for stripped code."""
    return [start for start, _end in eh_frame_ranges(path)]


def eh_frame_ranges(path: str) -> list:
    """(start, end or None) of every function the unwind table describes, sorted by start.

    Starts come from .eh_frame_hdr's search table; each FDE's pc_range gives the end when the FDE
    encodes its addresses as pc-relative sdata4 (what GCC and clang emit), checked by decoding the
    FDE's own pc_begin and finding the table's start again."""
    found = _search_table(path)
    if found is None:
        return []
    endian, data, count, base, fdata, fbase = found
    fast = vector.fde_ranges(endian, data, count, base, fdata, fbase)
    if fast is not None:
        # the table is sorted by start (the format requires it for its binary search): sort only
        # when a file breaks that
        if any(map(ge, map(itemgetter(0), fast), map(itemgetter(0), islice(fast, 1, None)))):
            fast.sort()
        return fast
    table = struct.unpack_from(f"{endian}{count * 2}i", data, 12)
    out = []
    for i in range(0, count * 2, 2):
        start, fde = base + table[i], base + table[i + 1]
        end = None
        off = fde - fbase
        if 0 <= off <= len(fdata) - 16:
            _length, _cie, begin, span = struct.unpack_from(endian + "IIiI", fdata, off)
            if fde + 8 + begin == start and 0 < span < 1 << 28:
                end = start + span
        out.append((start, end))
    out.sort()
    return out


def eh_frame_columns(path: str):
    """eh_frame_ranges as numpy arrays (starts, ends, which ends are known), in table order; None
    without numpy or for addresses beyond its range."""
    if not vector.ENABLED:
        return None
    found = _search_table(path)
    if found is None:
        empty = vector.np.zeros(0, dtype=vector.np.int64)
        return empty, empty, empty.astype(bool)
    return vector.fde_columns(*found)


def _search_table(path: str):
    """(byte order, .eh_frame_hdr bytes, entries, its address, .eh_frame bytes, its address), or
    None for no usable search table."""
    try:
        with _open(path) as (layout, _):
            sec = layout.by_name.get(".eh_frame_hdr")
            if sec is None:
                return None
            data, base = layout.data(sec), sec.addr
            endian = layout.e
            frames = layout.by_name.get(".eh_frame")
            fdata = layout.data(frames) if frames is not None and frames.size <= MAX_CODE else b""
            fbase = frames.addr if frames is not None else 0
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None
    if len(data) < 12 or data[0] != 1 or data[2] != 0x03 or data[3] != 0x3B:  # v1, count udata4, datarel|sdata4
        return None
    count = min(struct.unpack_from(endian + "I", data, 8)[0], (len(data) - 12) // 8)
    return endian, data, count, base, fdata, fbase


def _code_extents(layout: Layout) -> list:
    """(section, bytes to read) of the executable sections in file order, within MAX_CODE in all."""
    code = sorted((s for s in layout.sections if s.type == SHT_PROGBITS and s.flags & SHF_EXECINSTR and s.size),
                  key=lambda s: s.offset)
    if len(code) > MAX_CODE_SECTIONS:
        raise Corrupt(f"{len(code)} executable sections (more than {MAX_CODE_SECTIONS}): too costly to analyse")
    for before, after in zip(code, code[1:]):
        if after.offset < before.offset + before.size and after.offset < layout.size:
            raise Corrupt(f"executable sections {before.name or '(unnamed)'} and {after.name or '(unnamed)'} "
                          "overlap in the file")
    out, budget = [], MAX_CODE
    for sec in code:
        if budget <= 0:
            break
        if sec.offset > layout.size:
            raise Corrupt(f"data at offset {sec.offset:#x} lies beyond the end of the file")
        length = min(sec.size, budget, layout.size - sec.offset)
        budget -= length
        out.append((sec, length))
    return out


def code_size(path: str, skip: tuple = ()) -> int:
    """Bytes text_sections would hold, less sections whose names start with `skip`, from the section
    headers alone (a call graph's budget is checked before 50 MB of code are read for nothing)."""
    try:
        with _open(path) as (layout, _):
            return sum(length for sec, length in _code_extents(layout) if not sec.name.startswith(skip))
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None


def text_sections(path: str, only_bases: frozenset | None = None):
    """(executable sections as CodeSection, GOT slot → imported name).

    Each file byte is held at most once and no more than MAX_CODE bytes in all: real binaries never
    overlap their executable sections, so a file that does (hostile ones repeat the whole file
    thousands of times) is corrupt rather than read again and again.

    With `only_bases`, the slots are only those of symbols whose base name (callsites._base) is
    one of them: a library's relocations name thousands of symbols, a screen asks about a dozen."""
    try:
        with _open(path) as (layout, _):
            out = [CodeSection(sec.name, sec.addr, layout.read(sec.offset, length))
                   for sec, length in _code_extents(layout)]
            out.sort(key=lambda c: c.address)
            dynsym = layout.by_name.get(".dynsym")
            names = _SymbolNames(layout, dynsym) if only_bases is None else _NamedOnly(layout, dynsym, only_bases)
            return out, layout.relocations(names)
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None


def import_slots(path: str) -> dict:
    """text_sections' GOT slot → imported name alone (the code already read for a screen)."""
    try:
        with _open(path) as (layout, _):
            return layout.relocations(_SymbolNames(layout, layout.by_name.get(".dynsym")))
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None


class _NamedOnly:
    """_SymbolNames for the symbols whose base name is one of `bases` (None for every other
    entry), without decoding the others (_entries_named)."""

    def __init__(self, layout: Layout, sec, bases: frozenset):
        self.count, found = _entries_named(layout, sec, bases)
        self._found = {i: name for i, name, _row in found}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        return self._found.get(i)


def defines_function_named(path: str, bases: frozenset) -> bool:
    """Does .symtab or .dynsym define a function (what ElfInfo.functions lists) whose base name is
    one of `bases`? Answered without decoding the other names."""
    try:
        with _open(path) as (layout, _):
            for sec in (layout.by_name.get(".symtab"), layout.by_name.get(".dynsym")):
                at_info, at_shndx, at_value = (1, 3, 4) if layout.bits == 64 else (3, 5, 1)
                for _i, _name, row in _entries_named(layout, sec, bases)[1]:
                    if row[at_info] & 0xF in (STT_FUNC, STT_GNU_IFUNC) and row[at_shndx] != 0 and row[at_value]:
                        return True
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None
    return False


def _entries_named(layout: Layout, sec, bases: frozenset):
    """(entries in the table, [(index, name, unpacked entry)] of the entries whose name's base
    (callsites._base) is one of `bases`). Each such name ends with `base\0` or `base@` in the
    string table, possibly after one of the prefixes _base strips: only the entries whose name
    starts at one of those offsets are decoded."""
    from syscall_lint.elf.callsites import _base

    if sec is None or sec.type == SHT_NOBITS:
        return 0, []
    data = layout.data(sec)
    fmt = struct.Struct(layout.e + ("IBBHQQ" if layout.bits == 64 else "IIIBBH"))
    count = min(len(data) // fmt.size, MAX_SYMBOLS)
    strings = layout.strings(sec.link)
    offsets = set()
    for base in bases:
        for tail in (b"\0", b"@"):
            needle = base.encode() + tail
            at = strings.find(needle)
            while at >= 0:
                offsets.add(at)
                offsets.update(at - len(p) for p in _BASE_PREFIXES if strings[at - len(p):at] == p)
                at = strings.find(needle, at + 1)
    if not offsets or count < 2:
        return count, []
    size = fmt.size
    # st_name is the entry's first 4 bytes in both classes (entries of 24 or 16 bytes)
    if vector.ENABLED:
        np = vector.np
        column = np.frombuffer(data, dtype=layout.e + "u4", count=count * size // 4)[::size // 4]
        picked = np.flatnonzero(np.isin(column, np.fromiter(offsets, dtype=np.int64))).tolist()
    else:
        picked = [i for i in range(count) if struct.unpack_from(layout.e + "I", data, i * size)[0] in offsets]
    out = []
    for i in picked:
        row = fmt.unpack_from(data, i * size)
        name = _name(strings, row[0])
        if i and name and _base(name) in bases:
            out.append((i, name, row))
    return count, out


_BASE_PREFIXES = tuple(p.encode() for p in ("__libc_", "__GI___", "__GI_", "__"))  # what callsites._base strips


RELATIVE_TYPES = {"x86-64": 8, "aarch64": 1027}  # R_X86_64_RELATIVE, R_AARCH64_RELATIVE


def relative_addends(path: str, machine: str) -> dict:
    """Slot address → the address a R_*_RELATIVE relocation stores there (a PIE's GOT entry for one
    of its own functions). Read only when a question needs it: a large PIE holds ~200,000."""
    kind = RELATIVE_TYPES.get(machine)
    if kind is None:
        return {}
    try:
        with _open(path) as (layout, _):
            sec = layout.by_name.get(".rela.dyn")
            if sec is None or layout.bits != 64:
                return {}
            data = layout.data(sec)
    except Corrupt:
        return {}
    rows = struct.Struct(layout.e + "QQq")
    usable = len(data) - len(data) % rows.size
    if vector.ENABLED:  # three arrays, not a dict of ~200,000 Python ints
        np = vector.np
        table = np.frombuffer(data[:usable], dtype=np.dtype([("offset", layout.e + "u8"), ("info", layout.e + "u8"),
                                                              ("addend", layout.e + "i8")]))
        table = table[table["info"] == kind]
        order = np.argsort(table["offset"], kind="stable")
        return _SortedSlots(table["offset"][order], table["addend"][order])
    return {offset: addend for offset, info, addend in rows.iter_unpack(data[:usable]) if info == kind}


class _SortedSlots:
    """slot → address, answered by a binary search over sorted arrays (a dict's `get`)."""

    def __init__(self, offsets, addends):
        self._offsets, self._addends = offsets, addends

    def found(self, slots) -> list:
        """The addresses held by those of `slots` (an int64 array) that have a relocation."""
        if not len(self._offsets):
            return []
        at = self._offsets.searchsorted(slots)
        at[at == len(self._offsets)] = 0
        return self._addends[at][self._offsets[at] == slots].tolist()

    def holds(self, slots, keys):
        """For each slot (an int64 array): does its relocation hold one of the sorted `keys`?"""
        np = vector.np
        if not len(self._offsets):
            return np.zeros(len(slots), dtype=bool)
        at = self._offsets.searchsorted(slots)
        at[at == len(self._offsets)] = 0
        return (self._offsets[at] == slots) & vector._member(self._addends[at], keys)

    def get(self, slot, default=None):
        at = int(self._offsets.searchsorted(slot))
        if at < len(self._offsets) and int(self._offsets[at]) == slot:
            return int(self._addends[at])
        return default
