"""Every input that fuzzing (or a user) found to break the linter, replayed through the real CLI.

Files live in tests/data/regressions/<kind>/; <kind> is a fuzz kind (bench/fuzz/kinds/<kind>.py), whose
SUBCOMMAND says how the input is read. A kind with its own `run_batch` (the language server, configuration)
is replayed through that. Each input must give an exit status in {0, 1, 2}, no traceback, valid JSON and
at most one error line naming it.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

REGRESSIONS = ROOT / "tests" / "data" / "regressions"
KINDS = ROOT / "bench" / "fuzz" / "kinds"


def _kind(name):
    spec = importlib.util.spec_from_file_location(f"regression_kind_{name}", KINDS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(KINDS.parent))
    spec.loader.exec_module(module)
    return module


def _cases():
    for folder in sorted(p for p in REGRESSIONS.iterdir() if p.is_dir()) if REGRESSIONS.is_dir() else ():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.endswith((".md", ".why")):
                yield pytest.param(folder.name, path, id=f"{folder.name}/{path.name}")


@pytest.mark.parametrize("kind,path", list(_cases()))
def test_regression_input_is_handled(kind, path):
    module = _kind(kind)
    if hasattr(module, "run_batch"):
        outcome = module.run_batch([path], 120)
        assert outcome.problem is None, f"{path.name}: {outcome.problem}: {outcome.detail}"
        return
    proc = run_cli(*module.SUBCOMMAND, "--format", "json", path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 2), proc.stderr
    doc = json.loads(proc.stdout)
    errors = doc["errors"]
    assert len(errors) <= 1 and all("\n" not in e["message"] for e in errors), errors
    assert all("internal error" not in e["message"] for e in errors), errors
    assert (proc.returncode == 2) == bool(errors)
