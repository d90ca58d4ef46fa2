"""The two kinds of source evidence a recording can carry, as typed records.

- Python markers: the start-up shim (pyshim/sitecustomize.py) makes a failing open of
  `/@scl1@/<event>@<file>:<line>|<file>:<line>...[#<class file>:<line>]` just before a call the
  rules care about, in the same thread.
- Native stacks: `strace -k` prints the user stack after a call, one frame a line:
  ` > /usr/bin/app(main+0x4c) [0x11c9]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

PREFIX = "/@scl1@/"
# Which marker event announces which syscalls: the next call of the family in the same thread.
FAMILIES = {
    "open": frozenset({"open", "openat", "openat2", "creat"}),
    "rename": frozenset({"rename", "renameat", "renameat2"}),
    "fsync": frozenset({"fsync", "fdatasync"}),
    "accept": frozenset({"accept", "accept4"}),
    "thread": frozenset({"clone", "clone3"}),
    "fork": frozenset({"fork", "vfork", "clone", "clone3"}),
}
EVENT_OF_SYSCALL = {}
for _event, _names in FAMILIES.items():
    for _name in _names:
        EVENT_OF_SYSCALL.setdefault(_name, []).append(_event)

_FRAME = re.compile(r"^ > (?P<object>[^(\[]*?)(?:\((?P<function>[^+)]*)(?:\+0x(?P<offset>[0-9a-fA-F]+))?\))? "
                    r"\[0x(?P<address>[0-9a-fA-F]+)\]\s*$")
_PCT = re.compile(r"%([0-9A-F]{2})")


@dataclass(frozen=True)
class SourceLine:
    path: str
    line: int
    function: str = ""


@dataclass
class Marker:
    event: str
    frames: List[SourceLine]  # the program's own frames, innermost first
    owner: Optional[SourceLine] = None  # the class of `self` in the library frame that made the call


@dataclass(frozen=True)
class NativeFrame:
    obj: str
    function: str
    offset: int
    address: int


@dataclass
class SourceTrail:
    """What the recording says about where one syscall came from."""
    marker: Optional[Marker] = None
    native: List[NativeFrame] = field(default_factory=list)
    resolved: List[SourceLine] = field(default_factory=list)  # native frames mapped through DWARF

    def locations(self) -> List[SourceLine]:
        """Every source line this call can be attributed to, the most specific first."""
        out = list(self.resolved)
        if self.marker is not None:
            out.extend(self.marker.frames)
            if self.marker.owner is not None:
                out.append(self.marker.owner)
        return out


def _unquote(text: str) -> str:
    raw = _PCT.sub(lambda m: chr(int(m.group(1), 16)) if int(m.group(1), 16) < 0x80 else "\0%" + m.group(1), text)
    if "\0%" not in raw:
        return raw
    # multi-byte UTF-8 was percent-encoded byte by byte
    data = bytearray()
    i = 0
    while i < len(raw):
        if raw.startswith("\0%", i):
            data.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            data.extend(raw[i].encode("utf-8"))
            i += 1
    return data.decode("utf-8", "replace")


def _location(text: str) -> Optional[SourceLine]:
    path, sep, line = text.rpartition(":")
    if not sep or not line.isdigit() or len(line) > 9:
        return None
    return SourceLine(_unquote(path), int(line))


def parse_marker(path_argument: str) -> Optional[Marker]:
    """The marker in a stat'ed path (strace's quoted text, quotes removed), or None."""
    if not path_argument.startswith(PREFIX):
        return None
    body = path_argument[len(PREFIX):]
    event, sep, rest = body.partition("@")
    if not sep or event not in FAMILIES:
        return None
    rest, _, owner_text = rest.partition("#")
    frames = [loc for loc in (_location(part) for part in rest.split("|") if part) if loc is not None]
    owner = _location(owner_text) if owner_text else None
    return Marker(event, frames, owner)


def parse_frame(line: str) -> Optional[NativeFrame]:
    match = _FRAME.match(line.rstrip("\n"))
    if match is None:
        return None
    offset = match.group("offset")
    return NativeFrame(match.group("object").strip(), match.group("function") or "",
                       int(offset, 16) if offset else 0, int(match.group("address"), 16))


def marker_in_line(line: str) -> Optional[Tuple[int, Marker]]:
    """(offset, marker) when a trace line carries a marker path."""
    at = line.find('"' + PREFIX)
    if at < 0:
        return None
    end = line.find('"', at + 1)
    if end < 0:
        return None
    marker = parse_marker(line[at + 1:end])
    return (at, marker) if marker is not None else None
