"""The gate is exact: gated runs (text screen, `ast` gate, libcst on the needed parts) find exactly
what full runs (libcst on every file) find, errors included.

By default a deterministic sample of the standard library and site-packages is compared; set
SYSCALL_LINT_DIFFERENTIAL=full to compare every file that passes the text screen (minutes)."""

import os
import site
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syscall_lint.config import parse_table
from syscall_lint.python.analyzer import BadInput, analyze, decode, parse_ast
from syscall_lint.python.prescreen import text_modules

DEFAULTS = parse_table({}, "<test>", Path("."))
FULL = os.environ.get("SYSCALL_LINT_DIFFERENTIAL") == "full"
SAMPLE_EVERY = 100  # of the files that pass the text screen, compare one in this many by default
MAX_SIZE = 300_000


def outcome(text: str, gate: bool):
    """Findings, or "error". Both sides run as in strict mode, where every file is parsed (without
    it, a file no rule can match is by design not parsed, so its syntax errors are not reported):
    an error on one side only is then a real difference (`ast` and libcst disagreeing)."""
    try:
        if gate:
            parse_ast(text)
        return sorted((f.line, f.column, f.code, f.message) for f in analyze(text, "t.py", DEFAULTS, gate=gate))
    except BadInput:
        return "error"


def _screened_files(roots):
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            try:
                if path.stat().st_size > MAX_SIZE:
                    continue
                text = decode(path.read_bytes())
            except (OSError, BadInput):
                continue
            if text_modules(text):
                yield path, text


def _roots():
    roots = [Path(sysconfig.get_paths()["stdlib"])]
    roots += [Path(p) for p in site.getsitepackages() if "site-packages" in p]
    return roots


def libcst_rejects_valid_python(text: str) -> bool:
    """CPython parses it, libcst's parser does not (a parenthesised annotated target, `(x): int`,
    in the stdlib's test_grammar.py): the full run, libcst on the whole file, has no answer to
    compare with there, so such a file is not a difference of the gate."""
    import ast

    import libcst

    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    try:
        libcst.parse_module(text)
    except libcst.ParserSyntaxError:
        return True
    except Exception:  # noqa: BLE001 - any other libcst failure is not this case
        return False
    return False


def test_the_no_oracle_case_is_only_libcst_rejecting_valid_python():
    assert libcst_rejects_valid_python("def f():\n    (x): int = 1\n    return x\n")
    assert not libcst_rejects_valid_python("def f(:\n    pass\n")  # a real syntax error
    assert not libcst_rejects_valid_python("x = 1\n")


def test_gated_and_full_runs_agree_on_the_stdlib_and_site_packages():
    compared = 0
    differ = []
    no_oracle = []
    for index, (path, text) in enumerate(_screened_files(_roots())):
        if not FULL and index % SAMPLE_EVERY:
            continue
        compared += 1
        gated, full = outcome(text, True), outcome(text, False)
        if gated != full:
            if full == "error" and libcst_rejects_valid_python(text):
                no_oracle.append(str(path))
                continue
            differ.append((str(path), gated, full))
    assert compared > 0
    assert differ == []
    if no_oracle:
        print(f"{len(no_oracle)} file(s) libcst cannot parse (no full-run answer): {no_oracle}")


# --- generated edge cases ----------------------------------------------------------------------

IMPORTS = ["import os", "import os as o\nos = o", "import sys, os as o\nos = o", "import posix as os",
           "from os import (\n    replace,\n    fsync,\n)\nimport os", "import os\nfrom os import replace as swap"]
BINDINGS = ["", "open = print\n", "def open(*a):\n    return None\n", "for open in []:\n    pass\n",
            "swap = os.replace\n", "try:\n    import socketserver\n    Mixin = socketserver.ForkingMixIn\n"
            "except ImportError:\n    Mixin = object\n", "replace_later = (lambda f: f)(os.replace)\n"]
SEPARATORS = ["", "\f", "\v", "\x1c", "\x85", "\u2028"]
BODIES = [
    "def save{n}(p):\n    with open(p + '.tmp', 'w') as f:\n        f.write('x')\n    os.replace(p + '.tmp', p)\n",
    "def save{n}(p):\n    with open(p + '.new', 'w') as f:\n        f.write('x')\n        f.flush()\n"
    "        os.fsync(f.fileno())\n    os.rename(p + '.new', p)\n",
    "def save{n}(p):\n    with open(p + '.part', 'w') as f:\n        f.write('x')\n    swap(p + '.part', p)\n",
    "def save{n}(p):\n    with open(p + '.part', 'w') as f:\n        f.write('x')\n    replace_later(p + '.part', p)\n",
    "def helper{n}(src, dst):\n    os.rename(src, dst)\n\ndef save{n}(p):\n    with open(p + '.tmp', 'w') as f:\n"
    "        f.write('x')\n    helper{n}(p + '.tmp', p)\n",
    "class W{n}:\n    def __init__(self, t):\n        self.t = t\n        self.tmp = t + '.tmp'\n"
    "        self.f = open(self.tmp, 'w')\n\n    def close(self):\n        self.f.close()\n"
    "        os.replace(self.tmp, self.t)\n",
    "class S{n}(Mixin):\n    pass\n",
    "class L{n}:\n    def serve(self, s):\n        while True:\n            c, _ = s.accept()\n"
    "            self.handle(c)\n\n    def handle(self, c):\n        os.fork()\n",
    "def spam{n}(fd, items):\n    for item in items:\n        os.write(fd, item)\n",
    "def other{n}(x):\n    return x.replace('a', 'b')  # noqa: SCL101\n",
    # SCL501: a parameter typed as shared memory, a view returned by a helper, a view bound by setattr
    "from multiprocessing.shared_memory import SharedMemory\n\ndef words{n}(shm):\n"
    "    return memoryview(shm.buf).cast('Q')\n\ndef put{n}(shm: SharedMemory):\n    w = words{n}(shm)\n"
    "    while w[0] == 0:\n        pass\n",
    "import mmap\n\nclass F{n}:\n    def __init__(self, fd):\n        m = mmap.mmap(fd, 64)\n"
    "        object.__setattr__(self, '_v', m[0:8])\n\n    def wait(self):\n        v = self._v\n"
    "        while v[0] == 0:\n            pass\n",
    # SCL301/SCL302: an override that hands on to the mixin; an accept callback a looping method registers
    "import socketserver\n\nclass C{n}(socketserver.ThreadingMixIn, socketserver.TCPServer):\n"
    "    def process_request(self, r, a):\n        super().process_request(r, a)\n",
    "class K{n}:\n    def run(self, sel, s):\n        sel.register(s, 1, self.on_accept)\n        while True:\n"
    "            for key, _ in sel.select():\n                key.data(key.fileobj)\n\n"
    "    def on_accept(self, s):\n        c, _ = s.accept()\n        if os.fork() == 0:\n            c.sendall(b'x')\n",
]


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(imports=st.sampled_from(IMPORTS), binding=st.sampled_from(BINDINGS), separator=st.sampled_from(SEPARATORS),
       bodies=st.lists(st.sampled_from(BODIES), min_size=1, max_size=4), filler=st.integers(0, 30))
def test_gated_and_full_runs_agree_on_generated_programs(imports, binding, separator, bodies, filler):
    parts = [imports, f"# separator{separator}here", binding]
    parts += [body.format(n=n) for n, body in enumerate(bodies)]
    parts += [f"def filler{i}(x):\n    return x\n" for i in range(filler)]
    text = "\n\n".join(parts)
    assert outcome(text, True) == outcome(text, False)


@pytest.mark.parametrize("text", ["def f(:\n", "x = 1\n" * 3 + "os.replace(\n", "\u2028import os\nos.replace(a, b)\n"])
def test_an_error_on_one_side_only_is_a_difference(text):
    assert outcome(text, True) == outcome(text, False)


def test_gated_and_full_runs_agree_with_imports_followed():
    """A file's project imports add names the gate must judge as what they stand for (an imported
    spawn helper as a Thread, a wrapper as a rename): gated and full runs still agree."""
    from conftest import FIXTURES

    from syscall_lint.python import project

    root = FIXTURES / "python_project"
    settings_ = parse_table({"src": ["lib"]}, "<test>", root)
    reported = set()
    for path in sorted(root.rglob("*.py")):
        text = decode(path.read_bytes())
        view = project.view_for(str(path), text, settings_.src)
        results = []
        for gate in (True, False):
            found = analyze(text, str(path), settings_, gate=gate, view=view)
            results.append(sorted((f.line, f.column, f.code, f.message) for f in found))
        assert results[0] == results[1], path
        if results[0]:
            reported.add(path.name)
    # the files asked for in the fixture project (findings through imports) and the mixins module
    assert reported == {"records.py", "serve.py", "queue_writer.py", "mixins.py", "session_server.py"}
