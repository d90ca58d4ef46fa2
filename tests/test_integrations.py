"""Where users meet it: flake8, pre-commit, SARIF/GitHub/GitLab/JUnit, baselines, --fix (the LSP: test_lsp.py)."""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import FIXTURES, GIT_IDENTITY, PYTHON_MARKS, ROOT, network_available, run_cli, run_json

# The public OASIS schema, vendored so the test runs in any clone.
SCHEMA = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"


def test_flake8_loads_the_plugin_and_agrees_with_check():
    proc = subprocess.run([sys.executable, "-m", "flake8", "--select", "SCL", "--format",
                           "%(path)s:%(row)d:%(col)d:%(code)s", str(FIXTURES / "python")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    found = run_json("check", "--no-cache", FIXTURES / "python")[1]["findings"]
    assert {(Path(f["path"]).name, f["line"], f["code"]) for f in found} == PYTHON_MARKS
    ours = {(f["path"], f["line"], f["column"], f["code"]) for f in found}
    theirs = set()
    for line in proc.stdout.splitlines():
        path, row, col, code = line.rsplit(":", 3)
        theirs.add((path, int(row), int(col), code))
    assert theirs == ours


def test_flake8_honours_noqa_like_check(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("import os\ndef f(p):\n    with open('t.tmp', 'w') as fh:\n        fh.write('x')\n"
                   "    os.replace('t.tmp', p)  # noqa: SCL101\n")
    proc = subprocess.run([sys.executable, "-m", "flake8", "--select", "SCL", str(src)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == ""


@pytest.mark.network
@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
@pytest.mark.skipif(not network_available(), reason="no network: pre-commit installs the hook's dependencies from PyPI")
def test_pre_commit_hook_in_a_temporary_repository(tmp_path):
    pytest.importorskip("pre_commit")
    repo = tmp_path / "project"
    repo.mkdir()
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pc-home"), **GIT_IDENTITY)
    shutil.copy(FIXTURES / "python" / "config_writer_bad.py", repo / "bad.py")
    shutil.copy(FIXTURES / "python" / "config_writer_good.py", repo / "good.py")
    # vendored code is excluded by the project's configuration: the hook must honour that even
    # though pre-commit names the file (--force-exclude in .pre-commit-hooks.yaml)
    (repo / "vendor").mkdir()
    shutil.copy(FIXTURES / "python" / "config_writer_bad.py", repo / "vendor" / "theirs.py")
    (repo / "pyproject.toml").write_text('[tool.syscall-lint]\nextend-exclude = ["vendor"]\n')
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)

    def hook(*files):
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "syscall-lint",
                               "--files", *files], cwd=repo, capture_output=True, text=True, env=env, timeout=900)

    bad = hook("bad.py")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "SCL101" in bad.stdout and "Failed" in bad.stdout
    good = hook("good.py")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout
    vendored = hook("vendor/theirs.py")
    assert vendored.returncode == 0 and "SCL101" not in vendored.stdout, vendored.stdout + vendored.stderr


def _sarif_for(*args):
    proc = run_cli(*args, "--format", "sarif")
    return json.loads(proc.stdout)


def test_sarif_validates_against_the_schema_for_every_source():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    docs = [
        _sarif_for("check", "--no-cache", "fixtures/python"),
        _sarif_for("trace", "fixtures/strace/careless_replace.strace", "fixtures/strace/http_server.strace"),
        _sarif_for("audit", "fixtures/elf/x86_64", "fixtures/elf/aarch64/spin_volatile"),
    ]
    for doc, source in zip(docs, ("python", "strace", "elf")):
        jsonschema.validate(doc, schema)
        (run,) = doc["runs"]
        assert run["automationDetails"]["id"] == f"syscall-lint/{source}/"
        assert run["results"], source
        rules = run["tool"]["driver"]["rules"]
        assert all(r["help"]["markdown"] and r["helpUri"] and r["fullDescription"]["text"] for r in rules)
        for result in run["results"]:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            assert ":" in result["partialFingerprints"]["primaryLocationLineHash"]
            uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            assert uri.startswith("fixtures/") and not uri.startswith("/")
    region = docs[0]["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region["endColumn"] > region["startColumn"]


def test_sarif_end_column_is_exclusive():
    doc = _sarif_for("check", "--no-cache", "fixtures/python/config_writer_bad.py")
    result = next(r for r in doc["runs"][0]["results"] if r["ruleId"] == "SCL101")
    region = result["locations"][0]["physicalLocation"]["region"]
    line = (FIXTURES / "python" / "config_writer_bad.py").read_text().splitlines()[region["startLine"] - 1]
    assert line[region["startColumn"] - 1:region["endColumn"] - 1] == "os.replace(tmp_path, self.path)"


def test_github_format_escapes(tmp_path):
    from syscall_lint.output.github import escape_data, escape_property

    assert escape_data("50% a\r\nb") == "50%25 a%0D%0Ab"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    weird = tmp_path / "we,ird:name.py"
    shutil.copy(FIXTURES / "python" / "line_logger.py", weird)
    proc = run_cli("check", "--no-cache", "--format", "github", weird)
    lines = proc.stdout.splitlines()
    assert lines and all(l.startswith("::warning file=") for l in lines)
    assert "we%2Cird%3Aname.py,line=13,endLine=13,col=13," in lines[0]
    assert "title=SCL201 unbatched-writes::" in lines[0]


def test_gitlab_fingerprints_count_repeated_lines_and_keep_unique_ones(tmp_path):
    """Two loops with the same line text in one file are two GitLab issues, not one; a finding
    whose text is unique keeps the fingerprint it had before occurrences were counted."""
    import hashlib

    src = tmp_path / "twice.py"
    src.write_text("import os\n\ndef a(fd, rs):\n    for r in rs:\n        os.write(fd, r)\n\n"
                   "def b(fd, rs):\n    for r in rs:\n        os.write(fd, r)\n")
    issues = json.loads(run_cli("check", "--no-cache", "--format", "gitlab", src).stdout)
    assert [i["location"]["lines"]["begin"] for i in issues] == [5, 9]
    first, second = (i["fingerprint"] for i in issues)
    assert first != second
    text = "os.write(fd, r)"
    assert first == hashlib.sha256(f"{issues[0]['location']['path']}\0SCL201\0{text}".encode()).hexdigest()


def test_gitlab_and_junit_formats():
    proc = run_cli("check", "--no-cache", "--format", "gitlab", "fixtures/python")
    issues = json.loads(proc.stdout)
    assert {(Path(i["location"]["path"]).name, i["location"]["lines"]["begin"], i["check_name"].split()[0]) for i in issues} \
        == PYTHON_MARKS
    assert len({i["fingerprint"] for i in issues}) == len(PYTHON_MARKS)
    proc = run_cli("check", "--no-cache", "--format", "junit", "fixtures/python")
    suite = ET.fromstring(proc.stdout).find("testsuite")
    assert suite.get("failures") == str(len(PYTHON_MARKS)) and len(suite.findall("testcase/failure")) == len(PYTHON_MARKS)


def test_baseline_makes_the_next_run_clean_and_new_problems_still_fail(tmp_path):
    work = tmp_path / "legacy"
    shutil.copytree(FIXTURES / "python", work)
    baseline = tmp_path / "baseline.json"
    proc = run_cli("check", "--no-cache", "--write-baseline", baseline, ".", cwd=work)
    # adopting a baseline is not a failing lint run: it says what it wrote and exits 0
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert f"wrote {len(PYTHON_MARKS)} findings" in proc.stderr and baseline.is_file()
    assert run_cli("check", "--no-cache", "--baseline", baseline, ".", cwd=work).returncode == 0
    # unrelated edits move every line: the baseline still holds
    target = work / "config_writer_bad.py"
    target.write_text("# a new header comment\n\n" + target.read_text())
    assert run_cli("check", "--no-cache", "--baseline", baseline, ".", cwd=work).returncode == 0
    # a newly planted problem fails
    (work / "new.py").write_text("import os\n\ndef f(fd, rows):\n    for r in rows:\n        os.write(fd, r)\n")
    proc, doc = run_json("check", "--no-cache", "--baseline", baseline, ".", cwd=work)
    assert proc.returncode == 1 and [(f["path"], f["code"]) for f in doc["findings"]] == [("new.py", "SCL201")]
    assert run_cli("check", "--baseline", tmp_path / "missing.json", ".", cwd=work).returncode == 2


def test_baseline_paths_are_relative_to_the_project_root(tmp_path):
    project = tmp_path / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    shutil.copy(FIXTURES / "python" / "line_logger.py", project / "pkg" / "w.py")
    baseline = project / "baseline.json"
    # written with a relative path from inside a subfolder ...
    assert run_cli("check", "--no-cache", "--write-baseline", baseline, "w.py", cwd=project / "pkg").returncode == 0
    paths = {e["path"] for e in json.loads(baseline.read_text())["entries"]}
    assert paths == {"pkg/w.py"}
    # ... it matches the same file named absolutely, relatively, or from the root
    for cwd, arg in ((tmp_path, project / "pkg" / "w.py"), (project, "pkg/w.py"), (project / "pkg", "./w.py")):
        proc = run_cli("check", "--no-cache", "--baseline", baseline, arg, cwd=cwd)
        assert proc.returncode == 0, (cwd, arg, proc.stdout)


def test_write_baseline_and_output_create_missing_folders(tmp_path):
    report = tmp_path / "reports" / "deep" / "lint.json"
    proc = run_cli("check", "--no-cache", "--format", "json", "--output", report, FIXTURES / "python")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert {(Path(f["path"]).name, f["line"], f["code"]) for f in json.loads(report.read_text())["findings"]} == PYTHON_MARKS
    baseline = tmp_path / "b" / "c" / "baseline.json"
    assert run_cli("check", "--no-cache", "--write-baseline", baseline, FIXTURES / "python").returncode == 0
    assert baseline.is_file()
    blocked = tmp_path / "file"
    blocked.write_text("")
    proc = run_cli("check", "--no-cache", "--output", blocked / "x.json", FIXTURES / "python")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"syscall-lint: error: {blocked / 'x.json'}: cannot write")


def test_fix_makes_the_fixtures_pass_and_is_idempotent(tmp_path):
    work = tmp_path / "code"
    shutil.copytree(FIXTURES / "python", work)
    before = run_json("check", "--no-cache", "--select", "SCL1", ".", cwd=work)[1]["findings"]
    assert {f["code"] for f in before} == {"SCL101", "SCL102", "SCL106"}
    # safe fixes only: SCL106
    run_cli("check", "--no-cache", "--fix", ".", cwd=work)
    after_safe = run_json("check", "--no-cache", "--select", "SCL1", ".", cwd=work)[1]["findings"]
    assert "SCL106" not in {f["code"] for f in after_safe} and "SCL101" in {f["code"] for f in after_safe}
    run_cli("check", "--no-cache", "--fix", "--unsafe-fixes", ".", cwd=work)
    proc, doc = run_json("check", "--no-cache", "--select", "SCL1", ".", cwd=work)
    assert doc["findings"] == [] and proc.returncode == 0
    snapshot = {p.name: p.read_text() for p in work.glob("*.py")}
    diff = run_cli("check", "--no-cache", "--diff", "--unsafe-fixes", ".", cwd=work)
    assert diff.stdout == "" and diff.returncode == 0
    run_cli("check", "--no-cache", "--fix", "--unsafe-fixes", ".", cwd=work)
    assert {p.name: p.read_text() for p in work.glob("*.py")} == snapshot
    for path in work.glob("*.py"):
        compile(path.read_text(), str(path), "exec")
    # comments and formatting survive
    assert "# expect: SCL101" in snapshot["config_writer_bad.py"]


def test_diff_previews_without_writing(tmp_path):
    target = tmp_path / "w.py"
    original = (FIXTURES / "python" / "config_writer_bad.py").read_text()
    target.write_text(original)
    proc = run_cli("check", "--no-cache", "--diff", target)
    assert "+            tmp.flush()" in proc.stdout and proc.returncode == 1
    assert target.read_text() == original
