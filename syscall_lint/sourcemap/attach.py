"""Give trace findings the source lines behind them, and join them with static findings.

`attach` reads each log once more (sourcemap.scan) for the lines its findings point at, and records in
each finding's evidence where the key syscall came from: Python lines from the shim's markers, or
native frames from `strace -k` resolved through DWARF (function and offset when there is no debug
info). `join` then merges a static report with the mapped trace report:

- a static finding whose (code, file, line) the run reached is reported once, marked confirmed, with
  the run as its evidence;
- a mapped trace finding that no static finding matched is reported at its source line, with the run
  as its evidence: the static rules missed it (`evidence.static_miss`), which is a recall bug report;
- static findings the run did not reach, and trace findings with no source line, stay as they are.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from syscall_lint.sourcemap import native, scan
from syscall_lint.sourcemap.markers import SourceLine, SourceTrail

MAX_EVIDENCE_DEPTH = 4


def _evidence_lines(value, depth: int = 0) -> Iterator[int]:
    """Trace line numbers mentioned in a finding's evidence (open_line, rename_line, pairs[].clone_line)."""
    if depth > MAX_EVIDENCE_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, int) and not isinstance(item, bool) and str(key).endswith("_line"):
                yield item
            elif isinstance(item, (dict, list)):
                yield from _evidence_lines(item, depth + 1)
    elif isinstance(value, list):
        for item in value[:64]:
            yield from _evidence_lines(item, depth + 1)


def _lines_of(finding) -> List[int]:
    lines = [finding.line] if finding.line else []
    lines += [n for n in _evidence_lines(finding.evidence) if n not in lines]
    return lines


@dataclass
class Mapping:
    locations: List[SourceLine]  # most specific first
    via: str  # python | dwarf | symbols
    trace_line: int
    frames: List[str]


def _mapping(trail: SourceTrail, resolver: native.Resolver, number: int) -> Optional[Mapping]:
    if trail.marker is not None and (trail.marker.frames or trail.marker.owner):
        return Mapping(trail.locations(), "python", number, [f"{s.path}:{s.line}" for s in trail.locations()])
    if trail.native:
        own = native.program_frames(trail.native)
        resolved = [r for r in (resolver.resolve(f) for f in own) if r is not None]
        described = [native.describe(f) for f in own]
        if resolved:
            return Mapping(resolved, "dwarf", number, described)
        return Mapping([], "symbols", number, described)
    return None


def attach(report, resolver: Optional[native.Resolver] = None) -> int:
    """Add `evidence.source` to the strace findings of `report`; the number of findings mapped."""
    resolver = resolver or native.Resolver()
    by_log: Dict[str, list] = {}
    for finding in report.findings:
        if finding.source == "strace" and finding.line:
            by_log.setdefault(finding.path, []).append(finding)
    mapped = 0
    for log, found in by_log.items():
        wanted = {n for f in found for n in _lines_of(f)}
        trails = scan.trails(log, wanted)
        for finding in found:
            best = None
            for number in _lines_of(finding):
                trail = trails.get(number)
                candidate = _mapping(trail, resolver, number) if trail is not None else None
                if candidate is not None and (best is None or (not best.locations and candidate.locations)):
                    best = candidate
                if best is not None and best.locations:
                    break
            if best is None:
                continue
            source = {"via": best.via, "trace_line": best.trace_line, "frames": best.frames}
            if best.locations:
                first = best.locations[0]
                source.update(path=first.path, line=first.line)
                if first.function:
                    source["function"] = first.function
                source["also"] = [f"{s.path}:{s.line}" for s in best.locations[1:]]
                mapped += 1
            else:
                source["note"] = "no debug info: the function and offset are all the binary tells"
            finding.evidence["source"] = source
    return mapped


def _key(path: str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def _trace_locations(finding) -> List[Tuple[str, int]]:
    source = finding.evidence.get("source") or {}
    out = []
    if "path" in source:
        out.append((_key(source["path"]), source["line"]))
    for item in source.get("also", []):
        path, _, line = item.rpartition(":")
        if line.isdigit():
            out.append((_key(path), int(line)))
    return out


def join(static, traced):
    """Merge a static report into a traced one (see the module's docstring); returns the traced report
    with its findings replaced and counts in `extra["joined"]`."""
    by_place: Dict[tuple, list] = {}
    for finding in static.findings:
        if finding.line is not None:
            by_place.setdefault((finding.code, _key(finding.path), finding.line), []).append(finding)
        else:  # a binary's finding: confirmed by any mapped call from inside that binary
            by_place.setdefault((finding.code, _key(finding.path), None), []).append(finding)
    confirmed, misses, kept = 0, 0, []
    for finding in traced.findings:
        if finding.source != "strace":
            kept.append(finding)
            continue
        places = _trace_locations(finding)
        objects = {_key(frame.split("(")[0]) for frame in (finding.evidence.get("source") or {}).get("frames", [])}
        match = None
        for path, line in places:
            match = by_place.get((finding.code, path, line))
            if match:
                break
        if not match:
            for obj in objects:
                match = by_place.get((finding.code, obj, None)) or _by_basename(by_place, finding.code, obj)
                if match:
                    break
        run = {"trace": finding.path, "trace_line": finding.line, "message": finding.message}
        if match:
            for static_finding in match:
                if "confirmed" not in static_finding.evidence:
                    static_finding.evidence["confirmed"] = run
                    if places:
                        static_finding.evidence["confirmed"]["source_line"] = f"{places[0][0]}:{places[0][1]}"
                    confirmed += 1
            continue
        if places:
            source = finding.evidence["source"]
            moved = copy.copy(finding)
            moved.evidence = dict(finding.evidence, trace={"path": finding.path, "line": finding.line},
                                  static_miss=True)
            moved.path, moved.line = _display(source["path"]), source["line"]
            moved.column = moved.end_line = moved.end_column = None
            kept.append(moved)
            misses += 1
        else:
            kept.append(finding)
    merged = type(traced)(sources=set(traced.sources) | set(static.sources))
    merged.findings = list(static.findings) + kept
    merged.errors = list(static.errors) + list(traced.errors)
    merged.preamble = list(static.preamble) + list(traced.preamble)
    merged.extra = dict(static.extra, **traced.extra)
    merged.warnings = list(getattr(static, "warnings", [])) + list(getattr(traced, "warnings", []))
    merged.extra["joined"] = {"confirmed": confirmed, "static_misses": misses,
                              "static_not_reached": sum(1 for f in static.findings if "confirmed" not in f.evidence)}
    return merged


def _by_basename(by_place, code, obj):
    # `audit ./app` reports the path as given; the stack names the object as the loader saw it
    base = os.path.basename(obj)
    for (c, path, line), found in by_place.items():
        if c == code and line is None and os.path.basename(path) == base:
            return found
    return None


def _display(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative
