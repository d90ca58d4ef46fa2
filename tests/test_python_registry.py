"""Adding a Python rule is one TOML file plus one Python module: nothing else lists rules."""

import sys
from pathlib import Path

import pytest

from conftest import ROOT, install_extra_rule
from syscall_lint import catalog
from syscall_lint.config import parse_table
from syscall_lint.python import rulekit, rules
from syscall_lint.python.analyzer import analyze
from syscall_lint.python.prescreen import text_modules

RULE_TOML = '''
code = "SCL998"
name = "sleep-in-loop-test-rule"
summary = "a rule that exists only in this test"
severity = "warning"
confidence = "high"
sources = ["python"]
tree = "syscall-tax"
branch = "test"
fix = "do not call {call}() in a loop"

[message]
python = "{call}() in a loop"

[doc]
what = "test"
why = "test"
example = "test"
use_instead = "test"
references = []
'''

RULE_MODULE = '''
"""A rule defined only by this module and its TOML file."""

from syscall_lint.python.rulekit import Hit, Rule, call_label


class SleepInLoop(Rule):
    """time.sleep() called inside a loop (SCL998)."""

    name = "sleep_in_loop_test"
    codes = frozenset({"SCL998"})
    words = ("sleep",)

    def check(self, facts):
        for call in facts.calls:
            if call.qual == "time.sleep" and call.loop is not None:
                yield Hit("SCL998", call.node, {"call": call_label(call)})
'''

SOURCE = "import time\n\ndef poll():\n    while True:\n        time.sleep(1)\n\ntime.sleep(2)\n"


@pytest.fixture
def extra_rule(tmp_path, monkeypatch):
    install_extra_rule(tmp_path, monkeypatch, "SCL998.toml", RULE_TOML, rules, "sleep_in_loop_test.py", RULE_MODULE)
    rulekit.reload_registry()
    yield
    monkeypatch.undo()
    sys.modules.pop("syscall_lint.python.rules.sleep_in_loop_test", None)
    rulekit._REGISTERED.pop("sleep_in_loop_test", None)
    rulekit.reload_registry()


def test_a_rule_defined_only_in_its_module_and_toml_runs(extra_rule):
    assert rulekit.module_codes()["sleep_in_loop_test"] == {"SCL998"}
    assert "sleep_in_loop_test" in text_modules(SOURCE)
    settings = parse_table({"select": ["SCL998"]}, "<test>", Path("."))
    # gated and ungated runs agree; the module-level sleep is not in a loop
    for gate in (True, False):
        found = [(f.line, f.code, f.message) for f in analyze(SOURCE, "t.py", settings, gate=gate)]
        assert found == [(5, "SCL998", "time.sleep() in a loop")]


def test_builtin_families_are_registered_with_their_codes():
    codes = rulekit.module_codes()
    assert codes["durability"] == {"SCL101", "SCL102", "SCL106"}
    assert codes["batching"] == {"SCL201", "SCL401"}
    assert codes["connections"] == {"SCL301", "SCL302", "SCL303"}
    assert codes["ordering"] == {"SCL501"}
    # every Python code in the catalog is reported by exactly one registered family
    python_codes = {c for c, r in catalog.load().rules.items() if "python" in r.sources and c != "SCL900"}
    owned = [c for family in codes.values() for c in family]
    assert sorted(owned) == sorted(set(owned)) and python_codes == set(owned)


def test_select_alone_runs_each_family():
    # a code selected on its own must run (a family left out of a hand-kept table never ran)
    src = ("import os\n\ndef save(p):\n    with open(p + '.tmp', 'w') as fh:\n        fh.write('x')\n"
           "    os.replace(p + '.tmp', p)\n")
    for code in ("SCL101",):
        settings = parse_table({"select": [code]}, "<test>", Path("."))
        assert [(f.line, f.code) for f in analyze(src, "t.py", settings)] == [(6, code)]


def test_the_gate_imports_no_libcst():
    # the rules' contracts (codes, vocabulary, screens) load without libcst: a file the gates drop
    # costs no libcst import
    import subprocess

    code = ("import sys\nfrom syscall_lint.python import rulekit, prescreen\n"
            "rulekit.registry(); prescreen.text_modules('x = 1')\nprint('libcst' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
