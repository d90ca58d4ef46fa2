"""The Python pipeline around the rules: the result cache's key and what findings show users."""

import json

from conftest import FIXTURES, run_cli, run_json

BAD = (FIXTURES / "python" / "config_writer_bad.py").read_text()


def test_cache_keys_on_per_file_ignores(tmp_path):
    # Two identical files, one under a per-file-ignore: they must not share a cache entry, even
    # after a touch makes the (path, size, mtime) index miss and the content key is looked up.
    (tmp_path / "pyproject.toml").write_text(
        '[tool.syscall-lint.per-file-ignores]\n"quiet/*" = ["SCL101"]\n')
    (tmp_path / "quiet").mkdir()
    (tmp_path / "loud.py").write_text(BAD)
    (tmp_path / "quiet" / "same.py").write_text(BAD)
    cache = tmp_path / "cache"

    def codes_by_file():
        proc, doc = run_json("check", "--cache-dir", cache, ".", cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stderr
        out = {}
        for f in doc["findings"]:
            out.setdefault(f["path"].replace("\\", "/"), set()).add(f["code"])
        return out

    first = codes_by_file()
    assert "SCL101" in first["loud.py"]
    assert "SCL101" not in first.get("quiet/same.py", set())
    for path in (tmp_path / "loud.py", tmp_path / "quiet" / "same.py"):
        path.write_text(BAD)  # new mtime, same content
    assert codes_by_file() == first
    # and the other way round: a cold cache filled by the quiet file first
    cache2 = tmp_path / "cache2"
    (tmp_path / "loud.py").unlink()
    run_json("check", "--cache-dir", cache2, ".", cwd=tmp_path)
    (tmp_path / "loud.py").write_text(BAD)
    _, doc = run_json("check", "--cache-dir", cache2, ".", cwd=tmp_path)
    assert {f["code"] for f in doc["findings"] if f["path"] == "loud.py"} == first["loud.py"]


def test_autofix_plans_are_not_in_user_evidence(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    _, doc = run_json("check", "--no-cache", "bad.py", cwd=tmp_path)
    assert doc["findings"], "the fixture must produce findings"
    for f in doc["findings"]:
        assert "autofix" not in f and "autofix" not in json.dumps(f["evidence"])
    proc = run_cli("check", "--no-cache", "--format", "sarif", "bad.py", cwd=tmp_path)
    results = json.loads(proc.stdout)["runs"][0]["results"]
    assert proc.returncode == 1 and results
    assert all("autofix" not in json.dumps(r["properties"]["evidence"]) for r in results)


def test_fix_still_applies_its_plans(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    proc = run_cli("check", "--no-cache", "--diff", "--unsafe-fixes", "bad.py", cwd=tmp_path)
    assert "os.fsync" in proc.stdout, proc.stdout + proc.stderr


# --- the `ast` gate's cross-function pre-decisions ----------------------------------------------
# Each case: the gate may narrow (or drop a rule) only when the rule provably stays silent, so the
# gated and the full pass must agree; and the narrowing itself is asserted, so the case fails if
# the gate falls back to the whole file (the cost this pre-decision exists to avoid).

from syscall_lint.config import parse_table  # noqa: E402
from syscall_lint.python import prescreen  # noqa: E402
from syscall_lint.python.analyzer import _plan, analyze, parse_ast  # noqa: E402
from syscall_lint.python.rules.connections import SUMMARY_DEPTH  # noqa: E402

SETTINGS = parse_table({}, "<test>", FIXTURES)

# accept in one function, a Thread in another that the accept path never calls
ACCEPT_APART = """import socket
import threading


class Tests:
    def test_accept(self):
        srv = socket.socket()
        while True:
            conn, _ = srv.accept()
            self.check(conn)

    def check(self, conn):
        conn.close()

    def test_threads(self):
        threading.Thread(target=print).start()
"""

# the same, but the accept loop calls the method that starts the thread, through two helpers
ACCEPT_THEN_SPAWN = ACCEPT_APART.replace("        conn.close()\n", "        self.relay(conn)\n\n"
                                         "    def relay(self, conn):\n        self.test_threads()\n")

# an mmap in one function, a while loop over unrelated names in another
MMAP_NOT_POLLED = """import mmap


def dump(f):
    m = mmap.mmap(f.fileno(), 0)
    return len(m)


def wait(queue):
    while queue:
        queue.pop()
"""

# the map kept on self in __init__ and polled in another method: SCL501
MMAP_POLLED = """import mmap


class Flag:
    def __init__(self, fd):
        self.shm = mmap.mmap(fd, 4096)

    def wait(self):
        while self.shm[0] == 0:  # expect: SCL501
            pass
"""


def _findings(text, gate):
    return sorted((f.line, f.code) for f in analyze(text, "t.py", SETTINGS, gate=gate))


def _gate(text):
    tree = parse_ast(text)
    return tree, prescreen.ModuleNames(tree)


def test_accept_and_spawn_apart_do_not_take_the_whole_file():
    tree, names = _gate(ACCEPT_APART)
    assert not prescreen._accept_reaches_spawn(tree, names)
    modules, _, _ = _plan(ACCEPT_APART, {"SCL301", "SCL302"})
    assert modules == set()  # libcst is not run at all
    assert _findings(ACCEPT_APART, True) == _findings(ACCEPT_APART, False) == []


def test_a_spawn_on_the_accept_path_keeps_the_whole_file():
    tree, names = _gate(ACCEPT_THEN_SPAWN)
    assert prescreen._accept_reaches_spawn(tree, names)
    modules, source, _ = _plan(ACCEPT_THEN_SPAWN, {"SCL301", "SCL302"})
    assert "connections" in modules and source == ACCEPT_THEN_SPAWN
    full = _findings(ACCEPT_THEN_SPAWN, False)
    assert _findings(ACCEPT_THEN_SPAWN, True) == full
    assert {code for _, code in full} == {"SCL301"}


def test_the_accept_path_is_followed_as_deep_as_the_rule_follows_it():
    # a chain of helpers one longer than the rule follows: the gate may stop there too
    chain = "".join(f"    def hop{i}(self, conn):\n        self.hop{i + 1}(conn)\n\n" for i in range(SUMMARY_DEPTH + 1))
    text = ACCEPT_APART.replace("self.check(conn)", "self.hop0(conn)").replace(
        "    def test_threads", chain + f"    def hop{SUMMARY_DEPTH + 1}(self, conn):\n"
        "        threading.Thread(target=print).start()\n\n    def test_threads")
    tree, names = _gate(text)
    assert not prescreen._accept_reaches_spawn(tree, names)
    assert _findings(text, True) == _findings(text, False) == []
    # one hop shorter: the deepest spawn the rule reports, which the gate must keep
    shorter = text.replace(f"self.hop{SUMMARY_DEPTH - 1}(conn)", f"self.hop{SUMMARY_DEPTH + 1}(conn)")
    assert prescreen._accept_reaches_spawn(*_gate(shorter))
    full = _findings(shorter, False)
    assert _findings(shorter, True) == full and {code for _, code in full} == {"SCL301"}


def test_shared_memory_never_polled_skips_the_ordering_rule():
    tree, names = _gate(MMAP_NOT_POLLED)
    assert not prescreen._shared_polled(tree, names)
    modules, _, _ = _plan(MMAP_NOT_POLLED, {"SCL501"})
    assert modules == set()
    assert _findings(MMAP_NOT_POLLED, True) == _findings(MMAP_NOT_POLLED, False) == []


def test_shared_memory_polled_through_self_runs_the_ordering_rule():
    tree, names = _gate(MMAP_POLLED)
    assert prescreen._shared_polled(tree, names)
    expected = sorted((n, "SCL501") for n, line in enumerate(MMAP_POLLED.splitlines(), 1) if "expect: SCL501" in line)
    assert _findings(MMAP_POLLED, True) == _findings(MMAP_POLLED, False) == expected
