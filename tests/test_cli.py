"""The command line end to end, through a subprocess: exit codes, JSON shape, rule, config, noqa, bad input."""

import json
import os

from pathlib import Path

import pytest

from conftest import FIXTURES, PYTHON_MARKS, ROOT, expected_marks, run_cli, run_json

FINDING_KEYS = {"code", "name", "severity", "message", "source", "path", "line", "column", "end_line",
                "end_column", "decision_tree", "fix", "evidence", "url"}


def test_exit_codes(tmp_path):
    clean = tmp_path / "clean.py"
    clean.write_text("print('hi')\n")
    assert run_cli("check", "--no-cache", clean).returncode == 0
    bad = FIXTURES / "python" / "config_writer_bad.py"
    assert run_cli("check", "--no-cache", bad).returncode == 1
    assert run_cli("check", "--no-cache", "--exit-zero", bad).returncode == 0
    assert run_cli("check", "--no-cache", "--select", "NOPE1", bad).returncode == 2


def test_json_shape_matches_contract():
    proc, doc = run_json("check", "--no-cache", FIXTURES / "python")
    assert proc.returncode == 1
    assert doc["tool"]["name"] == "syscall-lint" and doc["tool"]["version"]
    assert doc["errors"] == []
    assert doc["findings"]
    for f in doc["findings"]:
        assert FINDING_KEYS <= set(f)
        assert f["source"] == "python" and f["severity"] in ("error", "warning", "info")
        assert isinstance(f["line"], int) and isinstance(f["column"], int) and f["column"] >= 1
        assert set(f["decision_tree"]) == {"id", "question", "answer"}
        assert f["path"].startswith(str(FIXTURES / "python"))
        assert "\n" not in f["message"]


def test_path_is_as_given_joined_with_file(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "w.py").write_text(
        "import os\ndef f(p):\n    with open('t.tmp', 'w') as fh:\n        fh.write('x')\n    os.replace('t.tmp', p)\n")
    proc, doc = run_json("check", "--no-cache", "pkg", cwd=tmp_path)
    assert [f["path"] for f in doc["findings"]] == [os.path.join("pkg", "w.py")]


def test_text_output_and_explain():
    bad = FIXTURES / "python" / "config_writer_bad.py"
    proc = run_cli("check", "--no-cache", bad)
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"{bad}:17:9: SCL101 ")
    proc = run_cli("check", "--no-cache", "--explain", bad)
    assert "decision tree  durability" in proc.stdout and "fix  " in proc.stdout


def test_statistics_and_output_file(tmp_path):
    out = tmp_path / "report.txt"
    proc = run_cli("check", "--no-cache", "--statistics", "--output", out, FIXTURES / "python")
    assert proc.stdout == ""
    text = out.read_text()
    assert "SCL201 unbatched-writes" in text


def test_rule_command_lists_catalog_and_prints_one_page():
    proc = run_cli("rule")
    assert proc.returncode == 0 and "SCL101" in proc.stdout and "SCL501" in proc.stdout
    proc = run_cli("rule", "SCL101")
    for heading in ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## References",
                    "Decision tree"):
        assert heading in proc.stdout
    proc = run_cli("rule", "rename-without-fsync")
    assert proc.returncode == 0 and proc.stdout.startswith("# SCL101")
    assert run_cli("rule", "SCL999").returncode == 2


def test_config_select_ignore_per_file_and_cli_override(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.syscall-lint]\nignore = ["SCL2"]\n[tool.syscall-lint.per-file-ignores]\n"legacy/*" = ["SCL101"]\n')
    (tmp_path / "legacy").mkdir()
    src = (FIXTURES / "python" / "line_logger.py").read_text() + (FIXTURES / "python" / "config_writer_bad.py").read_text()
    (tmp_path / "a.py").write_text(src)
    (tmp_path / "legacy" / "b.py").write_text(src)
    _, doc = run_json("check", "--no-cache", ".", cwd=tmp_path)
    codes = {(f["path"], f["code"]) for f in doc["findings"]}
    assert ("a.py", "SCL201") not in codes and ("a.py", "SCL101") in codes
    assert (os.path.join("legacy", "b.py"), "SCL101") not in codes
    assert (os.path.join("legacy", "b.py"), "SCL106") in codes
    # --select on the command line starts afresh (as in ruff): the file's ignore of SCL2 no longer applies
    _, doc = run_json("check", "--no-cache", "--select", "SCL201", ".", cwd=tmp_path)
    logger_lines = {line for line, code in expected_marks(FIXTURES / "python" / "line_logger.py") if code == "SCL201"}
    assert logger_lines
    assert {(f["path"], f["line"], f["code"]) for f in doc["findings"]} == {
        (path, line, "SCL201") for path in ("a.py", os.path.join("legacy", "b.py")) for line in logger_lines}
    _, doc = run_json("check", "--no-cache", "--select", "SCL201", "--ignore", "SCL2", ".", cwd=tmp_path)
    assert doc["findings"] == []


def test_rule_options_in_config_are_validated(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.syscall-lint.unbatched-writes]\nmin-calls = "many"\n')
    (tmp_path / "a.py").write_text("x = 1\n")
    proc = run_cli("check", "--no-cache", ".", cwd=tmp_path)
    assert proc.returncode == 2 and "pyproject.toml" in proc.stderr and "min-calls" in proc.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.syscall-lint]\nselct = ["SCL1"]\n')
    proc = run_cli("check", "--no-cache", ".", cwd=tmp_path)
    assert proc.returncode == 2 and "'selct'" in proc.stderr and "Traceback" not in proc.stderr


def test_explicit_config_file(tmp_path):
    cfg = tmp_path / "lint.toml"
    cfg.write_text('select = ["SCL501"]\n')
    _, doc = run_json("check", "--no-cache", "--config", cfg, FIXTURES / "python")
    assert {f["code"] for f in doc["findings"]} == {"SCL501"}


def test_bad_inputs_are_reported_and_the_rest_is_analysed(tmp_path):
    # a syntax error is reported where a rule needs the file parsed (the pre-screen is textual)
    (tmp_path / "syntax.py").write_text("import os\nwith open('a.tmp', 'w') as f:\n    f.write(\nos.replace('a.tmp', 'a')\n")
    (tmp_path / "binary.py").write_bytes(b"\x00\x01\x02os.replace")
    (tmp_path / "latin.py").write_bytes(b"s = '\xe9'  # os.replace\n")
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    (tmp_path / "good.py").write_text((FIXTURES / "python" / "line_logger.py").read_text())
    proc, doc = run_json("check", "--no-cache", ".", "missing.py", cwd=tmp_path)
    assert proc.returncode == 2
    errors = {e["path"]: e["message"] for e in doc["errors"]}
    assert set(errors) == {"syntax.py", "binary.py", "latin.py", "dangling.py", "missing.py"}
    assert all("\n" not in m for m in errors.values())
    assert {f["code"] for f in doc["findings"]} == {"SCL201"}
    text = run_cli("check", "--no-cache", ".", cwd=tmp_path)
    assert "Traceback" not in text.stderr and "syntax.py: syntax error" in text.stderr


def test_cache_gives_same_results_and_is_written_durably(tmp_path):
    cache = tmp_path / "cache"
    first = run_json("check", "--cache-dir", cache, FIXTURES / "python")[1]
    assert (cache / "results-v1.json").is_file()
    second = run_json("check", "--cache-dir", cache, FIXTURES / "python")[1]
    assert first == second
    # the cache key includes the settings: a different selection is not served stale results
    third = run_json("check", "--cache-dir", cache, "--select", "SCL501", FIXTURES / "python")[1]
    assert {f["code"] for f in third["findings"]} == {"SCL501"}


def test_dogfood_syscall_lint_passes_its_own_rules():
    proc = run_cli("check", "--no-cache", ROOT / "syscall_lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_wheel_installs_a_working_tool_with_its_catalog(tmp_path):
    """A plain (non-editable) install in a fresh venv: the console script, the catalog, the rules."""
    import subprocess
    import sys
    import venv

    wheelhouse = tmp_path / "wheels"
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools installed")
    # no build isolation: the build uses this environment's setuptools, so no network is needed
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheelhouse), str(ROOT)], check=True, timeout=300)
    (wheel,) = wheelhouse.glob("syscall_lint-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # the dependencies come from the environment running the tests (offline; also inside a nox venv):
    # its site-packages go after the new venv's own, so the installed wheel is what gets imported
    import site
    new_site = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                              text=True, check=True, timeout=60).stdout.strip()
    Path(new_site, "outer-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    tool = env_dir / "bin" / "syscall-lint"
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(tool), "rule", "SCL501"], capture_output=True, text=True, cwd=tmp_path, env=clean_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# SCL501 raw-shared-load") and "## What it does" in proc.stdout
    where = subprocess.run([str(py), "-c", "import syscall_lint, sys; print(syscall_lint.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=clean_env).stdout
    assert str(env_dir) in where  # the installed copy, not the checkout
    proc = subprocess.run([str(tool), "check", "--no-cache", str(FIXTURES / "python")], capture_output=True,
                          text=True, cwd=tmp_path, env=clean_env)
    assert proc.returncode == 1, proc.stderr
    found = {(Path(line.split(":")[0]).name, int(line.split(":")[1]), line.split()[1]) for line in proc.stdout.splitlines()}
    assert found == PYTHON_MARKS
    # every analyser's modules are in the wheel: the trace rules (discovered by name) and the source map
    proc = subprocess.run([str(tool), "trace", "--format", "json", str(FIXTURES / "strace" / "careless_replace.strace")],
                          capture_output=True, text=True, cwd=tmp_path, env=clean_env, timeout=120)
    assert proc.returncode == 1 and {f["code"] for f in json.loads(proc.stdout)["findings"]} >= {"SCL101"}, proc.stderr
    proc = subprocess.run([str(py), "-c", "import os, syscall_lint.sourcemap.recording as r; "
                           "print(os.path.isfile(os.path.join(r.SHIM_DIR, 'sitecustomize.py')))"],
                          capture_output=True, text=True, cwd=tmp_path, env=clean_env, timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr


def test_the_fast_exit_leaves_nothing_unwritten():
    """`python -m syscall_lint` ends with os._exit after flushing: a report far larger than a pipe's
    buffer arrives whole, and the status is main()'s."""
    elf = FIXTURES / "elf"
    binaries = [p for arch in ("x86_64", "aarch64") if (elf / arch).is_dir() for p in (elf / arch).iterdir()]
    if not binaries:
        pytest.skip("no ELF fixtures built")
    proc = run_cli("audit", "--format", "json", elf)
    assert len(proc.stdout) > 4 * 65536
    doc = json.loads(proc.stdout)
    assert len(doc["binaries"]) == len(binaries)
    assert proc.returncode == 1 and doc["findings"]
    proc = run_cli("audit", FIXTURES / "elf" / "no-such-file")
    assert proc.returncode == 2 and proc.stderr.strip().endswith("no such file or directory")
