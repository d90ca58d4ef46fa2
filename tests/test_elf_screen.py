"""The screen before SCL101's call graph (elf/screen.py) says "no function can hold a write and a
rename" only when the graph agrees, and the name-free readers it rests on answer as the decoding
ones: the functions' columns, the slots of a few imports, a defined function named like a call."""

from __future__ import annotations

import os

import pytest

from conftest import FIXTURES
from syscall_lint.config import parse_table
from syscall_lint.elf import callsites, profile, reader, rules, screen, specs, vector
from syscall_lint.elf.runner import audit_file

ELF = FIXTURES / "elf"
DEFAULTS = parse_table({}, "<test>", __import__("pathlib").Path("."))
SPEC = specs.load()["SCL101"]
WANTED = SPEC.first | SPEC.second


def _numpy():
    if not vector.ENABLED:
        pytest.skip("numpy is not installed")


def _x86_fixtures():
    folder = ELF / "x86_64"
    return sorted(str(p) for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _system_candidates(limit=40):
    """Up to `limit` binaries of this machine's /usr/bin that import a rename and no sync."""
    if not os.path.isdir("/usr/bin"):
        return []
    out = []
    for name in sorted(os.listdir("/usr/bin")):
        path = os.path.join("/usr/bin", name)
        if os.path.islink(path) or not reader.is_elf(path):
            continue
        try:
            info = reader.read(path)
        except Exception:
            continue
        d = profile.build(info)["durability"]
        if info.machine == "x86-64" and d["replaces"] and not d["syncs"]:
            out.append(path)
            if len(out) >= limit:
                break
    return out


def _verdicts(path):
    """(does the screen apply, its answer, the graph's SCL101 matches) for one binary."""
    info = reader.read(path)
    if not screen.applies(info, SPEC):
        return False, True, None
    sections, slots = reader.text_sections(path, only_bases=WANTED)
    answer = screen.may_match(info, SPEC, sections, slots, {})
    graph = rules._Code(info).evaluator()
    return True, answer, graph.matches(SPEC) if graph is not None else []


def test_screen_never_says_no_where_the_graph_finds_a_path():
    _numpy()
    seen = {}
    for path in _x86_fixtures():
        applies, answer, matches = _verdicts(path)
        if applies and not answer:
            assert matches == [], path
        seen[os.path.basename(path)] = (applies, answer, bool(matches))
    if not seen:
        pytest.skip("no ELF fixtures built")
    # the twins: a write one call below the rename (found), a write and a rename in different
    # functions (an `mv` that logs: no candidate, no graph built)
    assert seen["replace_helper"] == (True, True, True)
    assert seen["replace_nosync"] == (True, True, True)
    assert seen["replace_apart"] == (True, False, False)
    assert not seen["replace_apart-static"][0]  # static code: the graph decides


def test_screen_agrees_with_the_graph_on_this_machines_binaries():
    _numpy()
    paths = _system_candidates()
    if not paths:
        pytest.skip("no x86-64 binary under /usr/bin imports a rename without a sync")
    said_no = 0
    for path in paths:
        applies, answer, matches = _verdicts(path)
        if applies and not answer:
            said_no += 1
            assert matches == [], path
    assert said_no, "the screen answered no for none of them"


@pytest.mark.parametrize("name", ["replace_apart", "replace_helper", "thread_server"])
def test_the_audit_says_the_same_with_and_without_the_screen(name, monkeypatch):
    _numpy()
    path = ELF / "x86_64" / name
    if not path.exists():
        pytest.skip("no ELF fixtures built")
    screened = audit_file(str(path), DEFAULTS)
    monkeypatch.setattr(screen, "applies", lambda info, spec: False)
    unscreened = audit_file(str(path), DEFAULTS)
    assert [f.__dict__ for f in screened[0]] == [f.__dict__ for f in unscreened[0]]
    assert screened[1:] == unscreened[1:]


def _real_and_fixture_binaries():
    return _x86_fixtures() + sorted(str(p) for p in (ELF / "aarch64").iterdir() if p.is_file()) + \
        _system_candidates(12)


def test_function_columns_are_the_decoded_functions_addresses_and_sizes():
    _numpy()
    paths = _real_and_fixture_binaries()
    if not paths:
        pytest.skip("no binaries")
    for path in paths:
        info = reader.read(path)
        addrs, sizes = reader.function_columns(info)
        got = sorted(set(zip(addrs.tolist(), sizes.tolist())))
        assert got == sorted({(a, s) for a, s, _name in info.functions}), path


def test_slots_of_a_few_imports_are_the_full_tables_restricted_to_them():
    _numpy()
    for path in _real_and_fixture_binaries():
        _sections, every = reader.text_sections(path)
        _sections, few = reader.text_sections(path, only_bases=WANTED)
        assert few == {slot: name for slot, name in every.items() if callsites._base(name) in WANTED}, path


def test_a_defined_function_named_like_a_call_is_found_without_decoding_the_rest():
    for path in _real_and_fixture_binaries():
        info = reader.read(path)
        named = any(callsites._base(name) in WANTED for _a, _s, name in info.functions)
        # info.functions reads .symtab when it names anything; the screen asks both tables
        assert reader.defines_function_named(path, WANTED) >= named, path
    static = ELF / "x86_64" / "replace_nosync-static"
    if static.exists():  # glibc's own rename and write are in it
        assert reader.defines_function_named(str(static), WANTED)
    apart = ELF / "x86_64" / "replace_apart"
    if apart.exists():  # imports them; defines neither
        assert not reader.defines_function_named(str(apart), WANTED)


def test_named_only_decodes_tail_merged_and_prefixed_names(tmp_path):
    """A symbol whose name is the tail of another string (linkers merge them) or carries a prefix
    callsites._base strips is found; a longer name ending the same way is not."""
    import struct

    strings = b"\0my_rename\0__libc_write\0writer\0"
    entries = [(0, 0), (strings.index(b"rename"), 0), (strings.index(b"__libc_write"), 0),
               (strings.index(b"writer"), 0), (1, 0)]
    table = b"".join(struct.pack("<IBBHQQ", name, 0x12, 0, shndx, 0, 0) for name, shndx in entries)

    class Sec:
        type, link = 11, 1

    class FakeLayout:
        e, bits = "<", 64

        def data(self, sec):
            return table

        def strings(self, link):
            return strings

    count, found = reader._entries_named(FakeLayout(), Sec(), frozenset({"rename", "write"}))
    assert count == 5
    assert [(i, name) for i, name, _row in found] == [(1, "rename"), (2, "__libc_write")]
