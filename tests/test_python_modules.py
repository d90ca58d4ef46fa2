"""Issue 9, item 4: a file's project imports are followed, summarised and used by the rules; only
the files asked for are reported on; the result cache follows the imported summaries."""

import os
import shutil

import pytest

from conftest import FIXTURES, expected_marks, run_cli, run_json
from syscall_lint.python import project
from syscall_lint.python.summaries import FunctionSummary, ModuleSummary, TempManager

PROJECT = FIXTURES / "python_project"
ASKED = ["store/records.py", "netkit/serve.py", "src/jobs/queue_writer.py", "netkit/session_server.py"]


def findings(doc):
    return {(f["path"], f["line"], f["code"]) for f in doc["findings"]}


def marks(rel: str, root=PROJECT):
    return {(rel, line, code) for line, code in expected_marks(root / rel)}


@pytest.mark.parametrize("rel", ASKED)
def test_findings_through_imported_helpers_match_the_marks(rel):
    proc, doc = run_json("check", "--no-cache", rel, cwd=PROJECT)
    assert doc["errors"] == []
    assert marks(rel), "the fixture must mark what it expects"
    assert findings(doc) == marks(rel)


def test_imported_files_are_summarised_but_never_reported():
    # asked alone, the mixin module has findings of its own (a fork per request, a threading mixin)...
    _, alone = run_json("check", "--no-cache", "netkit/mixins.py", cwd=PROJECT)
    assert {(p, c) for p, _, c in findings(alone)} == {("netkit/mixins.py", "SCL302"), ("netkit/mixins.py", "SCL301")}
    # ...but as an import of the file asked for, it only lends its summary
    _, doc = run_json("check", "--no-cache", "netkit/serve.py", "store/records.py", cwd=PROJECT)
    assert {p for p, _, _ in findings(doc)} == {"netkit/serve.py", "store/records.py"}
    assert findings(doc) == marks("netkit/serve.py") | marks("store/records.py")


def copy_project(tmp_path):
    target = tmp_path / "proj"
    shutil.copytree(PROJECT, target)
    return target


def test_without_following_imports_the_cross_module_findings_go(tmp_path):
    root = copy_project(tmp_path)
    config = root / "pyproject.toml"
    config.write_text(config.read_text().replace('src = ["lib"]', 'src = ["lib"]\nfollow-imports = false'))
    _, doc = run_json("check", "--no-cache", "store/records.py", "netkit/serve.py", cwd=root)
    # only what the files say by themselves: the rename of a temp file made by an unknown helper
    # is no longer judged, the imported bases and the spawn helper are unknown names
    assert findings(doc) == set()


def test_the_src_setting_finds_modules_outside_the_package_layout(tmp_path):
    root = copy_project(tmp_path)
    config = root / "pyproject.toml"
    config.write_text(config.read_text().replace('src = ["lib"]', ""))
    _, doc = run_json("check", "--no-cache", "src/jobs/queue_writer.py", cwd=root)
    # `settle` (lib/legacy_io.py) is unknown: its fsync is not seen, so the write is unsynced
    assert findings(doc) == {("src/jobs/queue_writer.py", 12, "SCL101"), ("src/jobs/queue_writer.py", 20, "SCL101")}


def test_a_bad_src_setting_is_a_one_line_config_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.syscall-lint]\nsrc = "lib"\n')
    (tmp_path / "a.py").write_text("x = 1\n")
    proc = run_cli("check", "--no-cache", "a.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert "src: expected a list of folder names" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cached_result_follows_a_changed_helper(tmp_path):
    root = copy_project(tmp_path)
    cache = tmp_path / "cache"
    rel = "store/records.py"
    _, first = run_json("check", "--cache-dir", cache, rel, cwd=root)
    assert (rel, 19, "SCL101") in findings(first)
    _, again = run_json("check", "--cache-dir", cache, rel, cwd=root)
    assert findings(again) == findings(first)
    # the helper gains an fsync after its yield: the unsynced write becomes a synced one whose
    # folder is not synced, though records.py itself did not change
    helper = root / "store" / "fsutil.py"
    helper.write_text(helper.read_text().replace(
        "        yield handle\n\n\ndef fresh_temp",
        "        yield handle\n        handle.flush()\n        os.fsync(handle.fileno())\n\n\ndef fresh_temp"))
    _, after = run_json("check", "--cache-dir", cache, rel, cwd=root)
    assert findings(after) == (findings(first) - {(rel, 19, "SCL101")}) | {(rel, 19, "SCL102")}
    # and back: the same content as the first run gives the first result again
    helper.write_text((PROJECT / "store" / "fsutil.py").read_text())
    _, back = run_json("check", "--cache-dir", cache, rel, cwd=root)
    assert findings(back) == findings(first)


def test_a_hostile_project_stays_bounded_with_errors_only_for_the_files_asked_for(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'hostile'\n")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import publish\n")
    # a re-export cycle: each module says the name lives in the other
    (pkg / "a.py").write_text("from .b import publish\n")
    (pkg / "b.py").write_text("from .a import publish\nfrom pkg import publish as again\n")
    # ten thousand modules, each re-exporting from the next; the last one renames
    for i in range(10_000):
        (pkg / f"m{i}.py").write_text(f"from .m{i + 1} import publish\n")
    (pkg / "m10000.py").write_text("import os\n\n\ndef publish(src, dst):\n    os.rename(src, dst)\n")
    (pkg / "bad.py").write_bytes(b"def f():\n    return '\xff\xfe'\n")
    if hasattr(os, "mkfifo"):
        os.mkfifo(pkg / "x.py")
    imports = "".join(f"import pkg.m{i}\n" for i in range(10_000))
    (tmp_path / "main.py").write_text(
        "import os\nfrom pkg import publish, bad, x\nfrom pkg.m0 import publish as far\n" + imports +
        "\n\ndef save(path, data):\n    with open(path + '.tmp', 'w') as fh:\n        fh.write(data)\n"
        "    publish(path + '.tmp', path)\n    far(path + '.tmp', path)\n")
    (tmp_path / "broken.py").write_bytes(b"import pkg.bad\nx = '\xff'\n")
    proc, doc = run_json("check", "--no-cache", "main.py", "broken.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert [e["path"] for e in doc["errors"]] == ["broken.py"]
    assert "cannot decode" in doc["errors"][0]["message"]
    assert "Traceback" not in proc.stderr
    # the cycle resolves to nothing and the chain is longer than the depth followed: no finding
    assert findings(doc) == set()


SOURCE = '''
import contextlib
import os
import tempfile
import threading
from functools import partial

swap = partial(os.replace)


def publish(src, dst):
    os.link(src, dst)
    os.unlink(src)


def settle(fh):
    fh.flush()
    os.fsync(fh.fileno())


def spool(fh, data):
    fh.write(data)
    os.fsync(fh.fileno())


def scratch(folder):
    fd, name = tempfile.mkstemp(dir=folder)
    return fd, name


@contextlib.contextmanager
def staged(target):
    with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(target), delete=False) as f:
        handle = f
        yield handle
        os.fsync(handle.fileno())


def start(handler, conn):
    threading.Thread(target=handler, args=(conn,)).start()


def relay(handler, conn):
    start(handler, conn)


class Forker:
    def process_request(self, request, address):
        self.spawn(request)

    def spawn(self, request):
        if os.fork() == 0:
            os._exit(0)


class Kept(Forker):
    pass


class Inline(Forker):
    def process_request(self, request, address):
        pass


class Relayer:
    def process_request(self, request, address):
        relay(self.handle, request)
'''


def test_summary_records_what_the_rules_need():
    data = SOURCE.encode()
    summary = project.summarise("helpers.py", "helpers", False, data, "d1")
    assert summary.aliases == {"swap": "os.replace"}
    f = summary.functions
    assert f["publish"].publishes == "os.replace"
    assert f["settle"].syncs == "os.fsync"
    assert f["spool"].writes_params == (0,)
    assert f["scratch"].temp == "fd_name"
    assert f["staged"].manager == TempManager(buffered=True, syncs_on_exit=True)
    assert f["start"].spawns == "thread" and f["relay"].spawns == "thread"
    c = summary.classes
    assert (c["Forker"].server, c["Kept"].server, c["Inline"].server) == ("SCL302", "SCL302", "")
    assert c["Relayer"].server == "SCL301"  # through a module function that starts a thread
    assert c["Inline"].overrides_dispatch and c["Kept"].bases == ("helpers.Forker",)
    assert ModuleSummary.from_json(summary.to_json()) == summary


THREAD_CLASSES_SOURCE = '''
import threading
from threading import Thread as BaseThread


class Session(BaseThread):
    pass


class Settings:
    Worker = Session
    Timer = threading.Timer
    label = "x"


settings = Settings()
plain = dict()
'''


def test_summary_records_class_attributes_and_module_level_instances():
    summary = project.summarise("sessions.py", "sessions", False, THREAD_CLASSES_SOURCE.encode(), "d3")
    c = summary.classes
    assert c["Session"].bases == ("threading.Thread",)
    assert c["Settings"].attributes == {"Worker": "sessions.Session", "Timer": "threading.Timer"}
    assert summary.instances == {"settings": "sessions.Settings"}  # `plain` is no class of this module
    assert ModuleSummary.from_json(summary.to_json()) == summary


def test_a_module_without_the_vocabulary_is_not_parsed():
    summary = project.summarise("plain.py", "plain", False, b"def f(:\n", "d2")
    assert summary == ModuleSummary("plain", "plain.py", "d2")
    assert FunctionSummary("g").has_effect() is False


def test_relative_imports_resolve_from_the_module_and_its_package():
    assert project.absolute("a.b.c", False, 1, "x") == "a.b.x"
    assert project.absolute("a.b", True, 1, "x") == "a.b.x"
    assert project.absolute("a.b.c", False, 2, "") == "a"
    assert project.absolute("a", False, 3, "x") is None


def test_summaries_are_reused_by_content_digest(tmp_path):
    helper = tmp_path / "helper.py"
    helper.write_text("import os\n\n\ndef publish(src, dst):\n    os.replace(src, dst)\n")
    first = project.Index()
    summary = first.summary(str(helper), "helper")
    assert summary.functions["publish"].publishes == "os.replace"
    assert len(first.fresh) == 1
    # a later run that knows the summary (from the cache file) does not compute it again...
    second = project.Index(known=dict(first.fresh))
    assert second.summary(str(helper), "helper") == summary and second.fresh == {}
    # ...until the content changes
    helper.write_text("import os\n\n\ndef publish(src, dst):\n    os.link(src, dst)\n")
    third = project.Index(known=dict(first.fresh))
    assert third.summary(str(helper), "helper").functions == {} and len(third.fresh) == 1


RING_FILES = {
    "pyproject.toml": "[project]\nname = \"ring\"\n",
    "ring/__init__.py": "",
    "ring/compat.py": "import socketserver  # re-exported for the other modules\n",
    "ring/util.py": "from . import compat\n\nsocketserver = compat.socketserver\n",
    "ring/header.py": (
        "import numpy as np\n\n\n"
        "def _words(shm):\n    return np.ndarray((4,), dtype=np.int64, buffer=shm.buf)\n\n\n"
        "def live(shm):\n    return _words(shm)\n\n\n"
        "def snapshot(shm):\n    return bytes(shm.buf[0:32])\n"
    ),
    "ring/producer.py": (
        "import time\nfrom multiprocessing import shared_memory\n\nfrom .header import live, snapshot\n\n\n"
        "def put(shm: shared_memory.SharedMemory, payload: bytes):\n"
        "    hdr = live(shm)\n"
        "    while int(hdr[0]) == int(hdr[1]):  # expect: SCL501\n"
        "        time.sleep(0.001)\n"
        "    shm.buf[32 : 32 + len(payload)] = payload\n\n\n"
        "def peek(shm: shared_memory.SharedMemory):\n"
        "    copy = snapshot(shm)\n"
        "    while copy[0] == 0:  # a copy taken once: no shared load in the loop\n"
        "        time.sleep(0.001)\n"
    ),
    "ring/web.py": (
        "import http.server\n\nfrom . import util\n\nsocketserver = util.socketserver\n\n"
        "try:\n    _mixin = socketserver.ThreadingMixIn\nexcept AttributeError:\n"
        "    _mixin = socketserver.ForkingMixIn\n\n\n"
        "class RepoServer(_mixin, http.server.HTTPServer):  # expect: SCL301\n    pass\n"
    ),
}


def test_views_and_re_exported_modules_are_followed_across_modules(tmp_path):
    # shm-comm: a numpy header over SharedMemory.buf returned by a helper of another module;
    # mercurial: `socketserver = util.socketserver`, a module re-exported by a compat module
    for rel, text in RING_FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    asked = ["ring/producer.py", "ring/web.py"]
    _, doc = run_json("check", "--no-cache", *asked, cwd=tmp_path)
    assert doc["errors"] == []
    expected = marks("ring/producer.py", tmp_path) | marks("ring/web.py", tmp_path)
    assert len(expected) == 2 and findings(doc) == expected
    summary = project.summarise("header.py", "ring.header", False, RING_FILES["ring/header.py"].encode(), "d3")
    assert summary.functions["live"].views_param == 0 and "snapshot" not in summary.functions
    util = project.summarise("util.py", "ring.util", False, RING_FILES["ring/util.py"].encode(), "d4")
    assert util.bindings == {"socketserver": "ring.compat.socketserver"}
    assert ModuleSummary.from_json(summary.to_json()) == summary
    # the gate stays exact with these imports followed
    from syscall_lint.config import parse_table
    from syscall_lint.python.analyzer import analyze

    settings_ = parse_table({}, "<test>", tmp_path)
    for rel in asked:
        path = tmp_path / rel
        view = project.view_for(str(path), path.read_text())
        gated, full = (sorted((f.line, f.code) for f in analyze(path.read_text(), str(path), settings_, gate=g,
                                                                 view=view)) for g in (True, False))
        assert gated == full and gated


# --- the import and binding lines, read from the text with literal-first patterns -----------------
# _import_lines must find exactly what the line-anchored _IMPORT_LINE finds on "\n" + text (in the
# same order, never a match inside another), and _bindings what `^name = a.b$` (re.M) finds.

IMPORT_TEXTS = [
    "import os\nfrom . import util\nfrom ..pkg.mod import (a as b,\n    c)  # tail\n\timport x as y; import z\n",
    'y = "from a import (x,"\nfrom b import c\n)\nimport d\n',  # a look-alike spans a real import
    "from a import (b,\nimport c)\nimport e\n",  # an import inside a parenthesised name list
    "x = 1  # import nothing\n  \x0cimport a\n \timport b, c as d\\\nfrom e import *\n",
    "from a import b; from c import d\nimport e # f\nfrom .g.h import (i as j,\n k)\nfromx import y\nimports z\n",
    "", "import", "from", "\nimport a", "from a import b",
]


@pytest.mark.parametrize("text", IMPORT_TEXTS)
def test_import_lines_are_the_line_anchored_matches(text):
    expected = [m.groups() for m in project._IMPORT_LINE.finditer("\n" + text)]
    assert project._import_lines(text) == expected


def test_binding_lines_are_the_line_anchored_matches():
    import re

    anchored = re.compile(r"^([A-Za-z_]\w*)[ \t]*=[ \t]*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)[ \t]*(?:#.*)?$", re.M)
    text = ("socketserver = compat.socketserver\n  indented = compat.x\nswap = os.replace  # why\n"
            "a=b.c\nnot_dotted = b\nlast = pkg.mod.attr")
    imports = {"compat": "pkg.compat", "os": "os", "b": "b", "pkg": "pkg"}
    expected = {}
    for name, dotted in (m.groups() for m in anchored.finditer(text)):
        head, _, rest = dotted.partition(".")
        expected.setdefault(name, f"{imports[head]}.{rest}")
    assert project._bindings(text, imports) == expected
    assert set(expected) == {"socketserver", "swap", "a", "last"}
