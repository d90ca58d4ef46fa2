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


# --- durability across functions and methods: only the scopes that publish, and what they reach --

# unrelated code the gate must leave out of the snippet (and that makes the snippet small)
FILLER = "".join(f"\n\ndef unrelated{i}(text):\n    return text.replace('a', 'b') + str({i})\n" for i in range(12))

# a helper returns the temp file it opened; another function writes it and renames it
HELPER_APART = """import os


def scratch(path):
    f = open(path + ".tmp", "w")
    return f


def save(path, data):
    f = scratch(path)
    f.write(data)
    f.close()
    os.replace(f.name, path)  # expect: SCL101
""" + FILLER

# the temp file opened in __init__ and renamed in close(); a look-alike class that renames but
# never opens, and one that opens but never renames, are not needed
CLASS_APART = """import os


class Writer:
    def __init__(self, target):
        self.target = target
        self.tmp = target + ".tmp"
        self.f = open(self.tmp, "w")

    def write(self, data):
        self.f.write(data)

    def close(self):
        self.f.close()
        os.rename(self.tmp, self.target)  # expect: SCL101


class Mover:
    def move(self, a, b):
        os.rename(a, b)

    def label(self):
        return "mover"


class Reader:
    def read(self, path):
        with open(path) as f:
            return f.read()
""" + FILLER

# a script: the file is made and renamed by module-level code, which is one scope: the whole file
SCRIPT = """import os

f = open("out.tmp", "w")
f.write("x")
f.close()
os.rename("out.tmp", "out")  # expect: SCL101
""" + FILLER

# os.open's flags come from a module-level constant, which the rule reads: the whole file
FLAGS_AT_MODULE_LEVEL = """import os

FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def save(path, data):
    tmp = path + ".tmp"
    fd = os.open(tmp, FLAGS)
    os.write(fd, data)
    os.close(fd)
    os.rename(tmp, path)  # expect: SCL101
""" + FILLER

DURABILITY = {"SCL101", "SCL102", "SCL106"}


def _expected(text, code="SCL101"):
    return sorted((n, code) for n, line in enumerate(text.splitlines(), 1) if f"expect: {code}" in line)


def test_a_helper_that_opens_goes_to_libcst_with_its_caller_only():
    modules, source, line_map = _plan(HELPER_APART, DURABILITY)
    assert modules == {"durability"} and line_map is not None  # a snippet, not the whole file
    assert "def scratch(" in source and "def save(" in source and "def unrelated" not in source
    assert _findings(HELPER_APART, True) == _findings(HELPER_APART, False) == _expected(HELPER_APART)


def test_a_class_whose_methods_share_a_file_goes_whole_and_look_alikes_stay_out():
    modules, source, line_map = _plan(CLASS_APART, DURABILITY)
    assert modules == {"durability"} and line_map is not None
    assert "def write(self, data)" in source and "def close(self)" in source  # Writer whole
    assert "def label(self)" not in source and "def read(self, path)" not in source
    assert "def unrelated" not in source
    assert _findings(CLASS_APART, True) == _findings(CLASS_APART, False) == _expected(CLASS_APART)


def test_module_level_code_that_makes_and_renames_keeps_the_whole_file():
    tree, names = _gate(SCRIPT)
    from syscall_lint.python.gate_durability import durability_needs

    assert durability_needs(tree, names, prescreen._rename_candidate) is None
    modules, source, _ = _plan(SCRIPT, DURABILITY)
    assert modules == {"durability"} and source == SCRIPT
    assert _findings(SCRIPT, True) == _findings(SCRIPT, False) == _expected(SCRIPT)


def test_open_flags_set_at_module_level_keep_the_whole_file():
    modules, source, _ = _plan(FLAGS_AT_MODULE_LEVEL, DURABILITY)
    assert modules == {"durability"} and source == FLAGS_AT_MODULE_LEVEL
    expected = _expected(FLAGS_AT_MODULE_LEVEL)
    assert _findings(FLAGS_AT_MODULE_LEVEL, True) == _findings(FLAGS_AT_MODULE_LEVEL, False) == expected


# --- batching's `send`: only on something the rule can take for a socket --------------------------

# a generator driven by `.send()` in a loop, and a parameter that is not named like a socket, in a
# file that never makes or accepts one: the rule cannot take either for a socket
SENDS_NO_SOCKET = """def drive(gen):
    while True:
        try:
            gen.send(None)
        except StopIteration:
            break


def push(conn, lines):
    for line in lines:
        conn.send(line)
""" + FILLER

# the same loops where the rule does see a socket: a parameter named like one, and one made here
SENDS_ON_SOCKETS = """import socket


def push(sock, lines):
    for line in lines:
        sock.send(line)  # expect: SCL201


def spam(host, lines):
    out = socket.create_connection((host, 80))
    for line in lines:
        out.sendall(line)  # expect: SCL201
""" + FILLER


def test_sends_on_what_cannot_be_a_socket_do_not_run_batching():
    tree, names = _gate(SENDS_NO_SOCKET)
    assert not names.sockets
    modules, _, _ = _plan(SENDS_NO_SOCKET, {"SCL201", "SCL401"})
    assert modules == set()  # libcst is not run (not even imported, for a pre-commit call)
    assert _findings(SENDS_NO_SOCKET, True) == _findings(SENDS_NO_SOCKET, False) == []


def test_sends_on_sockets_run_batching():
    modules, _, line_map = _plan(SENDS_ON_SOCKETS, {"SCL201", "SCL401"})
    assert modules == {"batching"} and line_map is not None
    expected = _expected(SENDS_ON_SOCKETS, "SCL201")
    assert _findings(SENDS_ON_SOCKETS, True) == _findings(SENDS_ON_SOCKETS, False) == expected
    # without the factory call, the parameter named `sock` alone still keeps its loop
    alone = SENDS_ON_SOCKETS.split("\n\ndef spam")[0].replace("import socket\n", "import os\n") + FILLER
    assert not _gate(alone)[1].sockets
    assert _findings(alone, True) == _findings(alone, False) == _expected(alone, "SCL201")


# --- durability needs a rename or a sync the gate can see ------------------------------------------
# A file that passes durability's text screen (the words are there) but whose only `replace` is a
# string method on a local: the gate drops durability before walking the functions. Each variant
# that can rename or sync (through an import, an alias, a module-level binding, a delegator) keeps it.

NO_RENAME_CALL = """import os


def save(path, data, template):
    with open(path, "w") as f:
        f.write(template.replace("{name}", data))
    os.link  # named, never called
"""

CAN_RENAME = {
    "os": "import os\n\n\ndef save(path, tmp):\n    with open(tmp, 'w') as f:\n        f.write('x')\n"
          "    os.replace(tmp, path)  # expect: SCL101\n",
    "alias": "from os import replace as swap\n\n\ndef save(path, tmp):\n    with open(tmp, 'w') as f:\n"
             "        f.write('x')\n    swap(tmp, path)  # expect: SCL101\n",
    "binding": "import os\n\nswap = os.replace\n\n\ndef save(path, tmp):\n    with open(tmp, 'w') as f:\n"
               "        f.write('x')\n    swap(tmp, path)  # expect: SCL101\n",
    "delegated": "import asyncio\nimport os\n\n\nasync def save(path, tmp):\n    with open(tmp, 'w') as f:\n"
                 "        f.write('x')\n    await asyncio.to_thread(os.replace, tmp, path)  # expect: SCL101\n",
    "sync": "import os\n\n\ndef save(path):\n    with open(path, 'w') as f:\n        f.write('x')\n"
            "        os.fsync(f.fileno())  # expect: SCL106\n",
}


def _marked(text):
    """(line, code) for every `# expect: CODE` mark."""
    return sorted((n, line.split("expect: ")[1].split()[0]) for n, line in enumerate(text.splitlines(), 1)
                  if "# expect: " in line)


def test_no_rename_or_sync_drops_durability_before_the_walk(monkeypatch):
    from syscall_lint.python.rulekit import registry

    assert registry()["durability"].screen(NO_RENAME_CALL)  # the text screen lets it through
    tree, names = _gate(NO_RENAME_CALL)
    assert not names.may_rename_or_sync()
    walked = []
    monkeypatch.setattr(prescreen, "plan", lambda *a: walked.append(a) or (set(), None))
    assert _plan(NO_RENAME_CALL, DURABILITY) == (set(), NO_RENAME_CALL, None)
    assert walked == []  # decided without the walk
    monkeypatch.undo()
    assert _findings(NO_RENAME_CALL, True) == _findings(NO_RENAME_CALL, False) == []


def test_every_way_to_rename_or_sync_keeps_durability():
    for kind, text in CAN_RENAME.items():
        tree, names = _gate(text)
        assert names.may_rename_or_sync(), kind
        modules, _, _ = _plan(text, DURABILITY)
        assert modules == {"durability"}, kind
        assert _findings(text, True) == _findings(text, False) == _marked(text), kind
