"""Issue 10: function bounds from every source, the call graph, path rules read from the catalog."""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES
from syscall_lint.config import parse_table
from syscall_lint.elf import callgraph, specs
from syscall_lint.elf.reader import read, text_sections
from syscall_lint.elf.runner import audit_file

ELF = FIXTURES / "elf"
DEFAULTS = parse_table({}, "<test>", Path("."))
STRIP = {"x86_64": "strip", "aarch64": "aarch64-linux-gnu-strip"}


def _stripped(tmp_path, arch, name):
    tool = shutil.which(STRIP[arch])
    if tool is None:
        pytest.skip(f"{STRIP[arch]} is not on this machine")
    out = tmp_path / f"{name}-stripped"
    shutil.copy(ELF / arch / name, out)
    subprocess.run([tool, str(out)], check=True, timeout=60)
    return out


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_every_call_site_of_a_stripped_binary_is_inside_a_function(tmp_path, arch):
    """Stripped, the binary exports no function symbol: the unwind table and the call targets give
    the bounds, every direct call lands in one, and the server is still found through its helpers."""
    path = _stripped(tmp_path, arch, "wrapper_server")
    info = read(str(path))
    assert info.stripped and not [f for f in info.functions if f[1]]
    sections, relocs = text_sections(str(path))
    graph = callgraph.build(info, sections, relocs)
    sites = [s for found in graph.sites.values() for s in found]
    assert {s.target for s in sites} >= {"accept", "fork"}
    text = next(s for s in sections if s.name == ".text")
    md = callgraph._capstone(info.machine)
    calls = [a for a, _size, mnemonic, _op in md.disasm_lite(text.data, text.address) if mnemonic in ("call", "bl")]
    assert calls and all(graph.function_at(a) is not None for a in calls)
    assert {s.address for s in sites if not s.tail} >= {a for a in calls if graph.function_at(a) is not None} - \
        {a for a in calls if a in _unresolved(graph, md, text)}
    found, _, _ = audit_file(str(path), DEFAULTS)
    assert [f.code for f in found] == ["SCL302"] and "through" in found[0].message


def _unresolved(graph, md, text):
    """Calls whose target is neither a function start nor a stub (indirect or to a PLT header)."""
    starts = {f.start for f in graph.functions}
    out = set()
    for a, _size, mnemonic, op in md.disasm_lite(text.data, text.address):
        if mnemonic in ("call", "bl"):
            target = op.lstrip("#")
            if not target.startswith("0x") or int(target, 16) not in starts:
                out.add(a)
    return out


def test_call_graph_distances_and_the_path_in_the_message():
    info = read(str(ELF / "x86_64" / "wrapper_server"))
    sections, relocs = text_sections(info.path)
    graph = callgraph.build(info, sections, relocs)
    dist = graph.distances({"fork"}, 3)
    by_name = {f.name: f.start for f in graph.functions}
    assert dist["fork"] == 0 and dist[by_name["main"]] == 2
    found, _, _ = audit_file(info.path, DEFAULTS)
    [f] = found
    assert f.message.startswith("main: the loop at ") and "accept through next_client" in f.message
    assert "fork through spawn_session" in f.message and f.evidence["confidence"] == "high"


def test_binary_rules_are_read_from_the_catalog_toml():
    loaded = specs.load()
    assert {"SCL101", "SCL301", "SCL302"} <= set(loaded)
    assert loaded["SCL302"].scope == "loop" and "fork" in loaded["SCL302"].second
    assert loaded["SCL101"].scope == "function" and "fsync" in loaded["SCL101"].without


def test_a_new_binary_rule_is_a_toml_block():
    spec = specs.parse("SCL999", {"first": ["connections.accepts"], "second": ["posix_spawn"], "scope": "loop",
                                  "depth": 2})
    assert spec.first == {"accept", "accept4"} and spec.second == {"posix_spawn"} and spec.depth == 2
    with pytest.raises(ValueError, match="unknown keys"):
        specs.parse("SCL999", {"first": [], "second": [], "scope": "loop", "deep": 3})
    with pytest.raises(ValueError, match="scope"):
        specs.parse("SCL999", {"first": [], "second": [], "scope": "file"})
    with pytest.raises(ValueError, match="unknown profile group"):
        specs.parse("SCL999", {"first": ["connections.nope"], "second": [], "scope": "loop"})


def test_import_only_durability_is_a_note_not_a_finding(tmp_path):
    """A binary that imports rename and no fsync but never writes then renames in one function."""
    found, lines, prof = audit_file(str(ELF / "x86_64" / "replace_durable"), DEFAULTS)
    assert found == []
    # prefork_server imports no rename; take a real tool when the machine has one
    mv = Path("/bin/mv")
    if not mv.exists():
        pytest.skip("/bin/mv is not on this machine")
    found, lines, prof = audit_file(str(mv), DEFAULTS)
    assert found == [] and any("not judged SCL101" in n for n in prof["notes"])


def _patch_section_offset(data: bytes, section: str, offset: int) -> bytes:
    """The 64-bit little-endian ELF with one section's sh_offset replaced."""
    import struct

    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    names_off = struct.unpack_from("<Q", data, shoff + 64 * shstrndx + 0x18)[0]
    out = bytearray(data)
    for i in range(shnum):
        name_index = struct.unpack_from("<I", data, shoff + 64 * i)[0]
        name = data[names_off + name_index:data.index(b"\0", names_off + name_index)].decode()
        if name == section:
            struct.pack_into("<Q", out, shoff + 64 * i + 0x18, offset)
            return bytes(out)
    raise AssertionError(section)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_an_unwind_table_beyond_the_file_is_one_corrupt_elf_line(tmp_path, arch):
    """Found by mutating fixtures: the call graph reads .eh_frame; an offset past the end of the file
    is the one-line "corrupt ELF" error, not an exception out of the call graph."""
    from conftest import run_cli

    bad = tmp_path / "eh-frame-beyond"
    bad.write_bytes(_patch_section_offset((ELF / arch / "wrapper_server").read_bytes(), ".eh_frame", 0x9A003508))
    from syscall_lint.elf.reader import NotElf

    with pytest.raises(NotElf, match="^corrupt ELF: data at offset 0x9a003508 lies beyond the end of the file$"):
        audit_file(str(bad), DEFAULTS)
    proc = run_cli("audit", bad)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr == f"syscall-lint: error: {bad}: corrupt ELF: data at offset 0x9a003508 lies beyond the end of the file\n"


# calls through a structure slot (elf/indirect.py), on capstone-style instruction tuples
def _insns(*lines):
    out = []
    for i, line in enumerate(lines):
        mnem, _, ops = line.partition(" ")
        out.append((0x1000 + 4 * i, 4, mnem, ops.strip()))
    return out


def test_slot_call_names_its_offset_and_the_other_fields_read_from_the_structure():
    from syscall_lint.elf.indirect import SlotCall, slot_calls

    x86 = _insns("mov rax, qword ptr [rdi + 0x30]", "mov rax, qword ptr [rax + 8]", "mov rbx, rdi",
                 "mov rax, qword ptr [rbx + 0x30]", "mov rax, qword ptr [rax + 0x20]", "jmp rax")
    assert slot_calls("x86-64", x86) == [SlotCall(0x1014, 0x20, frozenset({8}), True)]
    a64 = _insns("mov x2, x0", "ldr x1, [x2, #0x10]", "ldr x2, [x2, #0x20]", "mov x16, x2", "br x16")
    assert slot_calls("aarch64", a64) == [SlotCall(0x1010, 0x20, frozenset({0x10}), True)]
    # a call through a register that no load made is not a slot call
    assert slot_calls("x86-64", _insns("lea rax, [rip + 0x10]", "call rax")) == []


def test_a_lea_then_a_paired_16_byte_store_is_a_slot_store_at_the_high_half():
    from syscall_lint.elf.indirect import _x86_store

    paired = _insns("lea rax, [rip - 0x115]", "lea rcx, [rip - 0x130]", "movq xmm2, rax", "movq xmm0, rcx",
                    "punpcklqdq xmm0, xmm2", "movups xmmword ptr [rdi + 0x18], xmm0")
    assert _x86_store(paired) == (0x20, "rdi", 0x1014)
    plain = _insns("lea rdx, [rip - 0x42]", "mov qword ptr [rax + 0x18], rdx")
    assert _x86_store(plain) == (0x18, "rax", 0x1004)
    # passed as an argument, not stored
    assert _x86_store(_insns("lea rdi, [rip + 0x10]", "call 0x2000")) is None


def test_fields_written_follow_the_pointer_through_its_stack_slot_and_stop_at_a_new_value():
    from syscall_lint.elf.indirect import fields_written

    o0 = _insns("mov qword ptr [rbp - 8], rdi", "mov rax, qword ptr [rbp - 8]", "mov qword ptr [rax + 8], rdx",
                "mov rax, qword ptr [rbp - 8]", "mov qword ptr [rax + 0x20], rdx",
                "mov rax, qword ptr [rbp - 0x10]", "mov qword ptr [rax + 0x30], rdx")
    assert fields_written("x86-64", o0, "rax", 0x1010) == {8, 0x20}
    a64 = _insns("mov x19, x0", "stp x1, x2, [x19, #8]", "str x3, [x19, #0x20]", "bl #0x4000",
                 "str x4, [x19, #0x40]", "mov x19, x5", "str x6, [x19, #0x50]")
    assert fields_written("aarch64", a64, "x19", 0x1008) == {8, 0x10, 0x20, 0x40}  # x19 survives calls


def test_a_slot_with_too_many_candidates_gives_no_evidence(monkeypatch):
    from syscall_lint.elf import indirect

    class Graph:
        sites = {}

        def function(self, start):
            return callgraph.Function(start, start + 16, f"f{start:x}")

    index = indirect.PointerIndex.__new__(indirect.PointerIndex)
    index.graph = Graph()
    call = indirect.SlotCall(0x10, 0x20, frozenset(), False)
    monkeypatch.setattr(index, "slot_calls_of", lambda start: [call] if start == 0x100 else [], raising=False)
    for count, found in ((indirect.MAX_CANDIDATES, True), (indirect.MAX_CANDIDATES + 1, False)):
        cands = [0x1000 + 0x10 * i for i in range(count)]
        monkeypatch.setattr(index, "candidates", lambda c, cands=cands: cands, raising=False)
        hit = index.reach(0x100, {cands[-1]: 1, "pthread_create": 0}, 4, lambda n: str(n))
        assert (hit is not None) == found
        if found:
            assert hit[0][0] == "256" and "slot +0x20" in hit[1] and str(cands[0]) in hit[1]


@pytest.mark.parametrize("name", ["slot_thread_server", "slot_thread_server-O0", "thread_server-static"])
def test_lea_scan_gives_the_same_function_addresses_with_and_without_numpy(monkeypatch, name):
    import struct

    from syscall_lint.elf import indirect, vector

    info = read(str(ELF / "x86_64" / name))
    sections, relocs = text_sections(info.path)
    graph = callgraph.build(info, sections, relocs)
    starts = set(graph._starts)
    for sec in sections:
        data = sec.data
        by_byte = [(pos, sec.address + pos + 7 + struct.unpack_from("<i", data, pos + 3)[0])
                   for pos in range(len(data) - 6)
                   if data[pos] in (0x48, 0x4C) and data[pos + 1] == 0x8D and data[pos + 2] & 0xC7 == 0x05]
        expected = [(pos, target) for pos, target in by_byte if target in starts]
        assert indirect._x86_lea_targets(sec.address, data, starts) == expected
        monkeypatch.setattr(vector, "ENABLED", False)
        assert indirect._x86_lea_targets(sec.address, data, starts) == expected
        monkeypatch.undo()


def _blocks(*spec):
    """cfg-style blocks from (start, [instruction text], successors)."""
    from syscall_lint.elf.cfg import Block

    out = {}
    for start, lines, succs in spec:
        insns = []
        for i, line in enumerate(lines):
            mnem, _, ops = line.partition(" ")
            insns.append((start + 4 * i, 4, mnem, ops.strip()))
        out[start] = Block(start, start + 4 * len(lines), insns, list(succs))
    return out


def test_the_failure_side_of_the_branch_on_accepts_result_is_not_its_path():
    from syscall_lint.elf.outcome import success_target

    # dante's arm64 shape: the call ends a block, the result is stored, compared with -1, and b.ne
    # leaves for the connection's path; the fall-through is the errno switch
    a64 = _blocks((0x100, ["mov x1, x23", "bl #0x2b6d0"], [0x108]),
                  (0x108, ["str w0, [sp, #0x498]", "cmn w0, #1", "b.ne #0x80"], [0x80, 0x114]),
                  (0x114, ["ldr w21, [x28]"], []), (0x80, ["nop"], []))
    assert success_target("aarch64", a64, 0x100, 0x104) == (0x108, 0x80)
    x86 = _blocks((0x10, ["call 0x500", "mov ebx, eax", "test ebx, ebx", "js 0x40"], [0x40, 0x20]),
                  (0x20, ["nop"], []), (0x40, ["nop"], []))
    assert success_target("x86-64", x86, 0x10, 0x10) == (0x10, 0x20)
    # a branch on something else, or the result overwritten first, says nothing
    other = _blocks((0x10, ["call 0x500", "cmp ecx, -1", "je 0x40"], [0x40, 0x20]),
                    (0x20, ["nop"], []), (0x40, ["nop"], []))
    assert success_target("x86-64", other, 0x10, 0x10) is None
    lost = _blocks((0x10, ["call 0x500", "mov eax, 1", "cmp eax, -1", "je 0x40"], [0x40, 0x20]),
                   (0x20, ["nop"], []), (0x40, ["nop"], []))
    assert success_target("x86-64", lost, 0x10, 0x10) is None


def test_relative_relocations_read_the_same_with_and_without_numpy(monkeypatch):
    from syscall_lint.elf import reader, vector

    path = str(ELF / "aarch64" / "slot_thread_server")
    with_arrays = reader.relative_addends(path, "aarch64")
    monkeypatch.setattr(vector, "ENABLED", False)
    plain = reader.relative_addends(path, "aarch64")
    assert plain  # a PIE's GOT and init arrays hold its own addresses
    for slot, address in plain.items():
        assert with_arrays.get(slot) == address
    assert with_arrays.get(min(plain) - 8) is None and with_arrays.get(max(plain) + 8) is None
    assert reader.relative_addends(path, "s390") == {}


@pytest.mark.parametrize("name", ["slot_thread_server", "slot_thread_server-O0", "slot_pool_server-Os"])
def test_aarch64_slot_stores_are_the_same_with_and_without_numpy(monkeypatch, name):
    from syscall_lint.elf import indirect, vector

    info = read(str(ELF / "aarch64" / name))
    sections, relocs = text_sections(info.path)
    graph = callgraph.build(info, sections, relocs)

    def stores():
        index = indirect.PointerIndex(info, sections, graph)
        return {off: sorted((s.target, s.writer, s.site, reg) for s, reg in found)
                for off, found in index.stores().items()}

    with_arrays = stores()
    monkeypatch.setattr(vector, "ENABLED", False)
    assert stores() == with_arrays
    take = graph.function(min(f.start for f in graph.functions if f.name == "take_in_thread")) \
        if any(f.name == "take_in_thread" for f in graph.functions) else None
    if take is not None:  # the handler stored in the dispatch table's slot +0x20
        assert take.start in {target for target, *_ in with_arrays.get(0x20, ())}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
@pytest.mark.parametrize("stripped", [False, True])
def test_call_graph_is_the_same_with_and_without_numpy(tmp_path, monkeypatch, arch, stripped):
    """With numpy, build() keeps the function table and the calls as columns (graphcols.py,
    calltable.ArrayCalls) and never makes a tuple per call: the functions (call targets no table
    names included, and the gap functions), the calls, the names, each function's call sites and
    the distances must be those of the pure pipelines, on every fixture (and stripped, where call
    targets make most function starts)."""
    from syscall_lint.elf import vector

    if vector.np is None:
        pytest.skip("numpy is not installed")
    names = sorted(p.name for p in (ELF / arch).iterdir() if p.is_file() and not p.suffix)
    if not names:
        pytest.skip(f"no {arch} fixtures built")
    compared = 0
    for name in names[::3] if stripped else names:
        path = _stripped(tmp_path, arch, name) if stripped else ELF / arch / name
        info = read(str(path))
        sections, relocs = text_sections(str(path))
        graphs = []
        for enabled in (True, False):
            monkeypatch.setattr(vector, "ENABLED", enabled)
            graph = callgraph.build(info, sections, relocs)
            if graph is None:
                graphs.append(None)
                continue
            reach = graph.distances({"accept", "accept4", "fork", "rename", "write", "pthread_create"}, 3)
            graphs.append((graph.functions, graph.calls(), graph.names, graph.sites.items(),
                           sorted(reach.items(), key=repr), {f.start: graph.callers(f.start) for f in graph.functions}))
        assert graphs[0] == graphs[1], name
        compared += graphs[0] is not None and bool(graphs[0][1])
    assert compared
