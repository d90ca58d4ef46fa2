"""What the README tells a new user to copy must work."""

import re
import shutil
import subprocess

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert commands[0].startswith("python3 -m pip install . && python3 -m syscall_lint check fixtures/python")
    assert commands[1] == 'python3 -m pip install -e ".[test]" && python3 -m pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci  # CI runs exactly the README's test command


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_pre_commit_example_pins_a_rev_that_exists():
    revs = re.findall(r"^\s*rev:\s*(\S+)", README, re.M)
    assert revs, "the README's pre-commit example has no rev"
    for rev in revs:
        proc = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True, timeout=30)
        if proc.returncode != 0 and subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT,
                                                   capture_output=True, text=True, timeout=30).stdout.strip() == "true":
            pytest.skip("a shallow clone does not hold the pinned commit")
        assert proc.returncode == 0, f"rev {rev} is not a commit of this repository"
