import json
import os
import shutil
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


def marked_findings(folder: Path):
    """{(file name, line, code)} for every `# expect:` mark in the fixtures of a folder."""
    return {(path.name, line, code) for path in sorted(folder.glob("*.py"))
            for line, code in expected_marks(path)}


PYTHON_MARKS = marked_findings(FIXTURES / "python")


def network_available(host: str = "pypi.org", port: int = 443, timeout: float = 3.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Identity for tests that make git commits, given through the environment: CI needs no global config.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "syscall-lint tests", "GIT_AUTHOR_EMAIL": "tests@syscall-lint.invalid",
                "GIT_COMMITTER_NAME": "syscall-lint tests", "GIT_COMMITTER_EMAIL": "tests@syscall-lint.invalid"}


@pytest.fixture
def root():
    return ROOT


def install_extra_rule(tmp_path: Path, monkeypatch, toml_name: str, toml_text: str, package,
                       module_name: str, module_text: str) -> None:
    """A rule added the documented way, in a test: the shipped catalog plus one TOML file, and one
    module in a folder appended to `package`'s search path (the rule modules or the observers)."""
    from syscall_lint import catalog

    cat_dir = tmp_path / "catalog"
    shutil.copytree(ROOT / "rules", cat_dir)
    (cat_dir / toml_name).write_text(toml_text)
    extra = tmp_path / "extra_rules"
    extra.mkdir()
    (extra / module_name).write_text(module_text)
    test_catalog = catalog.Catalog(cat_dir)
    monkeypatch.setattr(catalog, "load", lambda: test_catalog)
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(extra)])
