"""SCL101/301/302 from the syscall surface, confirmed where possible by call sites; SCL501 for aarch64."""

from __future__ import annotations

from syscall_lint import findings as fmodel
from syscall_lint.elf import callgraph, callsites, paths, profile, reader, screen, specs, spin
from syscall_lint.elf.notes import SHARED_NOTES, X86_NOTE  # noqa: F401 (SHARED_NOTES: rules.SHARED_NOTES)


def audit(info, settings, path: str):
    """(findings, profile dict, notes) for one parsed binary."""
    enabled = settings.enabled_codes(path)
    prof = profile.build(info)
    text = _Code(info)
    notes = []
    found = []

    def emit(code, confidence, level, symbols, text, variant="", **fields):
        if code in enabled:
            evidence = {"symbols": symbols, "confidence": confidence, "evidence_level": level, "machine": info.machine}
            evidence.update({k: v for k, v in fields.items() if k in ("function", "start", "end")})
            found.append(fmodel.make(code, "elf", path, evidence=evidence, fingerprint_text=text, variant=variant,
                                     evidence_level=level, **fields))

    if info.static and info.stripped:
        notes.append("stripped static binary: its syscall surface cannot be seen from imports or symbols; "
                     "record a run instead (`syscall-lint record -- BINARY`)")
        return found, prof, notes
    if info.runtime == "go":
        notes.append("Go runtime: connections are served by the netpoller (epoll); goroutines are not threads, "
                     "so SCL301/302 are not judged from imports")
    rules = specs.load()
    d, c = prof["durability"], prof["connections"]
    if d["replaces"] and not d["syncs"] and "SCL101" in enabled:
        # a binary that imports a sync call is not judged: the call graph cannot see the sync
        # reached through a function pointer or a flag (rsync's --fsync), and precision comes first
        # the screen pays only when no server rule below builds the graph anyway
        serves = c["accepts"] and info.runtime != "go" and (
            (c["threads"] and "SCL301" in enabled) or (c["forks"] and "SCL302" in enabled))
        graph = text.evaluator() if serves or text.may_match(rules["SCL101"]) else _NO_CANDIDATE
        found_path = graph.matches(rules["SCL101"]) if graph is not None else []
        for m in found_path:
            emit("SCL101", "medium", f"call sites: a write then a rename in {m.function.name}, no sync reachable "
                 f"within {rules['SCL101'].without_depth} calls", d["replaces"],
                 f"SCL101 {m.function.name}", function=m.function.name, writes=m.via(m.first), renames=m.via(m.second))
        if graph is None:
            notes.append(f"imports {'/'.join(d['replaces'])} and no fsync; {text.why_no_graph()}: not judged SCL101 "
                         "(low confidence from imports alone)")
        elif not found_path:
            notes.append(f"imports {'/'.join(d['replaces'])} and no fsync, but no function writes a file and then "
                         "renames it: not judged SCL101 (low confidence from imports alone)")
    if c["accepts"] and info.runtime != "go":
        for code, spawners in (("SCL301", c["threads"]), ("SCL302", c["forks"])):
            if not spawners or code not in enabled:
                continue
            graph = text.evaluator()
            if graph is None and text.too_large:
                notes.append(f"imports {'/'.join(c['accepts'])} and {'/'.join(spawners)}; {text.why_no_graph()}: "
                             f"not judged {code}")
                continue
            if graph is None:
                if not (c["readiness"] + c["event_libraries"]):
                    emit(code, "low", "imports only (call sites not resolved for this machine)", c["accepts"] + spawners,
                         f"{code} imports", variant="imports", accepts="/".join(c["accepts"]),
                         spawns="/".join(spawners))
                continue
            spec = rules[code]
            dispatch = profile.dispatch_libraries(info)
            hits = graph.matches(spec, library_loop=bool(dispatch))
            for m in hits:
                if m.callback:
                    emit(code, "high", f"call sites in one event callback, through direct calls (depth ≤ {spec.depth})",
                         c["accepts"] + spawners, f"{code} {m.function.name}", variant="callback",
                         function=m.function.name, library=dispatch[0], accepts=m.via(m.first),
                         spawns=m.via(m.second))
                    continue
                if m.pointer:
                    emit(code, "medium", f"call sites in one loop, {m.pointer} (depth ≤ {spec.indirect_depth})",
                         c["accepts"] + spawners, f"{code} {m.function.name} pointer", variant="pointer",
                         function=m.function.name, start=hex(m.start), end=hex(m.end), accepts=m.via(m.first),
                         spawns=m.via(m.second))
                    continue
                emit(code, "high", f"call sites in one loop, through direct calls (depth ≤ {spec.depth})",
                     c["accepts"] + spawners, f"{code} {m.function.name}", function=m.function.name,
                     start=hex(m.start), end=hex(m.end), accepts=m.via(m.first), spawns=m.via(m.second))
            if not hits:
                notes.append(f"imports {'/'.join(c['accepts'])} and {'/'.join(spawners)}, but no loop reaches both "
                             f"(accept first, within {spec.depth} calls): not judged {code}")
    for code, spec in rules.items():
        if code in BUILT_IN or code not in enabled or info.runtime == "go":
            continue
        # a rule added as data: its [elf] table is the whole check, and its message takes
        # {function}, {start}, {end}, {first} and {second}
        if not (profile.surface(info) & spec.first and profile.surface(info) & spec.second):
            continue
        graph = text.evaluator()
        for m in graph.matches(spec, library_loop=bool(profile.dispatch_libraries(info))) if graph else ():
            emit(code, "medium", f"call sites in one {spec.scope}, through direct calls (depth ≤ {spec.depth})",
                 sorted(profile.surface(info) & (spec.first | spec.second)), f"{code} {m.function.name}",
                 function=m.function.name, start=hex(m.start), end=hex(m.end), first=m.via(m.first),
                 second=m.via(m.second))
    if info.machine == "x86-64":
        notes.append(X86_NOTE)
    elif info.machine == "aarch64" and "SCL501" in enabled:
        concurrent = concurrency(info)
        if concurrent is None:
            notes.append("no thread or process creation and no shared mapping, and not a shared library: "
                         "SCL501 is not judged (no other agent can write what a loop polls)")
        else:
            found.extend(_spin_findings(info, path, text.spins(), concurrent, notes))
    return found, prof, notes


class _NoCandidate:
    """What the graph answers when the screen has found no function that could hold the path."""

    @staticmethod
    def matches(spec, **_):
        return []


_NO_CANDIDATE = _NoCandidate()

# binary rules with their own emitters above; any other rule with an [elf] table is emitted generically
BUILT_IN = frozenset({"SCL101", "SCL301", "SCL302"})
# evidence that some other thread or process shares this program's memory (rules/elf_areas.toml)
CONCURRENCY = frozenset(profile.AREAS["concurrency"]["calls"])
MAX_SPIN_FUNCTIONS = 20  # functions listed per binary; the rest are counted in a note


def concurrency(info):
    """Why SCL501 applies to this binary (a shared library, or the calls that share its memory), or None."""
    if info.kind == "shared library":
        return "a shared library (its callers may be threaded)"
    names = sorted(profile.surface(info) & CONCURRENCY)
    return f"calls {', '.join(names)}" if names else None


def _spin_findings(info, path, spins, concurrent, notes) -> list:
    """One finding per function, ranked by how many spin loops it holds: a binary with hundreds of
    sites reads as a short ranked summary."""
    if not spins:
        return []
    functions = callgraph.boundaries(info, ())
    by_function = {}
    for hit in spins:
        func = _function_name(functions, hit.start) or f"code at {hit.start:#x}"
        by_function.setdefault(func, []).append(hit)
    ranked = sorted(by_function.items(), key=lambda kv: (-len(kv[1]), kv[1][0].start))
    out = []
    for func, hits in ranked[:MAX_SPIN_FUNCTIONS]:
        first = min(hits, key=lambda h: h.start)
        more = len(hits) - 1
        fields = dict(function=func, start=hex(first.start), end=hex(first.end), load=first.load.upper(),
                      operand=first.operand.strip("[]"))
        evidence = {"function": func, "start": hex(first.start), "end": hex(first.end), "load": first.load,
                    "operand": first.operand, "sites": [hex(h.start) for h in sorted(hits, key=lambda h: h.start)],
                    "count": len(hits), "concurrency": concurrent, "confidence": "medium",
                    "evidence_level": "disassembly (control-flow graph)", "machine": info.machine}
        if more:
            out.append(fmodel.make("SCL501", "elf", path, variant="many", fingerprint_text=f"spin {func}",
                                   evidence=evidence, count=len(hits), **fields))
        else:
            out.append(fmodel.make("SCL501", "elf", path, fingerprint_text=f"spin {func} {first.load} {first.operand}",
                                   evidence=evidence, **fields))
    if len(ranked) > MAX_SPIN_FUNCTIONS:
        rest = ranked[MAX_SPIN_FUNCTIONS:]
        notes.append(f"SCL501: {sum(len(h) for _, h in rest)} more spin loops in {len(rest)} more functions "
                     f"(the {MAX_SPIN_FUNCTIONS} with the most are reported)")
    return out


def _function_name(functions, addr):
    import bisect

    i = bisect.bisect_right([f.start for f in functions], addr) - 1
    if i >= 0 and functions[i].start <= addr < functions[i].end:
        return functions[i].name
    return None


class _Code:
    """The executable sections of one binary, read once and only if a check needs them."""

    def __init__(self, info):
        self.info = info
        self._sections = self._relocs = None
        self._scans = {}  # the screen's call scans, kept for the graph

    def _read(self):
        if self._sections is None:
            self._sections, self._relocs = reader.text_sections(self.info.path)
        elif self._relocs is None:  # the code was read for the screen, with a few imports' slots
            self._relocs = reader.import_slots(self.info.path)

    def may_match(self, spec) -> bool:
        """screen.may_match before a function-scope rule's graph is built: False when no function can
        hold both groups. The code read for it is kept for the graph."""
        if hasattr(self, "_evaluator") or not screen.applies(self.info, spec):
            return True  # built already (the graph answers), or code the screen does not read
        if self._sections is None:
            if callgraph.too_large(reader.code_size(self.info.path, (".plt",))):
                return True  # the evaluator says why it builds no graph
            self._sections, slots = reader.text_sections(self.info.path, only_bases=spec.first | spec.second)
            self._relocs = None
        else:
            slots = self._relocs
        return screen.may_match(self.info, spec, self._sections, slots, self._scans)

    @property
    def sections(self):
        self._read()
        return self._sections

    too_large = False

    def evaluator(self):
        """The call graph with its path evaluator, built once per binary on first use; None for a
        machine whose calls are not decoded, or code beyond callgraph.MAX_GRAPH_CODE."""
        if not hasattr(self, "_evaluator"):
            self._evaluator = None
            if self.info.machine in ("x86-64", "aarch64"):
                if self._sections is None and callgraph.too_large(reader.code_size(self.info.path, (".plt",))):
                    self.too_large = True
                    return None
                self._read()
                graph = callgraph.build(self.info, self._sections, self._relocs, self._scans or None)
                if graph is not None:
                    self._evaluator = paths.Evaluator(self.info, self._sections, graph)
                else:
                    self.too_large = True
        return self._evaluator

    def why_no_graph(self) -> str:
        if self.too_large:
            return f"its code is larger than {callgraph.MAX_GRAPH_CODE >> 20} MB, beyond the call graph's budget"
        return f"calls are not decoded for {self.info.machine}"

    def spins(self):
        """aarch64 spin-wait loops (spin.Spin), from raw-word candidates and a CFG of each."""
        md = callsites._capstone("aarch64")
        md.skipdata = True
        return spin.Analyzer(md, self.sections).spins()
