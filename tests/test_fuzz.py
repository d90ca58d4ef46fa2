"""The fuzz campaign at a small size, in every test run (the full campaign is bench/fuzz/run.py).

Also tests the driver itself: it must see each kind of failure and bisect a batch down to the input.
"""

import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench" / "fuzz"))

import driver  # noqa: E402

pytestmark = pytest.mark.fuzz
SMALL = 60  # inputs per kind per test run; CI cost stays in seconds, the seed changes the inputs


@pytest.mark.parametrize("kind", driver.available_kinds())
def test_small_campaign_holds(kind, tmp_path):
    result = driver.campaign(kind, SMALL, batch_size=30, seed="ci", timeout=240, workdir=tmp_path,
                             save_dir=None)
    assert result.inputs == SMALL
    problems = [(f.problem, [p.name for p in f.inputs], f.detail[-300:]) for f in result.failures]
    assert problems == []


def _outcome(**kw):
    base = dict(returncode=0, timed_out=False, stdout=b'{"findings": [], "errors": []}', stderr=b"",
                peak_rss_kb=1000, seconds=0.1)
    base.update(kw)
    return driver.ProcessOutcome(**base)


@pytest.mark.parametrize("outcome,problem", [
    (_outcome(), None),
    (_outcome(timed_out=True, returncode=None), "hang"),
    (_outcome(returncode=1, stderr=b"Traceback (most recent call last):\n  File"), "traceback"),
    (_outcome(returncode=-9), "exit -9"),
    (_outcome(peak_rss_kb=5 * 1024 * 1024), "memory"),
    (_outcome(stdout=b"not json"), "bad-json"),
    (_outcome(returncode=2, stdout=b'{"findings": [], "errors": [{"path": "a", "message": "x"},'
                                   b' {"path": "a", "message": "y"}]}'), "errors-per-input"),
    (_outcome(returncode=1, stdout=b'{"findings": [], "errors": [{"path": "a", "message": "x"}]}'), "exit 1"),
    (_outcome(returncode=2, stdout=b'{"findings": [], "errors": [{"path": "a", "message": "internal error: boom"}]}'),
     "traceback (caught internal error)"),
])
def test_driver_judges_each_kind_of_failure(outcome, problem):
    assert driver.judge(outcome, [Path("a")], memory_bound_mb=1024).problem == problem


def test_driver_bisects_a_batch_to_the_failing_inputs():
    paths = [Path(f"in{i}") for i in range(37)]
    bad = {Path("in5"), Path("in30")}
    calls = []

    def run(batch):
        calls.append(len(batch))
        return driver.BatchOutcome("traceback" if bad & set(batch) else None, "boom")

    failures = driver.bisect(run, paths, run(paths), "demo")
    assert sorted(f.inputs[0] for f in failures) == sorted(bad)
    assert all(len(f.inputs) == 1 for f in failures)
    assert len(calls) < len(paths)  # bisection, not one run per input


def test_driver_reports_a_failure_that_needs_inputs_together():
    paths = [Path("a"), Path("b")]

    def run(batch):  # fails only when both are in the same process (memory, say)
        return driver.BatchOutcome("memory" if len(batch) == 2 else None, "too much")

    failures = driver.bisect(run, paths, run(paths), "demo")
    assert [(f.problem, f.inputs) for f in failures] == [("memory", paths)]


def test_run_process_kills_a_hang_and_measures_memory():
    hang = driver.run_process([sys.executable, "-c", "import time; time.sleep(60)"], timeout=1)
    assert hang.timed_out and hang.returncode is None
    big = driver.run_process([sys.executable, "-c", "x = bytearray(80 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"],
                             timeout=60)
    assert big.returncode == 0 and big.peak_rss_kb > 80 * 1024
