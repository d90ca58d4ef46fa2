"""Native stack frames (`strace -k`) to source lines, through DWARF line tables read with pyelftools.

The address strace prints in `[0x...]` is relative to the object's load base (for a PIE or a shared
library it is the file-relative address, which is what the line table holds). A return address
points after the call, so the line is looked up at address - 1. The line table comes from the binary
itself or, when it was stripped into a debug package, from /usr/lib/debug/.build-id/xx/rest.debug.
Without either, the frame still names the function and offset, and says there was no debug info.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from syscall_lint.inputs import InputRefused, open_regular
from syscall_lint.sourcemap.markers import NativeFrame, SourceLine

DEBUG_ROOT = "/usr/lib/debug"
# Objects whose frames are the C library's or the loader's, never the program's own code.
SYSTEM_PREFIXES = ("/usr/lib/", "/lib/", "/lib64/", "/usr/lib64/", "/usr/libexec/")
MAX_DEBUG_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class _Row:
    address: int
    file: str
    line: int


class LineTable:
    """Sorted (address, file, line) rows of one object, with end-of-sequence gaps."""

    def __init__(self, rows: List[Tuple[int, str, int, bool]]):
        rows.sort(key=lambda r: r[0])
        self.addresses = [r[0] for r in rows]
        self.rows = rows

    def lookup(self, address: int) -> Optional[Tuple[str, int]]:
        i = bisect.bisect_right(self.addresses, address) - 1
        if i < 0:
            return None
        _, path, line, end = self.rows[i]
        if end or line <= 0:
            return None
        return path, line


def _build_id(elf) -> Optional[str]:
    for section in elf.iter_sections():
        if section.header["sh_type"] == "SHT_NOTE":
            for note in section.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return note["n_desc"]
    return None


def _rows_from(elf) -> Optional[List[Tuple[int, str, int, bool]]]:
    if not elf.has_dwarf_info():
        return None
    dwarf = elf.get_dwarf_info()
    rows: List[Tuple[int, str, int, bool]] = []
    for cu in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(cu)
        if program is None:
            continue
        version = program.header["version"]
        files = program.header["file_entry"]
        dirs = program.header["include_directory"]
        comp_dir = ""
        top = cu.get_top_DIE()
        if "DW_AT_comp_dir" in top.attributes:
            comp_dir = top.attributes["DW_AT_comp_dir"].value.decode("utf-8", "replace")

        def name_of(index: int) -> str:
            i = index if version >= 5 else index - 1
            if not 0 <= i < len(files):
                return "?"
            entry = files[i]
            name = entry.name.decode("utf-8", "replace")
            d = entry.dir_index if version >= 5 else entry.dir_index - 1
            folder = dirs[d].decode("utf-8", "replace") if 0 <= d < len(dirs) else ""
            if version < 5 and entry.dir_index == 0:
                folder = comp_dir
            path = os.path.join(folder, name) if folder else name
            return os.path.join(comp_dir, path) if comp_dir and not os.path.isabs(path) else path

        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            rows.append((state.address, name_of(state.file), state.line, bool(state.end_sequence)))
    return rows


class Resolver:
    """Caches one line table per object; never raises on a bad or missing object."""

    def __init__(self, debug_root: str = DEBUG_ROOT):
        self.debug_root = debug_root
        self._tables: Dict[str, Optional[LineTable]] = {}

    def table(self, obj: str) -> Optional[LineTable]:
        if obj not in self._tables:
            self._tables[obj] = self._load(obj)
        return self._tables[obj]

    def _load(self, obj: str) -> Optional[LineTable]:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        try:
            with open_regular(obj) as fh:
                elf = ELFFile(fh)
                rows = _rows_from(elf)
                if rows is None:
                    build_id = _build_id(elf)
                    rows = self._from_debug_file(build_id) if build_id else None
        except (InputRefused, OSError, ELFError, ValueError, KeyError, IndexError, AttributeError,
                AssertionError, RecursionError):
            return None
        except Exception:  # pyelftools raises construct errors of several kinds on damaged DWARF
            return None
        return LineTable(rows) if rows else None

    def _from_debug_file(self, build_id: str):
        from elftools.elf.elffile import ELFFile

        path = os.path.join(self.debug_root, ".build-id", build_id[:2], build_id[2:] + ".debug")
        try:
            with open_regular(path, MAX_DEBUG_BYTES) as fh:
                return _rows_from(ELFFile(fh))
        except (InputRefused, OSError):
            return None

    def resolve(self, frame: NativeFrame) -> Optional[SourceLine]:
        table = self.table(frame.obj)
        if table is None:
            return None
        hit = table.lookup(frame.address - 1 if frame.address else 0)
        if hit is None:
            return None
        return SourceLine(hit[0], hit[1], frame.function)


def program_frames(frames: List[NativeFrame]) -> List[NativeFrame]:
    """The frames in the program's own objects (not the C library or the loader), innermost first."""
    own = [f for f in frames if f.obj and not f.obj.startswith(SYSTEM_PREFIXES)]
    return own or frames[1:2] or frames[:1]


def describe(frame: NativeFrame) -> str:
    name = os.path.basename(frame.obj) or "?"
    where = f"{frame.function}+0x{frame.offset:x}" if frame.function else f"0x{frame.address:x}"
    return f"{name}({where})"
