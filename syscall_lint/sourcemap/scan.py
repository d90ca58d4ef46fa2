"""A second, cheap pass over a recording that finds where the syscalls behind findings came from.

The analysers report a finding at the trace line of its syscall. This pass reads the log again only
when a finding asked for it, and for each wanted line collects the Python marker that announced the
call (the latest marker of the call's family in the same thread) and the native frames that `-k`
printed under it. Memory holds one pending marker per (thread, event), bounded.
"""

from __future__ import annotations

import gzip
import re
from typing import Dict, Iterable, Iterator, Optional

from syscall_lint.inputs import InputRefused, open_regular
from syscall_lint.sourcemap.markers import EVENT_OF_SYSCALL, SourceTrail, marker_in_line, parse_frame

_CALL = re.compile(rb"^(?:\[pid\s+(?P<p1>\d+)\]\s+|(?P<p2>\d+)\s+)?(?:\d[\d:.]*\s+)?"
                   rb"(?:<\.\.\.\s+(?P<resumed>\w+)\s+resumed>|(?P<name>\w+)\()")
MAX_LINE = 1 << 20
MAX_PENDING = 100_000  # threads with an unconsumed marker; beyond it the oldest are forgotten


def _lines(path: str) -> Iterator[bytes]:
    with open_regular(path) as raw:
        magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        fh = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
        while True:
            line = fh.readline(MAX_LINE)
            if not line:
                return
            if not line.endswith(b"\n") and len(line) >= MAX_LINE:
                while True:  # the rest of an overlong line is no one's evidence
                    more = fh.readline(MAX_LINE)
                    if not more or more.endswith(b"\n"):
                        break
            yield line


def trails(path: str, wanted: Iterable[int]) -> Dict[int, SourceTrail]:
    """{trace line: SourceTrail} for the wanted 1-based lines of the log at `path`."""
    wanted = set(wanted)
    found: Dict[int, SourceTrail] = {}
    if not wanted:
        return found
    pending: Dict[tuple, object] = {}
    unfinished: Dict[tuple, object] = {}
    waiting: Dict[tuple, SourceTrail] = {}  # wanted first halves whose stack comes after the resumed half
    collecting: Optional[SourceTrail] = None
    last = max(wanted)
    try:
        for number, raw in enumerate(_lines(path), 1):
            if raw.startswith(b" > "):
                if collecting is not None:
                    frame = parse_frame(raw.decode("utf-8", "replace"))
                    if frame is not None:
                        collecting.native.append(frame)
                continue
            collecting = None
            if number > last and not waiting:
                break
            match = _CALL.match(raw)
            if match is None:
                continue
            pid = int(match.group("p1") or match.group("p2") or 0)
            name = (match.group("name") or match.group("resumed") or b"").decode("ascii", "replace")
            if b'"/@scl1@/' in raw:
                hit = marker_in_line(raw.decode("utf-8", "replace"))
                if hit is not None:
                    if len(pending) >= MAX_PENDING:
                        pending.pop(next(iter(pending)))
                    pending[(pid, hit[1].event)] = hit[1]
                continue
            events = EVENT_OF_SYSCALL.get(name)
            marker = None
            if events and match.group("resumed"):
                marker = unfinished.pop((pid, name), None)  # announced before the first half
            elif events:
                for event in events:  # the family's latest marker in this thread announces this call
                    candidate = pending.pop((pid, event), None)
                    marker = marker or candidate
                if marker is not None and raw.rstrip().endswith(b"<unfinished ...>"):
                    if len(unfinished) >= MAX_PENDING:
                        unfinished.pop(next(iter(unfinished)))
                    unfinished[(pid, name)] = marker
            if match.group("resumed"):
                # -k prints the stack after the resumed half: give it to the wanted first half
                collecting = waiting.pop((pid, name), None)
            if number in wanted:
                found[number] = collecting = found.get(number) or SourceTrail(marker=marker)
                if raw.rstrip().endswith(b"<unfinished ...>"):
                    if len(waiting) >= MAX_PENDING:
                        waiting.pop(next(iter(waiting)))
                    waiting[(pid, name)] = collecting
                    collecting = None
    except (InputRefused, OSError, EOFError, gzip.BadGzipFile, ValueError):
        pass  # the analysers already reported the log's problems; a partial map is still a map
    except Exception:  # zlib.error and friends: same reasoning
        pass
    return found
