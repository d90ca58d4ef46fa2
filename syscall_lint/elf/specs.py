"""Binary rules as data: each rule's `[elf]` table in rules/SCLxxx.toml becomes a PathSpec.

A group is a profile area ("connections.accepts", see profile.AREAS) or a call name ("listen"). A
new binary rule is a TOML block (and a message), not a branch in rules.py:

    [elf]
    first = ["durability.writes"]      # calls reached first …
    second = ["durability.replaces"]   # … then these
    scope = "function"                 # "loop" (one natural loop's body) or "function"
    depth = 2                          # calls from the scope's code to the reached names
    ordered = true                     # first before second on one path
    without = ["durability.syncs"]     # and none of these reachable …
    without_depth = 4                  # … within this many calls
"""

from __future__ import annotations

import functools

from syscall_lint.elf.paths import PathSpec

SCOPES = ("loop", "function")
KEYS = {"first", "second", "scope", "depth", "ordered", "without", "without_depth", "not_in_loop", "serving", "max_callers", "second_depth", "library_loop", "indirect_depth"}


def group(names: list, where: str) -> frozenset:
    from syscall_lint.elf.profile import AREAS

    out = set()
    for name in names:
        area, _, part = name.partition(".")
        if part:
            if area not in AREAS or part not in AREAS[area]:
                raise ValueError(f"{where}: unknown profile group {name!r}")
            out |= AREAS[area][part]
        else:
            out.add(name)
    return frozenset(out)


def parse(code: str, table: dict) -> PathSpec:
    where = f"{code}.toml [elf]"
    unknown = set(table) - KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    if table.get("scope") not in SCOPES:
        raise ValueError(f"{where}: scope must be one of {SCOPES}")
    depth = table.get("depth", 3)
    if not isinstance(depth, int) or not 1 <= depth <= 8:
        raise ValueError(f"{where}: depth must be an integer from 1 to 8")
    return PathSpec(first=group(table["first"], where), second=group(table["second"], where),
                    scope=table["scope"], depth=depth, ordered=bool(table.get("ordered", True)),
                    without=group(table.get("without", []), where),
                    without_depth=int(table.get("without_depth", depth)),
                    not_in_loop=group(table.get("not_in_loop", []), where),
                    serving=group(table.get("serving", []), where), max_callers=int(table.get("max_callers", 0)),
                    second_depth=int(table.get("second_depth", 0)), library_loop=bool(table.get("library_loop", False)),
                    indirect_depth=int(table.get("indirect_depth", 0)))


@functools.lru_cache(maxsize=1)
def load() -> dict:
    """code → PathSpec for every rule whose TOML has an `[elf]` table."""
    from syscall_lint._toml import toml
    from syscall_lint.catalog import _catalog_dir

    folder = _catalog_dir()
    out = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not (path.name.startswith("SCL") and path.name.endswith(".toml")):
            continue
        data = toml.loads(path.read_bytes().decode())
        if "elf" in data:
            out[data["code"]] = parse(data["code"], data["elf"])
    return out
