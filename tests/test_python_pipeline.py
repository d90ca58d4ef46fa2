"""The Python pipeline around the rules: the result cache's key and what findings show users."""

import json

from conftest import FIXTURES, run_cli, run_json

BAD = (FIXTURES / "python" / "config_writer_bad.py").read_text()


def test_cache_keys_on_per_file_ignores(tmp_path):
    # Two identical files, one under a per-file-ignore: they must not share a cache entry, even
    # after a touch makes the (path, size, mtime) index miss and the content key is looked up.
    (tmp_path / "pyproject.toml").write_text(
        '[tool.syscall-lint.per-file-ignores]\n"quiet/*" = ["SCL101"]\n')
    (tmp_path / "quiet").mkdir()
    (tmp_path / "loud.py").write_text(BAD)
    (tmp_path / "quiet" / "same.py").write_text(BAD)
    cache = tmp_path / "cache"

    def codes_by_file():
        proc, doc = run_json("check", "--cache-dir", cache, ".", cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stderr
        out = {}
        for f in doc["findings"]:
            out.setdefault(f["path"].replace("\\", "/"), set()).add(f["code"])
        return out

    first = codes_by_file()
    assert "SCL101" in first["loud.py"]
    assert "SCL101" not in first.get("quiet/same.py", set())
    for path in (tmp_path / "loud.py", tmp_path / "quiet" / "same.py"):
        path.write_text(BAD)  # new mtime, same content
    assert codes_by_file() == first
    # and the other way round: a cold cache filled by the quiet file first
    cache2 = tmp_path / "cache2"
    (tmp_path / "loud.py").unlink()
    run_json("check", "--cache-dir", cache2, ".", cwd=tmp_path)
    (tmp_path / "loud.py").write_text(BAD)
    _, doc = run_json("check", "--cache-dir", cache2, ".", cwd=tmp_path)
    assert {f["code"] for f in doc["findings"] if f["path"] == "loud.py"} == first["loud.py"]


def test_autofix_plans_are_not_in_user_evidence(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    _, doc = run_json("check", "--no-cache", "bad.py", cwd=tmp_path)
    assert doc["findings"], "the fixture must produce findings"
    for f in doc["findings"]:
        assert "autofix" not in f and "autofix" not in json.dumps(f["evidence"])
    proc = run_cli("check", "--no-cache", "--format", "sarif", "bad.py", cwd=tmp_path)
    results = json.loads(proc.stdout)["runs"][0]["results"]
    assert proc.returncode == 1 and results
    assert all("autofix" not in json.dumps(r["properties"]["evidence"]) for r in results)


def test_fix_still_applies_its_plans(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    proc = run_cli("check", "--no-cache", "--diff", "--unsafe-fixes", "bad.py", cwd=tmp_path)
    assert "os.fsync" in proc.stdout, proc.stdout + proc.stderr
