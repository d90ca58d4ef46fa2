"""Read what the rules need from an ELF file, leanly: pyelftools validates and decodes the ELF
header; the tables the rules read are decoded from their bytes with struct (layout.py)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from elftools.elf.elffile import ELFFile

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
    exports: set = field(default_factory=set)
    static: bool = False
    stripped: bool = False
    runtime: Optional[str] = None  # go | rust | None
    unwind: bool = False  # has an .eh_frame_hdr search table (function bounds for stripped code)
    _functions: Optional[list] = None

    @property
    def functions(self) -> list:
        """(addr, size, name) of defined functions, sorted; decoded on first use (most audits never ask)."""
        if self._functions is None:
            try:
                with _open(self.path) as (layout, _header):
                    syms = _symbols(layout, layout.by_name.get(".symtab"))
                    if not syms:
                        syms = [s for s in _symbols(layout, layout.by_name.get(".dynsym")) if s and s.defined]
            except Corrupt as exc:
                raise NotElf(f"corrupt ELF: {exc}") from None
            self._functions = sorted({(s.value, s.size, s.name) for s in syms
                                      if s and s.kind in (STT_FUNC, STT_GNU_IFUNC) and s.defined and s.value})
        return self._functions

    @property
    def arch_label(self) -> str:
        return f"ELF{self.bits} {self.machine}{'' if self.little else ' big-endian'}"


class CodeSection(NamedTuple):
    name: str
    address: int
    data: bytes


def is_elf(path: str) -> bool:
    """Starts with the ELF magic; False for anything that is not a readable regular file."""
    try:
        with open_regular(path) as fh:
            return fh.read(4) == b"\x7fELF"
    except (OSError, InputRefused):
        return False


class _open:
    """Open, check the magic and size, parse the header with pyelftools, lay out the tables."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
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
            self.fh.seek(0)
            elf = ELFFile(self.fh)
            header = elf.header
            return Layout(self.fh, size, header, elf.elfclass, elf.little_endian), header
        except BaseException:
            self.fh.close()
            raise

    def __exit__(self, *exc):
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
    dynsym = layout.by_name.get(".dynsym")
    for sym in _symbols(layout, dynsym, layout.version_names()):
        if not sym.defined:
            info.imports.setdefault(sym.name, sym.version)
        elif sym.kind in (STT_FUNC, STT_GNU_IFUNC):
            info.exports.add(sym.name)
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
    elif any(n.startswith(("_ZN3std", "rust_begin_unwind", "__rust", "rust_eh_personality"))
             for n in info.exports | set(info.imports)):
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
    try:
        with _open(path) as (layout, _):
            sec = layout.by_name.get(".eh_frame_hdr")
            if sec is None:
                return []
            data, base = layout.data(sec), sec.addr
            endian = layout.e
            frames = layout.by_name.get(".eh_frame")
            fdata = layout.data(frames) if frames is not None and frames.size <= MAX_CODE else b""
            fbase = frames.addr if frames is not None else 0
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None
    if len(data) < 12 or data[0] != 1 or data[2] != 0x03 or data[3] != 0x3B:  # v1, count udata4, datarel|sdata4
        return []
    count = min(struct.unpack_from(endian + "I", data, 8)[0], (len(data) - 12) // 8)
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


def text_sections(path: str):
    """(executable sections as CodeSection, GOT slot → imported name).

    Each file byte is held at most once and no more than MAX_CODE bytes in all: real binaries never
    overlap their executable sections, so a file that does (hostile ones repeat the whole file
    thousands of times) is corrupt rather than read again and again."""
    try:
        with _open(path) as (layout, _):
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
                data = layout.read(sec.offset, min(sec.size, budget))
                budget -= len(data)
                out.append(CodeSection(sec.name, sec.addr, data))
            out.sort(key=lambda c: c.address)
            names = [s.name if s else None for s in _symbols(layout, layout.by_name.get(".dynsym"), keep_index=True)]
            return out, layout.relocations(names)
    except Corrupt as exc:
        raise NotElf(f"corrupt ELF: {exc}") from None
