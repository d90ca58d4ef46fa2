"""The fuzz campaign's driver: run batches of generated inputs through the real CLI and judge them.

A batch is one `python3 -m syscall_lint SUBCOMMAND --format json PATH...` process. It fails when the
process hangs (no exit before the timeout), exits outside 0/1/2, prints a Python traceback, writes
stdout that is not the contract's JSON, reports more than one error for one input, or peaks above
the memory bound. A failing batch is bisected down to the inputs that fail on their own.

Kinds live in `kinds/<kind>.py` (see kinds/__init__.py for the interface).
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
KINDS_DIR = HERE / "kinds"

# Generous on purpose: the point is "bounded", not "small". Tighter bounds belong in unit tests.
DEFAULT_MEMORY_BOUND_MB = 1024
# The address-space cap keeps a runaway child from taking the machine down with it; it is far above
# the bound, so hitting it is reported as a memory failure, not mistaken for a crash elsewhere.
ADDRESS_SPACE_CAP_MB = 6144


@dataclass
class ProcessOutcome:
    returncode: Optional[int]  # None when it was killed for running past the timeout
    timed_out: bool
    stdout: bytes
    stderr: bytes
    peak_rss_kb: int
    seconds: float


@dataclass
class BatchOutcome:
    problem: Optional[str]  # None when the batch held; else hang | exit N | traceback | bad-json | ...
    detail: str = ""
    peak_rss_kb: int = 0
    seconds: float = 0.0


@dataclass
class Failure:
    kind: str
    inputs: List[Path]  # one input when bisection isolated it; the smallest failing batch otherwise
    problem: str
    detail: str


@dataclass
class CampaignResult:
    kind: str
    inputs: int = 0
    batches: int = 0
    failures: List[Failure] = field(default_factory=list)
    peak_rss_kb: int = 0
    seconds: float = 0.0
    findings: int = 0
    errors: int = 0

    def count(self, problem_prefix: str) -> int:
        return sum(1 for f in self.failures if f.problem.startswith(problem_prefix))

    def summary(self) -> dict:
        return {
            "kind": self.kind, "inputs": self.inputs, "batches": self.batches,
            "tracebacks": self.count("traceback"), "hangs": self.count("hang"),
            "bad_exits": self.count("exit"), "memory": self.count("memory"),
            "other_failures": sum(1 for f in self.failures
                                  if not f.problem.startswith(("traceback", "hang", "exit", "memory"))),
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1), "seconds": round(self.seconds, 1),
            "findings": self.findings, "input_errors": self.errors,
        }


def load_kind(name: str):
    path = KINDS_DIR / f"{name}.py"
    if not path.is_file():
        raise SystemExit(f"fuzz: no kind {name!r} (have: {', '.join(available_kinds())})")
    spec = importlib.util.spec_from_file_location(f"fuzz_kind_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def available_kinds() -> List[str]:
    return sorted(p.stem for p in KINDS_DIR.glob("*.py") if not p.stem.startswith("_"))


def _limit_child() -> None:
    os.setsid()
    cap = ADDRESS_SPACE_CAP_MB * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ValueError, OSError):
        pass


def run_process(argv: Sequence[str], timeout: float, stdin_path: Optional[Path] = None,
                cwd: Optional[Path] = None, env: Optional[dict] = None) -> ProcessOutcome:
    """Run argv with its output in temporary files (no pipe can fill up), measuring its own peak RSS."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        try:
            start = time.monotonic()
            proc = subprocess.Popen(list(argv), stdin=stdin, stdout=out, stderr=err, cwd=cwd or ROOT,
                                    env=full_env, preexec_fn=_limit_child)
        finally:
            if stdin_path:
                stdin.close()
        deadline = start + timeout
        timed_out = False
        status = rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from reaping it again
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return ProcessOutcome(None if timed_out else proc.returncode, timed_out, out.read(), err.read(),
                              rusage.ru_maxrss, seconds)


def judge(outcome: ProcessOutcome, paths: Sequence[Path], memory_bound_mb: int,
          expect_json: bool = True) -> BatchOutcome:
    """Whether one run of the CLI held up, and if not, how it failed."""
    base = dict(peak_rss_kb=outcome.peak_rss_kb, seconds=outcome.seconds)
    tail = outcome.stderr.decode("utf-8", "replace")[-2000:]
    if outcome.timed_out:
        return BatchOutcome("hang", f"no exit after {outcome.seconds:.0f} s", **base)
    if b"Traceback (most recent call last)" in outcome.stderr:
        return BatchOutcome("traceback", tail, **base)
    if outcome.returncode not in (0, 1, 2):
        return BatchOutcome(f"exit {outcome.returncode}", tail, **base)
    if outcome.peak_rss_kb > memory_bound_mb * 1024:
        return BatchOutcome("memory", f"peak RSS {outcome.peak_rss_kb // 1024} MiB > {memory_bound_mb} MiB", **base)
    if not expect_json:
        return BatchOutcome(None, **base)
    try:
        doc = json.loads(outcome.stdout)
    except ValueError as exc:
        return BatchOutcome("bad-json", f"{exc}; stderr: {tail}", **base)
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list) or not isinstance(doc.get("errors"), list):
        return BatchOutcome("bad-json", "stdout is not the contract's object", **base)
    per_path: dict = {}
    for error in doc["errors"]:
        if "internal error" in str(error.get("message", "")):  # a bug of ours caught and reported
            return BatchOutcome("traceback (caught internal error)", str(error)[:500], **base)
        per_path[error.get("path")] = per_path.get(error.get("path"), 0) + 1
        if "\n" in str(error.get("message", "")):
            return BatchOutcome("multi-line-error", str(error)[:500], **base)
    doubled = [p for p, n in per_path.items() if n > 1]
    if doubled:
        return BatchOutcome("errors-per-input", f"{doubled[0]!r} got {per_path[doubled[0]]} errors", **base)
    if doc["errors"] and outcome.returncode != 2:
        return BatchOutcome(f"exit {outcome.returncode}", "input errors but the exit status is not 2", **base)
    return BatchOutcome(None, **base)


class Runner:
    """Runs one kind's batches: the CLI by default, or the kind's own `run_batch`."""

    def __init__(self, kind_module, timeout: float, memory_bound_mb: int):
        self.kind = kind_module
        self.timeout = timeout
        self.memory_bound_mb = memory_bound_mb
        self.last_doc_counts = (0, 0)

    def __call__(self, paths: Sequence[Path]) -> BatchOutcome:
        custom: Optional[Callable] = getattr(self.kind, "run_batch", None)
        if custom is not None:
            result = custom(list(paths), self.timeout)
            return BatchOutcome(result.problem, getattr(result, "detail", ""),
                                getattr(result, "peak_rss_kb", 0), getattr(result, "seconds", 0.0))
        argv = [sys.executable, "-m", "syscall_lint", *self.kind.SUBCOMMAND, "--format", "json",
                *[str(p) for p in paths]]
        outcome = run_process(argv, self.timeout)
        verdict = judge(outcome, paths, self.memory_bound_mb)
        if verdict.problem is None:
            try:
                doc = json.loads(outcome.stdout)
                self.last_doc_counts = (len(doc["findings"]), len(doc["errors"]))
            except (ValueError, KeyError, TypeError):
                self.last_doc_counts = (0, 0)
        return verdict


def bisect(run: Callable[[Sequence[Path]], BatchOutcome], paths: List[Path], outcome: BatchOutcome,
           kind: str) -> List[Failure]:
    """Split a failing batch until each failure is pinned to the inputs that fail on their own."""
    if len(paths) == 1:
        return [Failure(kind, paths, outcome.problem, outcome.detail)]
    half = len(paths) // 2
    found: List[Failure] = []
    for part in (paths[:half], paths[half:]):
        result = run(part)
        if result.problem:
            found.extend(bisect(run, part, result, kind))
    # The whole failed but neither half did: the failure needs inputs together (memory, say).
    return found or [Failure(kind, paths, outcome.problem, outcome.detail)]


def campaign(kind_name: str, count: int, batch_size: int = 150, seed: int = 1, timeout: float = 120.0,
             memory_bound_mb: int = DEFAULT_MEMORY_BOUND_MB, workdir: Optional[Path] = None,
             save_dir: Optional[Path] = None, progress: Optional[Callable[[str], None]] = None) -> CampaignResult:
    import random
    import shutil

    kind = load_kind(kind_name)
    batch_size = getattr(kind, "BATCH_SIZE", batch_size)
    runner = Runner(kind, timeout, memory_bound_mb)
    result = CampaignResult(kind_name)
    started = time.monotonic()
    own_dir = workdir is None
    base = Path(tempfile.mkdtemp(prefix=f"scl-fuzz-{kind_name}-")) if own_dir else workdir
    try:
        for first in range(0, count, batch_size):
            batch_dir = base / f"batch{first:07d}"
            batch_dir.mkdir(parents=True, exist_ok=True)
            paths = []
            for index in range(first, min(count, first + batch_size)):
                rng = random.Random(f"{seed}:{kind_name}:{index}")
                paths.append(kind.generate(rng, index, batch_dir))
            outcome = runner(paths)
            result.batches += 1
            result.inputs += len(paths)
            result.peak_rss_kb = max(result.peak_rss_kb, outcome.peak_rss_kb)
            if outcome.problem:
                failures = bisect(runner, paths, outcome, kind_name)
                result.failures.extend(failures)
                if save_dir is not None:
                    _save(failures, save_dir / kind_name)
            else:
                findings, errors = runner.last_doc_counts
                result.findings += findings
                result.errors += errors
            if progress:
                progress(f"{kind_name}: {result.inputs}/{count} inputs, {len(result.failures)} failures, "
                         f"peak {result.peak_rss_kb // 1024} MiB")
            shutil.rmtree(batch_dir, ignore_errors=True)
    finally:
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


def _save(failures: List[Failure], into: Path) -> None:
    import shutil

    into.mkdir(parents=True, exist_ok=True)
    for failure in failures:
        for path in failure.inputs:
            if path.is_file() and not path.is_symlink():
                shutil.copyfile(path, into / path.name)
        (into / f"{failure.inputs[0].name}.why").write_text(f"{failure.problem}\n{failure.detail}\n")
