"""Configuration that is wrong, hostile or not a file at all: one line naming the file and the key, exit 2."""

import os

import pytest

from conftest import FIXTURES, run_cli, run_json

BAD = FIXTURES / "python" / "config_writer_bad.py"


@pytest.mark.parametrize("text,expect", [
    ('tool = "x"\n', "tool: expected a table, got a string"),
    ("[tool]\nsyscall-lint = 5\n", "tool.syscall-lint: expected a table, got an integer"),
    ('[tool]\nsyscall-lint = "SCL101"\n', "tool.syscall-lint: expected a table, got a string"),
    ("[tool]\nsyscall-lint = []\n", "tool.syscall-lint: expected a table, got an array"),
    ("[tool.syscall-lint]\nselect = " + "[" * 5000 + "]" * 5000 + "\n", "invalid TOML: nested too deeply"),
    ("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "invalid TOML: nested too deeply"),
    ("[tool.syscall-lint]\nSCL201 = 5\n", "SCL201: expected a table of options for SCL201, got an integer"),
    ("[tool.syscall-lint.SCL201]\nmin-calls = inf\n", "min-calls: expected int"),
    ("[tool.syscall-lint.SCL201]\nmin-calls = 99999999999999999\n", "must be a number from 0 to"),
    ("[tool.syscall-lint]\nstrict = 1\n", "strict: expected true or false"),
    ("[tool.syscall-lint]\nforce-exclude = \"yes\"\n", "force-exclude: expected true or false"),
    ("[tool.syscall-lint]\nselect = [\"NOPE\"]\n", "select: unknown rule code or prefix 'NOPE'"),
])
def test_hostile_config_is_one_line_naming_the_key(tmp_path, text, expect):
    cfg = tmp_path / "lint.toml"
    cfg.write_text(text)
    proc = run_cli("check", "--no-cache", "--config", cfg, BAD)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"syscall-lint: configuration error: {cfg}: ") and expect in line, line


def test_pyproject_of_another_tool_with_a_scalar_tool_key_is_not_ours(tmp_path):
    (tmp_path / "pyproject.toml").write_text('tool = "poetry"\n')
    (tmp_path / "a.py").write_text("x = 1\n")
    assert run_cli("check", "--no-cache", ".", cwd=tmp_path).returncode == 0


def test_undecodable_and_huge_configs(tmp_path):
    cfg = tmp_path / "lint.toml"
    cfg.write_bytes(b"[tool.syscall-lint]\nselect = [\"\xff\"]\n")
    proc = run_cli("check", "--no-cache", "--config", cfg, BAD)
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr
    cfg.write_bytes(b"# " + b"x" * (5 * 1024 * 1024) + b"\n")
    proc = run_cli("check", "--no-cache", "--config", cfg, BAD)
    assert proc.returncode == 2 and "too large" in proc.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_config_that_is_not_a_regular_file_is_refused_at_once(tmp_path, special):
    cfg = tmp_path / "lint.toml"
    if special == "fifo":
        os.mkfifo(cfg)  # opening it for reading would block forever with no writer
    elif os.path.exists(special):
        cfg.symlink_to(special)  # reading it would never end
    else:
        pytest.skip(f"{special} is absent")
    proc = run_cli("check", "--no-cache", "--config", cfg, BAD)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr


def test_unknown_code_on_the_command_line_blames_the_flag(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.syscall-lint]\nignore = []\n")
    (tmp_path / "run.strace").write_text("1 close(3) = 0\n")
    for command in ("trace", "check"):
        proc = run_cli(command, "--select", "NOPE", "run.strace", cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.strip() == "syscall-lint: configuration error: command line: --select: unknown rule code or prefix 'NOPE'"


def test_force_exclude_applies_exclude_to_named_files(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.syscall-lint]\nextend-exclude = ["vendor"]\n')
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "theirs.py").write_text(BAD.read_text())
    (tmp_path / "ours.py").write_text(BAD.read_text())
    # named on the command line, an excluded file is still checked (the user asked for it) ...
    _, doc = run_json("check", "--no-cache", "vendor/theirs.py", "ours.py", cwd=tmp_path)
    assert {f["path"] for f in doc["findings"]} == {"vendor/theirs.py", "ours.py"}
    # ... unless --force-exclude (what the pre-commit hook passes) or force-exclude = true says otherwise
    _, doc = run_json("check", "--no-cache", "--force-exclude", "vendor/theirs.py", "ours.py", cwd=tmp_path)
    assert {f["path"] for f in doc["findings"]} == {"ours.py"}
    (tmp_path / "pyproject.toml").write_text('[tool.syscall-lint]\nextend-exclude = ["vendor"]\nforce-exclude = true\n')
    _, doc = run_json("check", "--no-cache", "vendor/theirs.py", "ours.py", cwd=tmp_path)
    assert {f["path"] for f in doc["findings"]} == {"ours.py"}


def test_statistics_alone_prints_counts_only():
    proc = run_cli("check", "--no-cache", "--statistics", FIXTURES / "python")
    _, doc = run_json("check", "--no-cache", FIXTURES / "python")
    counts = {}
    for f in doc["findings"]:
        counts[(f["code"], f["name"])] = counts.get((f["code"], f["name"]), 0) + 1
    expected = [f"{n:<5} {code} {name}" for (code, name), n in sorted(counts.items())]
    assert proc.stdout.splitlines() == expected and proc.returncode == 1
    explained = run_cli("check", "--no-cache", "--statistics", "--explain", FIXTURES / "python")
    assert explained.stdout.splitlines()[-len(expected):] == expected
    assert sum(1 for line in explained.stdout.splitlines() if " SCL" in line and ".py:" in line) == len(doc["findings"])


def test_a_folder_with_nothing_to_analyse_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here\n")
    for command, what in (("check", "no Python files found under"), ("trace", "no strace logs found under"),
                          ("audit", "no ELF files found under")):
        proc = run_cli(command, tmp_path)
        assert proc.returncode == 0 and proc.stdout == ""
        assert proc.stderr.strip().startswith(f"syscall-lint: warning: {what} {tmp_path}"), (command, proc.stderr)


def test_supported_pythons_are_declared_once_and_tested(root):
    import re
    import sys

    pyproject = (root / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10"' in pyproject
    declared = set(re.findall(r"Programming Language :: Python :: (3\.\d+)", pyproject))
    nox_versions = set(re.findall(r'"(3\.\d+)"', re.search(r"SUPPORTED = \[(.*?)\]", (root / "noxfile.py").read_text()).group(1)))
    assert declared == nox_versions == {"3.10", "3.11", "3.12", "3.13"}
    assert sys.version_info >= (3, 10)
    ci = (root / ".ci" / "run").read_text()
    assert "nox" in ci and all(v in ci for v in ("3.10", "3.11", "3.12", "3.13"))


def test_trace_force_exclude_skips_excluded_logs(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.syscall-lint]\nextend-exclude = ["recordings"]\n')
    (tmp_path / "recordings").mkdir()
    log = tmp_path / "recordings" / "run.strace"
    log.write_text((FIXTURES / "strace" / "careless_replace.strace").read_text())
    assert run_cli("trace", "recordings/run.strace", cwd=tmp_path).returncode == 1
    proc = run_cli("trace", "--force-exclude", "recordings/run.strace", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == ""
