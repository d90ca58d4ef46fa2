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
