"""The Python analyser across functions, classes and module-level bindings: what each summary adds,
the look-alikes it must leave alone, and gated runs that agree with full runs."""

from pathlib import Path

import pytest

from conftest import FIXTURES
from syscall_lint.config import parse_table
from syscall_lint.python.analyzer import analyze

DEFAULTS = parse_table({}, "<test>", Path("."))


def lint(text, gate=True):
    return sorted((f.line, f.code) for f in analyze(text, "t.py", DEFAULTS, gate=gate))


def both(text):
    """Findings, asserting first that the gated run finds exactly what the full run finds."""
    gated, full = lint(text), lint(text, gate=False)
    assert gated == full
    return gated


@pytest.mark.parametrize("path", sorted((FIXTURES / "python").glob("*.py")), ids=lambda p: p.name)
def test_gated_and_full_runs_agree_on_every_fixture(path):
    text = path.read_text()
    assert lint(text) == lint(text, gate=False)


def test_module_level_alias_of_a_mixin_is_followed():
    src = ("import socketserver\ntry:\n    Base = socketserver.ForkingMixIn\nexcept AttributeError:\n"
           "    Base = object\n\nclass S(Base, socketserver.TCPServer):\n    pass\n")
    assert both(src) == [(7, "SCL302")]


def test_an_unrelated_module_level_binding_changes_nothing():
    src = ("import logging, socketserver\nlog = logging.getLogger(__name__)\n\n"
           "class S(socketserver.TCPServer):\n    def f(self):\n        log.info('x')\n")
    assert both(src) == []


def test_posix_and_six_names_are_canonical():
    src = ("import posix as o\nfrom six.moves import socketserver\n\n"
           "class S(socketserver.ThreadingMixIn, socketserver.TCPServer):\n    pass\n\n"
           "def save(p):\n    with open(p + '.tmp', 'w') as f:\n        f.write('x')\n    o.replace(p + '.tmp', p)\n")
    assert both(src) == [(4, "SCL301"), (10, "SCL101")]


def test_a_wrapper_that_reorders_its_parameters_is_not_a_rename():
    # dst, src: the call site's first argument is not the source, so the wrapper is not followed
    src = ("import os\n\ndef put(dst, src):\n    os.replace(src, dst)\n\n"
           "def save(p):\n    with open(p + '.tmp', 'w') as f:\n        f.write('x')\n    put(p, p + '.tmp')\n")
    assert both(src) == []


def test_a_sync_helper_makes_the_data_durable():
    src = ("import os\n\ndef _durable(f):\n    f.flush()\n    os.fsync(f.fileno())\n\n"
           "def save(p):\n    with open(p + '.tmp', 'w') as f:\n        f.write('x')\n        _durable(f)\n"
           "    os.replace(p + '.tmp', p)\n")
    assert both(src) == [(11, "SCL102")]


def test_a_context_manager_that_does_not_sync_leaves_scl101():
    src = ("import contextlib, os, tempfile\n\n@contextlib.contextmanager\ndef scratch(path):\n"
           "    with tempfile.NamedTemporaryFile('w', delete=False) as f:\n        yield f\n\n"
           "def save(path, text):\n    with scratch(path) as f:\n        f.write(text)\n    os.replace(f.name, path)\n")
    assert both(src) == [(11, "SCL101")]


def test_class_fields_rename_of_a_file_the_class_did_not_open_is_not_judged():
    src = ("import os\n\nclass Rotator:\n    def __init__(self, path):\n        self.path = path\n"
           "        self.log = open(path + '.log', 'w')\n\n    def rotate(self):\n"
           "        os.rename(self.path + '.old', self.path + '.older')\n")
    assert both(src) == []


def test_class_fields_subclass_that_syncs_its_directory_is_clean():
    src = ("import os\n\nclass Base:\n    def __init__(self, t):\n        self.t = t\n        self.tmp = t + '.tmp'\n"
           "        self.f = open(self.tmp, 'w')\n\n    def write(self, s):\n        self.f.write(s)\n\n"
           "class Durable(Base):\n    def close(self):\n        self.f.flush()\n        os.fsync(self.f.fileno())\n"
           "        self.f.close()\n        os.replace(self.tmp, self.t)\n        fd = os.open('.', os.O_RDONLY)\n"
           "        os.fsync(fd)\n        os.close(fd)\n")
    assert both(src) == []


def test_pid_files_are_not_durable_replaces():
    src = ("import os, tempfile\n\ndef write_pidfile(path):\n    fd, tmp = tempfile.mkstemp()\n"
           "    os.write(fd, b'1')\n    os.close(fd)\n    os.rename(tmp, path)\n\n"
           "class PidFile:\n    def create(self, fname):\n        fd, tmp = tempfile.mkstemp()\n"
           "        os.write(fd, b'1')\n        os.rename(tmp, fname)\n")
    assert both(src) == []


def test_a_fork_server_that_closes_the_connection_before_forking_is_not_per_connection():
    src = ("import os\n\ndef serve(listener):\n    while True:\n        with listener.accept()[0] as s:\n"
           "            fds = take_fds(s)\n            s.close()\n            if os.fork() == 0:\n"
           "                run(fds)\n\ndef serve_each(listener):\n    while True:\n"
           "        conn, _ = listener.accept()\n        if os.fork() == 0:\n            handle(conn)\n"
           "        conn.close()\n")
    assert both(src) == [(14, "SCL302")]


def test_a_handler_that_is_never_called_from_a_loop_is_not_an_accept_path():
    src = ("import threading\n\nclass Once:\n    def start(self, listener):\n        conn, _ = listener.accept()\n"
           "        threading.Thread(target=conn.close).start()\n")
    assert both(src) == []


def test_flags_held_in_a_local_open_for_writing():
    src = ("import os\n\ndef save(target):\n    part = target + '.part'\n    how = os.O_WRONLY | os.O_CREAT\n"
           "    fd = os.open(part, how)\n    os.write(fd, b'x')\n    os.close(fd)\n    os.replace(part, target)\n")
    assert both(src) == [(9, "SCL101")]


@pytest.mark.parametrize("separator", ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_characters_str_splitlines_splits_on_do_not_shift_lines(separator):
    # only \n, \r\n and \r end a line for Python; the finding, its snippet and noqa use that model
    src = (f"import os\n# a comment with {separator} inside\n\ndef save(p):\n"
           "    with open(p + '.tmp', 'w') as f:\n        f.write('x')\n    os.replace(p + '.tmp', p)\n")
    assert both(src) == [(7, "SCL101")]
    quiet = src.replace("os.replace(p + '.tmp', p)", "os.replace(p + '.tmp', p)  # noqa: SCL101")
    assert both(quiet) == []


@pytest.mark.parametrize("binding", ["def open(*a):\n    pass\n", "for open in []:\n    pass\n",
                                     "try:\n    pass\nexcept Exception as open:\n    pass\n",
                                     "open = None\nopen += 1\n"])
def test_a_shadowed_builtin_is_shadowed_for_gate_and_facts_alike(binding):
    src = ("import os\n" + binding + "\n\ndef save(p):\n    with open(p + '.tmp', 'w') as f:\n"
           "        f.write('x')\n    os.replace(p + '.tmp', p)\n" + "".join(f"\ndef f{i}():\n    return {i}\n" for i in range(40)))
    assert both(src) == []


@pytest.mark.parametrize("imports", ["import sys, os as o\n", "from os import (\n    write as w,\n)\n",
                                     "import posix as o\n"])
def test_os_imported_in_any_form_reaches_the_batching_rule(imports):
    call = "w(fd, item)" if "w," in imports else "o.write(fd, item)"
    src = imports + f"\ndef spam(fd, items):\n    for item in items:\n        {call}\n"
    found = both(src)
    assert [code for _, code in found] == ["SCL201"]


def test_a_mkstemp_descriptor_wrapped_in_a_file_object_stays_a_temp_file():
    # open(fd, mode) / os.fdopen(fd) take over the descriptor: the rename still publishes a temp file
    src = ("import os, tempfile\n\ndef dump(path, data, mode='wb'):\n    fd, fn = tempfile.mkstemp()\n"
           "    with open(fd, mode) as fp:\n        fp.write(data)\n    os.replace(fn, path)\n")
    assert both(src) == [(7, "SCL101")]


def test_a_link_is_a_rename_only_when_its_source_is_removed_after_it():
    body = ("import os\n\ndef publish(path):\n    tmp = path + '.tmp'\n    with open(tmp, 'w') as f:\n"
            "        f.write('x')\n    os.link(tmp, path)\n")
    assert both(body) == []  # two names for one file: nothing was moved
    assert both(body + "    os.unlink(tmp)\n") == [(7, "SCL101")]


def test_a_helper_opening_with_the_callers_mode_is_judged_at_each_call():
    src = ("import os\n\ndef opener(path, mode):\n    return open(path, mode)\n\n"
           "def save(p):\n    f = opener(p + '.tmp', 'w')\n    f.write('x')\n    f.close()\n    os.replace(p + '.tmp', p)\n\n"
           "def load(p):\n    f = opener(p + '.tmp', 'r')\n    f.read()\n    f.close()\n    os.replace(p + '.tmp', p)\n")
    assert both(src) == [(10, "SCL101")]


def test_an_executor_handed_an_unrelated_callable_is_not_a_rename():
    src = ("import asyncio, os\n\nasync def save(p, data):\n    with open(p + '.tmp', 'w') as f:\n"
           "        f.write(data)\n    await asyncio.to_thread(print, p + '.tmp', p)\n")
    assert both(src) == []


def test_a_rename_only_windows_runs_asks_for_no_directory_sync():
    src = ("import os, sys\n\ndef save(p):\n    with open(p + '.tmp', 'w') as f:\n        f.write('x')\n"
           "        f.flush()\n        os.fsync(f.fileno())\n    if sys.platform == 'win32':\n"
           "        os.replace(p + '.tmp', p)\n    else:\n        os.rename(p + '.tmp', p)\n")
    assert both(src) == [(11, "SCL102")]


def test_a_process_from_a_multiprocessing_context_per_connection_is_a_fork_per_connection():
    src = ("import multiprocessing\n\nctx = multiprocessing.get_context('spawn')\n\n"
           "def serve(listener, handle):\n    while True:\n        conn, _ = listener.accept()\n"
           "        ctx.Process(target=handle, args=(conn,)).start()\n")
    assert both(src) == [(8, "SCL302")]
