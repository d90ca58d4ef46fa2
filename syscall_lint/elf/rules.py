"""SCL101/301/302 from the syscall surface, confirmed where possible by call sites; SCL501 for aarch64."""

from __future__ import annotations

from syscall_lint import findings as fmodel
from syscall_lint.elf import callsites, ordering, profile, reader

X86_NOTE = ("x86-64 code cannot show reliance on TSO: an acquire load and a plain load compile to the same "
            "mov, so SCL501 is not judged here (audit the aarch64 build, or the source)")


def audit(info, settings, path: str):
    """(findings, profile dict, notes) for one parsed binary."""
    enabled = settings.enabled_codes(path)
    prof = profile.build(info)
    text = _Code(info)
    notes = []
    found = []

    def emit(code, confidence, level, symbols, text, **fields):
        if code in enabled:
            found.append(fmodel.make(code, "elf", path, evidence={"symbols": symbols, "confidence": confidence,
                                                                  "evidence_level": level, "machine": info.machine},
                                     fingerprint_text=text, evidence_level=level, **fields))

    if info.static and info.stripped:
        notes.append("stripped static binary: its syscall surface cannot be seen from imports or symbols; "
                     "record a run instead (`syscall-lint record -- BINARY`)")
        return found, prof, notes
    if info.runtime == "go":
        notes.append("Go runtime: connections are served by the netpoller (epoll); goroutines are not threads, "
                     "so SCL301/302 are not judged from imports")
    d = prof["durability"]
    if d["replaces"] and not d["syncs"]:
        level = "static symbols" if info.static else "imports"
        emit("SCL101", "medium", level, d["replaces"] + d["not_a_sync"], "replaces without sync",
             renames=", ".join(d["replaces"]))
    c = prof["connections"]
    if c["accepts"] and info.runtime != "go":
        code_map = None
        for code, spawners in (("SCL301", c["threads"]), ("SCL302", c["forks"])):
            if not spawners:
                continue
            if code_map is None:
                code_map = text.call_map()
            verdict = None
            if code_map is not None:
                group = profile.AREAS["connections"]["threads" if code == "SCL301" else "forks"]
                verdict = callsites.same_loop(info, text.sections, code_map,
                                              set(profile.AREAS["connections"]["accepts"]), group)
            ready = c["readiness"] + c["event_libraries"]
            if verdict:
                func, start, end = verdict
                where = f"{func or 'code'} at {start:#x}–{end:#x}"
                emit(code, "high", f"call sites: {'/'.join(c['accepts'])} and {'/'.join(spawners)} in one loop in {where}",
                     c["accepts"] + spawners, f"{code} {func}", accepts="/".join(c["accepts"]),
                     spawns="/".join(spawners))
            elif code_map is None and not ready:
                emit(code, "low", "imports only (call sites not resolved for this machine)", c["accepts"] + spawners,
                     f"{code} imports", accepts="/".join(c["accepts"]), spawns="/".join(spawners))
            elif code_map is not None:
                notes.append(f"imports {'/'.join(c['accepts'])} and {'/'.join(spawners)}, but no loop calls both: "
                             f"not judged {code}")
    if info.machine == "x86-64":
        notes.append(X86_NOTE)
    elif info.machine == "aarch64" and "SCL501" in enabled:
        for func, start, end, load, operand in text.spins():
            found.append(fmodel.make(
                "SCL501", "elf", path, fingerprint_text=f"spin {func or hex(start)} {load} {operand}",
                evidence={"function": func, "start": hex(start), "end": hex(end), "load": load, "operand": operand,
                          "confidence": "medium", "evidence_level": "disassembly", "machine": info.machine},
                function=func or "code", start=hex(start), end=hex(end), load=load.upper(), operand=operand.strip("[]")))
    return found, prof, notes


class _Code:
    """The executable sections of one binary, read once and only if a check needs them."""

    def __init__(self, info):
        self.info = info
        self._sections = None

    def _read(self):
        if self._sections is None:
            self._sections, self._relocs = reader.text_sections(self.info.path)

    @property
    def sections(self):
        self._read()
        return self._sections

    def call_map(self):
        if self.info.machine not in ("x86-64", "aarch64"):
            return None
        self._read()
        c = profile.AREAS["connections"]
        return callsites.build(self.info, self._sections, self._relocs,
                               c["accepts"] | c["threads"] | c["forks"] | {"listen"})

    def spins(self):
        md = callsites._capstone("aarch64")
        out = []
        for name, base, data in self.sections:
            if name.startswith(".plt") or len(data) > callsites.MAX_CODE:
                continue
            out.extend(ordering.spin_loops(md, base, data, self.info.functions))
        return out
