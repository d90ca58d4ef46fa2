"""`syscall-lint audit`: the fixture binaries of both architectures, the machine's own binaries,
never executing anything, and hostile input."""

import os
import random
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, run_cli, run_json
from syscall_lint.config import parse_table
from syscall_lint.elf import rules
from syscall_lint.elf.reader import read
from syscall_lint.elf.runner import audit_file

ELF = FIXTURES / "elf"
DEFAULTS = parse_table({}, "<test>", Path("."))

# name -> codes, the same on x86-64 and aarch64 (SCL501 is aarch64-only, judged from the code)
EXPECTED = {
    "replace_nosync": {"SCL101"}, "replace_durable": set(), "thread_server": {"SCL301"},
    "epoll_server": set(), "fork_server": {"SCL302"}, "spin_acquire": set(), "spin_fence": set(),
    "spin_volatile": set(), "marker": {"SCL101"},
    # memory-ordering shapes (aarch64 builds at -O0, -O1, -O2, -Os and static)
    "spin_yield": set(), "spin_rotated": set(), "spin_pointer": set(), "seqlock_plain": set(),
    "seqlock_acquire": set(), "spin_seqcst": set(), "spin_condvar": set(), "spin_ttas": set(),
    "local_scan": set(), "spin_single": set(),
    # servers as real ones are written: accept and fork in helpers (found through the call graph);
    # a pre-forked pool and a daemonising fork with a worker pool started before the loop (silent)
    "wrapper_server": {"SCL302"}, "prefork_server": set(), "daemon_pool_server": set(),
    # accepts in an inner loop over listeners, then forks per connection taken in that pass (found at
    # every level, however the loops are laid out); its twin forks to top a pool up at the start of
    # each pass and hands connections over with SCM_RIGHTS (silent)
    "listener_server": {"SCL302"}, "topup_server": set(),
    # hands each connection to the handler in a structure slot (a function pointer); the handler the
    # set-up code stores there starts a thread (found through the slot, at every level); its twin's
    # slot holds a handler that queues to a pool started before the loop (silent)
    "slot_thread_server": {"SCL301"}, "slot_pool_server": set(),
    # a write one call below the function that renames (found); an `mv` that logs, its write and
    # its rename in different functions (silent: no function holds both)
    "replace_helper": {"SCL101"}, "replace_apart": set(),
}
# racy on ARM64: a volatile flag, with `yield` in the loop, a rotated loop (exit test at the top, an
# unconditional branch back), the flag through a pointer (a stack slot at -O0), a plain seqlock reader
AARCH64_EXTRA = {name: {"SCL501"} for name in ("spin_volatile", "spin_yield", "spin_rotated", "spin_pointer",
                                                 "seqlock_plain")}
LEVELS = ("-O0", "-O1", "-Os")


def expected(arch, name):
    base = name.replace("-static", "")
    for level in LEVELS:
        base = base.removesuffix(level)
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
        if f.code in ("SCL301", "SCL302") and not name.startswith("slot_"):
            assert f.evidence["confidence"] == "high" and "call sites" in f.evidence["evidence_level"]
        elif f.code == "SCL301":  # through a function pointer: said so, with what the slot may hold
            assert f.evidence["confidence"] == "medium"
            assert "through a function pointer (slot +0x20 called in hand_over; functions stored in that " \
                   "slot: take_in_thread, take_inline)" in f.evidence["evidence_level"]
            assert "pthread_create through hand_over → take_in_thread" in f.message


def test_profile_reads_at_a_glance():
    _, lines, prof = audit_file(str(ELF / "x86_64" / "replace_nosync"), DEFAULTS)
    text = "\n".join(lines)
    assert "PIE executable, dynamic (libc.so.6)" in text
    assert "durability    rename — no fsync, fdatasync, syncfs or sync" in text
    assert prof["surface"]["durability"]["replaces"] == ["rename"]


def test_import_only_shape_is_not_enough_when_a_loop_does_not_join_them():
    _, lines, _ = audit_file(str(ELF / "x86_64" / "epoll_server"), DEFAULTS)
    assert any("no loop reaches both" in line for line in lines)


def test_stripped_static_gets_the_advice_to_record():
    found, lines, _ = audit_file(str(ELF / "x86_64" / "replace_nosync-static-stripped"), DEFAULTS)
    assert found == [] and any("record a run instead" in line for line in lines)


def test_x86_memory_ordering_is_not_guessed_and_said_once_per_run():
    found, lines, prof = audit_file(str(ELF / "x86_64" / "spin_volatile"), DEFAULTS)
    assert found == [] and prof["notes"] == [rules.X86_NOTE]
    assert not any("cannot show reliance on TSO" in line for line in lines)  # the run says it, once
    proc = run_cli("audit", "--profile", ELF / "x86_64")
    assert proc.stdout.count("cannot show reliance on TSO") == 1


def test_audit_prints_findings_first_and_profiles_only_on_request():
    target = ELF / "x86_64"
    plain = run_cli("audit", target)
    lines = plain.stdout.splitlines()
    binaries = sorted(p.name for p in target.iterdir())
    expected_lines = sorted((name, code) for name in binaries for code in expected("x86_64", name))
    assert sorted((Path(line.split(": ")[0]).name, line.split(": ")[1].split()[0]) for line in lines) == expected_lines
    for flag in ("--profile", "-v"):
        proc = run_cli("audit", flag, target)
        out = proc.stdout.splitlines()
        headers = [i for i, line in enumerate(out) if ": ELF64 x86-64" in line]
        assert [Path(out[i].split(": ")[0]).name for i in headers] == binaries
        first_profile = headers[0]
        findings_at = [i for i, line in enumerate(out) if ": SCL" in line]
        assert len(findings_at) == len(expected_lines) and max(findings_at) < first_profile


def test_an_empty_directory_says_so_and_exits_0(tmp_path):
    (tmp_path / "notes.txt").write_text("no binaries here\n")
    proc = run_cli("audit", tmp_path)
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr == f"syscall-lint: warning: no ELF files found under {tmp_path}\n"


@pytest.mark.machine
@pytest.mark.parametrize("binary,code,present", [("/usr/bin/tar", "SCL101", False), ("/bin/mv", "SCL101", False),
                                                 ("/bin/cp", "SCL101", False), ("/bin/ln", "SCL101", False)])
def test_machine_binaries(binary, code, present):
    if not os.path.exists(binary):
        pytest.skip(f"{binary} is not on this machine")
    found, lines, _ = audit_file(binary, DEFAULTS)
    assert (code in {f.code for f in found}) == present


@pytest.mark.machine
def test_audit_usr_bin_completes_without_import_only_durability_errors():
    if not os.path.isdir("/usr/bin"):
        pytest.skip("no /usr/bin on this machine")
    proc, doc = run_json("audit", "/usr/bin")
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1)
    assert doc["errors"] == []
    # mv, cp, ln and install rename files they did not write: imports alone are not a finding (issue 10)
    flagged = {os.path.basename(f["path"]) for f in doc["findings"] if f["code"] == "SCL101"}
    assert not flagged & {"mv", "cp", "ln", "install"}


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


MUTATED = ["x86_64/thread_server", "aarch64/spin_volatile", "x86_64/replace_nosync-static", "aarch64/fork_server",
           "x86_64/wrapper_server", "aarch64/wrapper_server", "aarch64/seqlock_plain-O0", "aarch64/spin_ttas"]


@pytest.mark.parametrize("source", MUTATED)
def test_mutated_binaries_give_known_findings_or_one_line_errors(tmp_path, source):
    """60 mutants of a fixture in one real run: each is either audited (its findings no more than the
    original's codes) or named in exactly one error line with a reason; nothing crashes."""
    arch, name = source.split("/")
    data = (ELF / source).read_bytes()
    rng = random.Random(0x5C1 + len(source))
    paths = []
    for i, mutant in enumerate(_mutations(data, rng, 60)):
        path = tmp_path / f"mutant-{i:02d}"
        path.write_bytes(mutant)
        paths.append(path)
    proc = run_cli("audit", "-j", "1", *paths)
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1, 2), proc.stderr[-2000:]
    errors = {}
    for line in proc.stderr.splitlines():
        assert line.startswith("syscall-lint: error: "), line
        path, _, reason = line[len("syscall-lint: error: "):].partition(": ")
        assert path not in errors and reason.strip(), line
        errors[path] = reason
    assert set(errors) <= {str(p) for p in paths}
    allowed = expected(arch, name)
    for line in proc.stdout.splitlines():
        path, _, rest = line.partition(": ")
        assert path in {str(p) for p in paths} and path not in errors, line
        assert rest.split()[0] in allowed, line
    assert (proc.returncode == 2) == bool(errors)


def _with_exec_sections(data: bytes, extra: int) -> bytes:
    """The binary with `extra` executable sections appended, each spanning the whole file."""
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shnum = struct.unpack_from("<H", data, 0x3C)[0]
    size = len(data) + 64 * (shnum + extra)
    table = bytearray(data[shoff:shoff + 64 * shnum])
    for i in range(extra):
        table += struct.pack("<IIQQQQIIQQ", 0, 1, 6, 0x1000 + i, 0, size, 0, 0, 16, 0)
    head = bytearray(data)
    struct.pack_into("<Q", head, 0x28, len(data))
    struct.pack_into("<H", head, 0x3C, shnum + extra)
    return bytes(head + table)


def _audit_with_peak_rss(path) -> tuple:
    """(completed process, peak RSS in MiB) of one audit run in its own interpreter."""
    code = ("import resource, sys\nfrom syscall_lint.cli import main\nstatus = main(['audit', '-j', '1', sys.argv[1]])\n"
            "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)\n"
            "sys.exit(status)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    peak = int(proc.stderr.rsplit("peak ", 1)[1])
    return proc, peak


def test_thousands_of_executable_sections_are_refused_in_bounded_memory(tmp_path):
    """Issue 8: 4,000 executable sections each spanning the file took 3.4 GB (every section's bytes kept)."""
    hostile = tmp_path / "many-sections"
    hostile.write_bytes(_with_exec_sections((ELF / "x86_64" / "thread_server").read_bytes(), 4000))
    proc, peak = _audit_with_peak_rss(hostile)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[0] == (f"syscall-lint: error: {hostile}: corrupt ELF: 4005 executable sections "
                                           "(more than 256): too costly to analyse")
    assert peak < 256, f"peak RSS {peak} MiB"  # the file is 274 KB; the old reader held ~1 GB for it


def test_overlapping_executable_sections_are_corrupt(tmp_path):
    hostile = tmp_path / "overlapping"
    hostile.write_bytes(_with_exec_sections((ELF / "x86_64" / "thread_server").read_bytes(), 200))
    proc = run_cli("audit", hostile)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"syscall-lint: error: {hostile}: corrupt ELF: executable sections (unnamed) and (unnamed) overlap in the file\n"


def test_non_regular_files_are_refused_at_once_and_skipped_in_walks(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    shutil.copy(ELF / "x86_64" / "replace_nosync", tmp_path / "app")
    try:
        named = [fifo, sock_path] + ([Path("/dev/zero"), zero] if os.path.exists("/dev/zero") else [])
        proc = run_cli("audit", *named)  # a hang here fails through run_cli's timeout
        reasons = {str(fifo): "not a regular file (a FIFO)", str(sock_path): "not a regular file (a socket)",
                   "/dev/zero": "not a regular file (a character device)",
                   str(zero): "not a regular file (a character device)"}
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.splitlines() == [f"syscall-lint: error: {p}: {reasons[str(p)]}" for p in named]
        # walking the directory: the FIFO, socket and device link are skipped like any non-ELF file
        proc, doc = run_json("audit", tmp_path)
        assert doc["errors"] == [] and [(f["path"], f["code"]) for f in doc["findings"]] == [(str(tmp_path / "app"), "SCL101")]
    finally:
        sock.close()


def test_named_inputs_errors_keep_the_argument_order_when_workers_check_the_magic(tmp_path):
    """A named file's magic is checked by the worker that opens it (one open per file); the
    errors still come out in the order of the arguments, among those the listing finds itself."""
    text = tmp_path / "notes.txt"
    text.write_text("not a binary\n")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    binaries = sorted(str(p) for p in (ELF / "x86_64").iterdir())[:5]
    named = [str(text), binaries[0], str(tmp_path / "missing"), *binaries[1:], str(fifo), str(empty)]
    for jobs in ("1", "2"):
        proc, doc = run_json("audit", "-j", jobs, *named)
        assert proc.returncode == 2
        assert [(e["path"], e["message"]) for e in doc["errors"]] == [
            (str(text), "not an ELF file (wrong magic)"), (str(tmp_path / "missing"), "no such file or directory"),
            (str(fifo), "not a regular file (a FIFO)"), (str(empty), "not an ELF file (wrong magic)")]
        assert [b["path"] for b in doc["binaries"]] == binaries


def test_summaries_encoded_by_workers_render_as_the_encoder_would(tmp_path):
    """The audit's workers send each binary's summary JSON-encoded; the report places them, and
    the document is the one json.dumps(indent=2) makes of the decoded values."""
    import json

    from syscall_lint.output.json_out import Encoded, document, encode, render
    from syscall_lint.report import Report

    summaries = [{"path": "a\nb \u00e9", "notes": ["x", "y"], "surface": {"durability": {"replaces": []}}},
                 {"path": "c", "needed": [], "static": False}]
    report = Report(sources={"elf"})
    report.extra["binaries"] = Encoded(encode(s) for s in summaries)
    report.extra["after"] = {"k": [1, 2]}
    plain = Report(sources={"elf"}, extra={"binaries": summaries, "after": {"k": [1, 2]}})
    assert render(report) == json.dumps(document(plain), indent=2, ensure_ascii=False) + "\n"
    report.extra["binaries"] = Encoded()
    plain.extra["binaries"] = []
    assert render(report) == json.dumps(document(plain), indent=2, ensure_ascii=False) + "\n"


def test_every_spin_shape_is_built_at_every_level():
    """The fixtures the SCL501 expectations rest on exist: each shape at -O0, -O1, -O2, -Os and static."""
    names = {p.name for p in (ELF / "aarch64").iterdir()}
    for base in ("spin_volatile", "spin_yield", "spin_rotated", "spin_pointer", "seqlock_plain", "seqlock_acquire",
                 "spin_seqcst", "spin_condvar", "spin_ttas", "local_scan", "spin_single", "spin_acquire", "spin_fence"):
        assert {base, f"{base}-static"} | {base + level for level in LEVELS} <= names, base


def test_spin_candidates_come_from_raw_words_and_match_the_disassembly():
    """The pre-filter decodes backward branches from the instruction words; every loop the analyser
    reports is one of those candidates, at its header and branch."""
    from syscall_lint.elf import spin
    from syscall_lint.elf.reader import text_sections

    for name in ("spin_volatile", "spin_rotated-O0", "seqlock_plain-Os"):
        sections, _ = text_sections(str(ELF / "aarch64" / name))
        info = read(str(ELF / "aarch64" / name))
        [hit] = rules._Code(info).spins()
        text = next(s for s in sections if s.address <= hit.start < s.address + len(s.data))
        assert (hit.start, hit.end) in spin.candidates(text.address, text.data), name


def test_a_single_threaded_binary_gets_no_scl501_and_says_why():
    found, lines, prof = audit_file(str(ELF / "aarch64" / "spin_single"), DEFAULTS)
    info = read(str(ELF / "aarch64" / "spin_single"))
    assert len(rules._Code(info).spins()) == 1  # the loop is there: the binary's evidence silences it
    assert found == [] and any("SCL501 is not judged" in n for n in prof["notes"])


def test_spin_findings_group_per_function_with_a_count():
    """A binary with many spin sites reads as one finding per function, most sites first."""
    from syscall_lint.elf.spin import Spin

    info = read(str(ELF / "aarch64" / "spin_volatile"))
    [site] = rules._Code(info).spins()
    many = [Spin(site.start - 8 + 4 * i, site.end, "ldr", "[x1, #4]", site.address) for i in range(5)]  # all in it
    notes = []
    [finding] = rules._spin_findings(info, "spin_volatile", many, "calls pthread_create", notes)
    assert finding.evidence["count"] == 5 and len(finding.evidence["sites"]) == 5
    assert finding.message.startswith("wait_for_data: 5 spin-wait loops") and notes == []


def test_outline_atomic_helpers_are_recognised_by_shape():
    """TTAS through libgcc's outline atomics: `bl __aarch64_swp4_acq` after the spin is an acquire."""
    import capstone
    from syscall_lint.elf import spin
    from syscall_lint.elf.reader import text_sections

    path = str(ELF / "aarch64" / "spin_ttas")
    info = read(path)
    helper = next(a for a, _s, n in info.functions if n == "__aarch64_swp4_acq")
    sections, _ = text_sections(path)
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    assert spin.Analyzer(md, sections).helper(helper) == "acquire"


def test_bad_files_exit_2_with_the_rest_audited(tmp_path):
    trunc = tmp_path / "truncated"
    trunc.write_bytes((ELF / "x86_64" / "thread_server").read_bytes()[:100])
    wrong = tmp_path / "wrong-magic"
    wrong.write_bytes(b"\x7fELG" + b"\0" * 200)
    proc, doc = run_json("audit", trunc, wrong, ELF / "x86_64" / "replace_nosync")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert {e["path"] for e in doc["errors"]} == {str(trunc), str(wrong)}
    assert [f["code"] for f in doc["findings"]] == ["SCL101"]


def test_parallel_audit_balances_by_size_and_keeps_the_order():
    """Workers get the largest files first, in batches of about equal bytes; every file is audited
    once, and the report is the same as a serial run's, in the same order."""
    from syscall_lint.elf.runner import _batches

    paths = sorted(str(p) for p in (ELF / "x86_64").iterdir())
    items = [(p, DEFAULTS) for p in paths]
    batches = _batches(items, 2)
    order = [index for batch in batches for index, _item in batch]
    assert sorted(order) == list(range(len(items)))
    sizes = [os.path.getsize(paths[i]) for i in order]
    assert sizes == sorted(sizes, reverse=True)
    assert len(batches) > 2  # shared out, not one batch per worker
    _proc, serial = run_json("audit", "-j", "1", str(ELF / "x86_64"))
    _proc, parallel = run_json("audit", "-j", "2", str(ELF / "x86_64"))
    assert serial["findings"]
    assert parallel["findings"] == serial["findings"]
    assert [b["path"] for b in parallel["binaries"]] == [b["path"] for b in serial["binaries"]]
