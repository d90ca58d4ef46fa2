"""`syscall-lint audit`: the fixture binaries of both architectures, the machine's own binaries,
never executing anything, and hostile input."""

import os
import random
import shutil
import struct
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli, run_json
from syscall_lint.config import parse_table
from syscall_lint.elf.runner import _work, audit_file

ELF = FIXTURES / "elf"
DEFAULTS = parse_table({}, "<test>", Path("."))

# name -> codes, the same on x86-64 and aarch64 (SCL501 is aarch64-only, judged from the code)
EXPECTED = {
    "replace_nosync": {"SCL101"}, "replace_durable": set(), "thread_server": {"SCL301"},
    "epoll_server": set(), "fork_server": {"SCL302"}, "spin_acquire": set(), "spin_fence": set(),
    "spin_volatile": set(), "marker": {"SCL101"},
}
AARCH64_EXTRA = {"spin_volatile": {"SCL501"}}


def expected(arch, name):
    base = name.replace("-static", "")
    if base.endswith("-stripped"):
        return set()
    codes = set(EXPECTED[base])
    if arch == "aarch64":
        codes |= AARCH64_EXTRA.get(base, set())
    return codes


BINARIES = sorted((arch, p.name) for arch in ("x86_64", "aarch64") for p in (ELF / arch).iterdir())


@pytest.mark.parametrize("arch,name", BINARIES, ids=[f"{a}/{n}" for a, n in BINARIES])
def test_fixture_binary_findings(arch, name):
    found, lines, prof = audit_file(str(ELF / arch / name), DEFAULTS)
    assert {f.code for f in found} == expected(arch, name), [f.message for f in found]
    assert lines[0].startswith(f"{ELF / arch / name}: ELF64 {'x86-64' if arch == 'x86_64' else 'aarch64'}")
    for f in found:
        assert f.line is None and f.source == "elf" and f.evidence["evidence_level"]
        if f.code in ("SCL301", "SCL302"):
            assert f.evidence["confidence"] == "high" and "call sites" in f.evidence["evidence_level"]


def test_profile_reads_at_a_glance():
    _, lines, prof = audit_file(str(ELF / "x86_64" / "replace_nosync"), DEFAULTS)
    text = "\n".join(lines)
    assert "PIE executable, dynamic (libc.so.6)" in text
    assert "durability    rename — no fsync, fdatasync, syncfs or sync" in text
    assert prof["surface"]["durability"]["replaces"] == ["rename"]


def test_import_only_shape_is_not_enough_when_a_loop_does_not_join_them():
    _, lines, _ = audit_file(str(ELF / "x86_64" / "epoll_server"), DEFAULTS)
    assert any("no loop calls both" in line for line in lines)


def test_stripped_static_gets_the_advice_to_record():
    found, lines, _ = audit_file(str(ELF / "x86_64" / "replace_nosync-static-stripped"), DEFAULTS)
    assert found == [] and any("record a run instead" in line for line in lines)


def test_x86_memory_ordering_is_said_once_not_guessed():
    found, lines, _ = audit_file(str(ELF / "x86_64" / "spin_volatile"), DEFAULTS)
    assert found == [] and sum("cannot show reliance on TSO" in line for line in lines) == 1


@pytest.mark.parametrize("binary,code,present", [("/usr/bin/sed", "SCL101", True), ("/usr/bin/tar", "SCL101", False)])
def test_machine_binaries(binary, code, present):
    if not os.path.exists(binary):
        pytest.skip(f"{binary} is not on this machine")
    found, lines, _ = audit_file(binary, DEFAULTS)
    assert (code in {f.code for f in found}) == present


def test_audit_usr_bin_completes_and_reports_sed():
    if not os.path.isdir("/usr/bin"):
        pytest.skip("no /usr/bin")
    proc, doc = run_json("audit", "/usr/bin")
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1)
    assert doc["errors"] == []
    if os.path.exists("/usr/bin/sed"):
        assert any(f["path"] == "/usr/bin/sed" and f["code"] == "SCL101" for f in doc["findings"])


def test_never_executes(tmp_path):
    marker = tmp_path / "marker-ran"
    env = {"SYSCALL_LINT_MARKER": str(marker)}
    for arch in ("x86_64", "aarch64"):
        for name in ("marker", "marker-static"):
            proc = run_cli("audit", ELF / arch / name, env=env)
            assert proc.returncode == 1 and "SCL101" in proc.stdout
    run_cli("audit", ELF, env=env)
    assert not marker.exists()


def test_directories_skip_non_elf_and_do_not_follow_links_out(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ELF / "x86_64" / "replace_nosync", tree / "app")
    (tree / "README").write_text("not a binary\n")
    (tree / "outside").symlink_to(ELF / "x86_64")  # a link out of the tree: not followed
    (tree / "link-to-app").symlink_to(tree / "app")
    proc, doc = run_json("audit", tree)
    assert doc["errors"] == []
    assert [f["path"] for f in doc["findings"]] == [str(tree / "app")]
    proc, doc = run_json("audit", tree / "README")
    assert proc.returncode == 2 and "not an ELF file" in doc["errors"][0]["message"]


def _mutations(data: bytes, rng: random.Random, n: int):
    is64 = data[4] == 2
    fields = [(0x28, "<Q"), (0x20, "<Q"), (0x3C, "<H"), (0x38, "<H"), (0x3A, "<H"), (0x3E, "<H")] if is64 else \
        [(0x20, "<I"), (0x1C, "<I"), (0x30, "<H"), (0x2C, "<H")]
    extremes = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF]
    for i in range(n):
        kind = i % 4
        buf = bytearray(data)
        if kind == 0:
            buf = buf[: rng.randrange(4, len(buf))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 64)):
                pos = rng.randrange(len(buf))
                buf[pos] = rng.randrange(256)
        elif kind == 2:
            off, fmt = rng.choice(fields)
            value = rng.choice(extremes) & ((1 << (8 * struct.calcsize(fmt))) - 1)
            struct.pack_into(fmt, buf, off, value)
        else:
            # corrupt section headers wholesale
            shoff = struct.unpack_from("<Q", buf, 0x28)[0] if is64 else struct.unpack_from("<I", buf, 0x20)[0]
            for _ in range(32):
                pos = shoff + rng.randrange(0, max(1, len(buf) - shoff))
                if pos < len(buf):
                    buf[pos] = rng.choice((0, 0xFF, rng.randrange(256)))
        yield bytes(buf)


@pytest.mark.parametrize("source", ["x86_64/thread_server", "aarch64/spin_volatile", "x86_64/replace_nosync-static"])
def test_mutated_binaries_never_crash_or_hang(tmp_path, source):
    data = (ELF / source).read_bytes()
    rng = random.Random(0x5C1 + len(source))
    target = tmp_path / "mutant"
    for i, mutant in enumerate(_mutations(data, rng, 60)):
        target.write_bytes(mutant)
        started = time.monotonic()
        path, found, lines, prof, error = _work((str(target), DEFAULTS))
        assert time.monotonic() - started < 35
        assert (found is None) == (error is not None)
        if error is not None:
            assert "\n" not in error and error


def test_bad_files_exit_2_with_the_rest_audited(tmp_path):
    trunc = tmp_path / "truncated"
    trunc.write_bytes((ELF / "x86_64" / "thread_server").read_bytes()[:100])
    wrong = tmp_path / "wrong-magic"
    wrong.write_bytes(b"\x7fELG" + b"\0" * 200)
    proc, doc = run_json("audit", trunc, wrong, ELF / "x86_64" / "replace_nosync")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert {e["path"] for e in doc["errors"]} == {str(trunc), str(wrong)}
    assert [f["code"] for f in doc["findings"]] == ["SCL101"]
