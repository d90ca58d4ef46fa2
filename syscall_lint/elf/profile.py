"""The syscall-surface profile: what a human auditor wants first, area by area (capa-style)."""

from __future__ import annotations

from syscall_lint.elf.callsites import _base

def _load_areas() -> tuple:
    """(areas: {area: {group: set of names}}, library prefix lists) from rules/elf_areas.toml."""
    from syscall_lint._toml import toml
    from syscall_lint.catalog import _catalog_dir

    data = toml.loads((_catalog_dir() / "elf_areas.toml").read_bytes().decode())
    libraries = data.pop("libraries")
    areas = {area: {group: set(names) for group, names in groups.items()} for area, groups in data.items()}
    return areas, tuple(libraries["event"]), tuple(libraries["dispatch"])


AREAS, EVENT_LIBRARIES, DISPATCH_LIBRARIES = _load_areas()


def dispatch_libraries(info) -> list:
    return [lib for lib in info.needed if lib.startswith(DISPATCH_LIBRARIES)]


def surface(info) -> set:
    """The call names the binary can reach: imports, or for static binaries its symbol table."""
    names = set(info.imports)
    if info.static:
        names |= {name for _, _, name in info.functions}
    # _base inlined for the common case (no `__` prefix, no `@version`): called for every file
    return {n if n[:2] != "__" and "@" not in n else _base(n) for n in names}


def event_libraries(info) -> list:
    return [lib for lib in info.needed if lib.startswith(EVENT_LIBRARIES)]


def build(info) -> dict:
    names = surface(info)

    def has(group):
        return sorted(names & group)

    d, c, b = AREAS["durability"], AREAS["connections"], AREAS["batching"]
    return {
        "durability": {"replaces": has(d["replaces"]), "syncs": has(d["syncs"]), "not_a_sync": has(d["weak"])},
        "connections": {"accepts": has(c["accepts"]), "threads": has(c["threads"]), "forks": has(c["forks"]),
                        "readiness": has(c["readiness"]), "event_libraries": event_libraries(info)},
        "batching": {"single": has(b["single"]), "vectored": has(b["vectored"])},
        "zero-copy": has(AREAS["zero-copy"]["calls"]),
        "io_uring": has(AREAS["io_uring"]["calls"]) + [l for l in info.needed if l.startswith("liburing")],
        "memory": has(AREAS["memory"]["calls"]),
        "locking": has(AREAS["locking"]["calls"]),
    }


def _join(items, none="—"):
    return ", ".join(items) if items else none


def render(info, prof: dict, notes: list, shared_notes=()) -> list:
    """The profile's lines; `shared_notes` are left out (the caller says them once per run)."""
    libs = f" ({', '.join(info.needed)})" if info.needed else ""
    link = "static" if info.static else "dynamic"
    runtime = f", {info.runtime} runtime" if info.runtime else ""
    lines = [f"{info.path}: {info.arch_label}, {info.kind}, {link}{libs}{runtime}"]
    d = prof["durability"]
    if d["replaces"]:
        missing = "" if d["syncs"] else " — no fsync, fdatasync, syncfs or sync"
        lines.append(f"    durability    {_join(d['replaces'])}{missing}{'; syncs: ' + _join(d['syncs']) if d['syncs'] else ''}")
    else:
        lines.append(f"    durability    {'syncs: ' + _join(d['syncs']) if d['syncs'] else '—'}")
    c = prof["connections"]
    if c["accepts"]:
        model = _join(c["readiness"] + c["event_libraries"], "no readiness API")
        spawn = _join(c["threads"] + c["forks"], "no thread/process creation")
        lines.append(f"    connections   {_join(c['accepts'])}; {model}; {spawn}")
    else:
        lines.append("    connections   —")
    b = prof["batching"]
    if b["single"]:
        lines.append(f"    batching      {_join(b['single'])}{'' if b['vectored'] else ' — no writev/sendmsg'}"
                     f"{'; ' + _join(b['vectored']) if b['vectored'] else ''}")
    for area in ("zero-copy", "io_uring", "memory", "locking"):
        if prof[area]:
            lines.append(f"    {area:<13} {_join(prof[area])}")
    for note in notes:
        if note not in shared_notes:
            lines.append(f"    note          {note}")
    return lines
