"""The audit's column fast paths answer as the per-object code they replace: the call table
(numpy columns against tuples), the function table's gap filling, a loop's membership test, the
block leaders' prefilter, the relocation rows read on arrays, the unwind table as columns, and
one settings lookup per directory of named files."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from syscall_lint.elf import callgraph, calltable, cfg, graphcols, layout, reader, vector

ELF = FIXTURES / "elf"


def _numpy():
    if vector.np is None:
        pytest.skip("numpy is not installed")
    return vector.np


def _random_calls(rng, n):
    """(site, node, tail) rows sorted by unique sites; nodes are function starts or imported names."""
    sites = sorted(rng.sample(range(0x1000, 0x1000 + 40 * n + 8), n))
    starts = [0x1000 + 8 * rng.randrange(5 * n + 1) for _ in range(max(1, n // 4))]
    names = [f"import{i}" for i in range(6)] + ["__libc_accept", "fork@GLIBC_2.2.5"]
    return [(s, rng.choice(starts) if rng.random() < 0.6 else rng.choice(names), rng.random() < 0.3) for s in sites]


def _as_columns(np, rows):
    names = sorted({node for _, node, _ in rows if isinstance(node, str)} | {"never_called"})
    code = {name: ~i for i, name in enumerate(names)}
    site = np.array([s for s, _, _ in rows], dtype=np.int64)
    node = np.array([n if isinstance(n, int) else code[n] for _, n, _ in rows], dtype=np.int64)
    tail = np.array([t for _, _, t in rows], dtype=bool)
    return calltable.ArrayCalls(np, site, node, tail, names)


@pytest.mark.parametrize("scans", [0, 1000])
def test_call_table_columns_answer_as_the_tuples(monkeypatch, scans):
    """ArrayCalls against ListCalls on random tables: every row, the rows between two addresses
    (Python ints beyond int64 included), the calls to each node (answered by scans, then by the
    sorted index), and the names in the order of their first call."""
    np = _numpy()
    monkeypatch.setattr(calltable, "SCANS_BEFORE_INDEX", scans)
    rng = random.Random(7)
    for n in (0, 1, 2, 17, 300):
        rows = _random_calls(rng, n)
        plain, columns = calltable.ListCalls(list(rows)), _as_columns(np, rows)
        assert columns.rows() == plain.rows() == rows and len(columns) == len(plain) == n
        bounds = [0, -1, 1 << 63, 1 << 70, -(1 << 70)] + [rng.randrange(0xF00, 0x1100 + 40 * n) for _ in range(30)]
        for lo in bounds:
            for hi in bounds[:8]:
                assert columns.between(lo, hi) == plain.between(lo, hi)
        nodes = {node for _, node, _ in rows} | {"never_called", "absent", -5, 1 << 64, 0x1000}
        for node in sorted(nodes, key=repr) * 2:  # twice: the second pass may use the index
            assert columns.to(node) == list(plain.to(node)), node
        assert columns.called_names() == plain.called_names()


def test_function_gaps_on_columns_match_the_tuples():
    """graphcols._fill_gaps against callgraph._fill_gaps on random sections: padding skipped, a
    gap of more than MIN_GAP bytes made a function, functions outside every section kept,
    overlapping ends and empty sections."""
    np = _numpy()
    rng = random.Random(3)
    pad = [0x90, 0xCC, 0x00, 0x66, 0x0F, 0x1F]
    for _ in range(300):
        code, starts = [], set()
        base = 0x1000
        for k in range(rng.randrange(1, 4)):
            size = rng.randrange(0, 400)
            data = bytes(rng.choice(pad) if rng.random() < 0.5 else rng.randrange(256) for _ in range(size))
            code.append(reader.CodeSection(f".s{k}", base, data))
            starts.update(base + rng.randrange(0, size + 40) for _ in range(rng.randrange(0, 8)))
            base += size + rng.randrange(0, 64)
        starts = sorted(starts)
        ends = [s + rng.randrange(1, 90) for s in starts]
        expected = callgraph._fill_gaps(list(starts), list(ends), code)
        got = graphcols._fill_gaps(np, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64), code,
                                   callgraph.MIN_GAP, callgraph._padding)
        assert got == expected


def test_loop_membership_by_binary_search_matches_a_scan():
    rng = random.Random(5)
    for _ in range(300):
        spans, at = [], rng.randrange(0, 50)
        for _ in range(rng.randrange(0, 12)):
            at += rng.randrange(0, 20)
            end = at + rng.randrange(1, 30)
            spans.append((at, end))
            at = end
        loop = cfg.NaturalLoop(spans[0][0] if spans else 0, (), frozenset(), tuple(spans))
        for addr in range(-2, at + 3):
            assert loop.contains(addr) == any(s <= addr < e for s, e in spans), (spans, addr)


class _Everything:
    def __contains__(self, _item):
        return True


@pytest.mark.parametrize("machine", ["x86-64", "aarch64"])
def test_block_leaders_prefilter_skips_only_non_branches(monkeypatch, machine):
    """cfg.blocks asks branch() only about instructions whose first letter may start a branch:
    on capstone's text of random bytes and of the fixtures, the blocks are those made when every
    instruction is asked."""
    md = callgraph._capstone(machine)
    md.skipdata = True
    rng = random.Random(11)
    texts = [bytes(rng.randrange(256) for _ in range(4000)) for _ in range(20)]
    arch = "x86_64" if machine == "x86-64" else "aarch64"
    for path in sorted((ELF / arch).glob("*"))[:12]:
        if path.is_file() and not path.suffix:
            texts.extend(s.data for s in reader.text_sections(str(path))[0])
    for data in texts:
        insns = list(md.disasm_lite(data, 0x1000))
        if not insns:
            continue
        end = insns[-1][0] + insns[-1][1]
        fast = cfg.blocks(machine, insns, 0x1000, end)
        monkeypatch.setattr(cfg, "_X86_BRANCH_INITIALS", _Everything())
        monkeypatch.setattr(cfg, "_A64_BRANCH_INITIALS", _Everything())
        slow = cfg.blocks(machine, insns, 0x1000, end)
        monkeypatch.undo()
        assert fast == slow


def _fixtures():
    return [p for arch in ("x86_64", "aarch64") if (ELF / arch).is_dir()
            for p in sorted((ELF / arch).iterdir()) if p.is_file() and not p.suffix]


def test_relocation_rows_on_arrays_match_the_row_loop(monkeypatch):
    """Layout.relocations reads the named rows on arrays (one name lookup per symbol) or one by
    one: the same GOT slot → name table on every fixture."""
    _numpy()
    paths = _fixtures()
    if not paths:
        pytest.skip("no ELF fixtures built")
    seen = 0
    for path in paths:
        monkeypatch.setattr(layout, "ROWS_ON_ARRAYS", 0)
        on_arrays = reader.text_sections(str(path))[1]
        monkeypatch.setattr(layout, "_np", None)
        one_by_one = reader.text_sections(str(path))[1]
        monkeypatch.undo()
        assert on_arrays == one_by_one, path
        seen += len(one_by_one)
    assert seen


def test_unwind_columns_match_the_unwind_ranges():
    _numpy()
    paths = _fixtures()
    if not paths:
        pytest.skip("no ELF fixtures built")
    for path in paths:
        starts, ends, known = reader.eh_frame_columns(str(path))
        columns = sorted(zip(starts.tolist(), [e if k else None for e, k in zip(ends.tolist(), known.tolist())]))
        assert columns == reader.eh_frame_ranges(str(path)), path


def test_named_files_share_their_directorys_settings_but_a_link_follows_its_target(tmp_path):
    """The settings of a file named on the command line are looked up once per directory; a
    symbolic link still gets the settings of the directory its target is in."""
    from syscall_lint.config import Resolver
    from syscall_lint.elf.runner import _inputs
    from syscall_lint.report import Report

    binary = next(iter(_fixtures()), None)
    if binary is None:
        pytest.skip("no ELF fixtures built")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    (here / "pyproject.toml").write_text('[tool.syscall-lint]\nignore = ["SCL101"]\n')
    (there / "pyproject.toml").write_text('[tool.syscall-lint]\nignore = ["SCL302"]\n')
    shutil.copy(binary, here / "a")
    shutil.copy(binary, here / "b")
    shutil.copy(binary, there / "c")
    os.symlink(there / "c", here / "link")
    resolver, report, by_dir = Resolver(), Report(sources={"elf"}), {}
    named = [str(here / "link"), str(here / "a"), str(here / "b"), str(there / "c")]
    got = [settings for arg in named for _path, settings in _inputs(arg, resolver, report, by_dir)]
    assert got == [Resolver().for_path(Path(arg)) for arg in named]
    assert "SCL101" not in got[1].enabled_codes(named[1]) and "SCL302" not in got[0].enabled_codes(named[0])
    assert got[1] is got[2] and not report.errors
