#!/usr/bin/env python3
"""`syscall-lint check` on the CPython standard library of this machine and on a Django sdist,
next to flake8 -j2, ruff (`--select ALL`) and Fixit run in this same invocation on the same files;
cold and cached, plus the five-files case that pre-commit passes (five of the heaviest files that
import their own package, so their imports are followed and summarised, as by default).
Every time is wall-clock, with the CPU time of the run (user+sys of the child processes) beside it:
the machine may be shared, and CPU time is what a busy machine changes least.

Each syscall-lint and ruff row is run --repeat times (default 3) in turn and the fastest run counts
(this machine's speed swings by ±20 % from minute to minute); flake8 --flake8-repeat times (default 1:
minutes a run on the stdlib). Every run's time is printed.

Usage: python3 bench/python_bench.py [--django-version 5.2] [--fixit-sample 300] [--skip-django]
                                     [--repeat 3] [--flake8-repeat 1]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


CPU: dict = {}  # the command's wall time -> its CPU time (user+sys of the children)


# As installed: byte-compiled modules may be written (a session that sets PYTHONDONTWRITEBYTECODE
# would otherwise pay ~0.08 s of compiling syscall-lint's modules on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd, cwd=None) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[wall] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def load() -> str:
    """The machine's load average now: wall times are only comparable on a quiet machine."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def cpu(wall: float) -> str:
    return f"(cpu {CPU.get(wall, float('nan')):6.2f} s)"


def ours(paths, cache_dir=None, cwd=None):
    cmd = [sys.executable, "-m", "syscall_lint", "check", "--exit-zero", "--output", os.devnull]
    cmd += ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache"]
    return run(cmd + [str(p) for p in paths], cwd=cwd or ROOT)


def django_tree(version: str, workdir: Path) -> Path | None:
    target = workdir / f"django-{version}"
    if target.exists():
        return target
    dl = workdir / "dl"
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl),
                           f"django=={version}"], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"(could not download the Django {version} sdist: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    (archive,) = dl.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(workdir)
    extracted = next(p for p in workdir.iterdir() if p.is_dir() and p.name.lower().startswith("django-"))
    extracted.rename(target)
    return target


def py_files(root: Path) -> list:
    skip = {"site-packages", "__pycache__"}
    return sorted(p for p in root.rglob("*.py") if not skip & set(p.parts))


def importers(files: list, heavy: bool) -> list:
    """Five files that import from their own package (a relative import), so their imports are
    followed and summarised: the five biggest (a heavy pre-commit call), or five around the median
    size (a typical one)."""
    relative = re.compile(rb"^[ \t]*from[ \t]+\.", re.M)
    importing = sorted((p for p in files if relative.search(p.read_bytes())), key=lambda p: -p.stat().st_size)
    if not importing:
        return files[:5]
    middle = max(0, len(importing) // 2 - 2)
    return importing[:5] if heavy else importing[middle:middle + 5]


def fastest(measure, times: int) -> tuple:
    """(fastest wall time, every run's) of `times` runs of measure(): this machine's speed swings
    by ±20 % from one minute to the next, and the fastest run is the one least disturbed."""
    runs = [measure() for _ in range(max(1, times))]
    return min(runs), runs


def _runs(runs: list) -> str:
    return "" if len(runs) < 2 else f" [runs: {', '.join(f'{r:.2f}' for r in runs)}]"


def bench(name: str, root: Path, fixit_sample: int, workdir: Path, repeat: int = 3, flake8_repeat: int = 1) -> None:
    files = py_files(root)
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    print(f"\n== {name}: {len(files):,} files, {lines:,} lines ({root}); {load()}")
    listing = workdir / f"{name}.files"
    listing.write_text("\n".join(map(str, files)))
    cache = workdir / f"{name}-cache"
    shutil.rmtree(cache, ignore_errors=True)
    # each tool's cold and cached runs, `repeat` times in turn (flake8: `flake8_repeat`, minutes a
    # run on the stdlib); the fastest of each is compared
    ruff = shutil.which("ruff")
    rcache = workdir / f"{name}-ruff-cache"
    colds, cacheds, ruffs, ruff_cacheds = [], [], [], []
    t_cached_first = None
    for _ in range(max(1, repeat)):
        colds.append(ours([root]))
        shutil.rmtree(cache, ignore_errors=True)
        first = ours([root], cache)  # fills the cache
        t_cached_first = first if t_cached_first is None else min(t_cached_first, first)
        cacheds.append(ours([root], cache))
        if ruff:
            ruffs.append(run([ruff, "check", "--no-cache", "--exit-zero", "--quiet", "--select", "ALL", str(root)]))
            # ruff's cached run with its default rules: with --select ALL its second run re-lints
            # (measured 26 s against 16 s cold on the stdlib), which would flatter the comparison
            shutil.rmtree(rcache, ignore_errors=True)
            run([ruff, "check", "--cache-dir", str(rcache), "--exit-zero", "--quiet", str(root)])
            ruff_cacheds.append(run([ruff, "check", "--cache-dir", str(rcache), "--exit-zero", "--quiet", str(root)]))
    t_flake8, flake8s = fastest(lambda: run([sys.executable, "-m", "flake8", "-j2", "--exit-zero", "--output-file",
                                             os.devnull, str(root)]), flake8_repeat)
    t_cold, t_cached = min(colds), min(cacheds)
    print(f"syscall-lint cold (all rules)   {t_cold:7.2f} s {cpu(t_cold)} {len(files) / t_cold:8.0f} files/s"
          f"{_runs(colds)}")
    print(f"syscall-lint cached, no change  {t_cached:7.2f} s {cpu(t_cached)} {len(files) / t_cached:8.0f} files/s "
          f"(first cached run {t_cached_first:.2f} s){_runs(cacheds)}")
    print(f"flake8 -j2                      {t_flake8:7.2f} s {cpu(t_flake8)} → syscall-lint cold is "
          f"{t_flake8 / t_cold:.1f}x faster (goal ≥ 10x){_runs(flake8s)}")
    if ruff:
        t_ruff, t_ruff_cached = min(ruffs), min(ruff_cacheds)
        print(f"ruff (no cache, --select ALL)   {t_ruff:7.2f} s {cpu(t_ruff)} → ratio syscall-lint/ruff "
              f"{t_cold / t_ruff:.2f} (goal ≤ 2){_runs(ruffs)}")
        print(f"ruff cached (default rules)     {t_ruff_cached:7.2f} s {cpu(t_ruff_cached)} → syscall-lint cached / "
              f"ruff cached = {t_cached / t_ruff_cached:.2f} (goal ≤ 1.5){_runs(ruff_cacheds)}")
    fixit = shutil.which("fixit")
    if fixit and fixit_sample:
        rng = random.Random(42)
        # Fixit skips files under some paths (site/stdlib trees): lint copies in a plain folder, both tools
        sample_dir = workdir / f"{name}-fixit-sample"
        shutil.rmtree(sample_dir, ignore_errors=True)
        sample_dir.mkdir()
        sample = []
        for i, src in enumerate(sorted(rng.sample(files, min(fixit_sample, len(files))))):
            dst = sample_dir / f"{i:04d}_{src.name}"
            shutil.copy(src, dst)
            sample.append(dst)
        t0 = time.perf_counter()
        proc = subprocess.run([fixit, "lint", *map(str, sample)], capture_output=True, text=True, cwd=sample_dir)
        t_fixit = time.perf_counter() - t0
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
        print(f"  (Fixit said: {tail[0][:100]})")
        t_ours_sample = ours(sample)
        print(f"Fixit on a {len(sample)}-file sample   {t_fixit:7.2f} s; syscall-lint cold on the same files "
              f"{t_ours_sample:.2f} s → {t_fixit / t_ours_sample:.1f}x faster (goal ≥ 20x)")
    ours([root / "__init__.py"] if (root / "__init__.py").exists() else files[:1])  # byte-compile ourselves once
    for label, heavy in (("five typical files", False), ("five heaviest files", True)):
        five = importers(files, heavy)
        t_five = min(ours(five) for _ in range(3))
        size = sum(p.stat().st_size for p in five) // 1024
        print(f"{label:<32}{t_five:7.2f} s {cpu(t_five)} (goal < 0.5 s; pre-commit's case, imports followed): "
              f"{', '.join(p.name for p in five)}, {size} KiB")
    print(f"(at the end: {load()})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--django-version", default="5.2")
    ap.add_argument("--fixit-sample", type=int, default=300)
    ap.add_argument("--skip-django", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each syscall-lint and ruff row, in turn; the fastest counts")
    ap.add_argument("--flake8-repeat", type=int, default=1, help="runs of flake8 (minutes each on the stdlib)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "syscall-lint-bench"))
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bench("stdlib", Path(sysconfig.get_paths()["stdlib"]), args.fixit_sample, workdir, args.repeat, args.flake8_repeat)
    if not args.skip_django:
        tree = django_tree(args.django_version, workdir)
        if tree is not None:
            bench("django", tree, args.fixit_sample, workdir, args.repeat, args.flake8_repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
