import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def run_cli(*args, cwd=None, input=None, env=None):
    """Run syscall-lint in a subprocess, the way users and CI do."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "syscall_lint", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, input=input, env=full_env, timeout=300)


def run_json(*args, **kw):
    proc = run_cli(*args, "--format", "json", **kw)
    return proc, json.loads(proc.stdout)


def expected_marks(path: Path):
    """Lines marked `# expect: SCL101[, SCL102]` in a fixture: {(line, code)}."""
    marks = set()
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if "# expect:" in line:
            for code in line.split("# expect:", 1)[1].replace(",", " ").split():
                marks.add((lineno, code))
    return marks


@pytest.fixture
def root():
    return ROOT
