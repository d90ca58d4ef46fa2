#!/usr/bin/env python3
"""`syscall-lint check` on the CPython standard library of this machine and on a Django sdist,
next to flake8 -j2, ruff and Fixit run in this same invocation on the same files; cold and cached,
plus the five-files case that pre-commit passes.

Usage: python3 bench/python_bench.py [--django-version 5.2] [--fixit-sample 300] [--skip-django]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, cwd=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


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


def bench(name: str, root: Path, fixit_sample: int, workdir: Path) -> None:
    files = py_files(root)
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    print(f"\n== {name}: {len(files):,} files, {lines:,} lines ({root})")
    listing = workdir / f"{name}.files"
    listing.write_text("\n".join(map(str, files)))
    cache = workdir / f"{name}-cache"
    shutil.rmtree(cache, ignore_errors=True)
    t_cold = ours([root])
    t_cached_first = ours([root], cache)  # fills the cache
    t_cached = ours([root], cache)
    t_flake8 = run([sys.executable, "-m", "flake8", "-j2", "--exit-zero", "--output-file", os.devnull, str(root)])
    ruff = shutil.which("ruff")
    t_ruff = t_ruff_cached = None
    if ruff:
        rcache = workdir / f"{name}-ruff-cache"
        shutil.rmtree(rcache, ignore_errors=True)
        t_ruff = run([ruff, "check", "--no-cache", "--exit-zero", "--quiet", "--select", "ALL", str(root)])
        run([ruff, "check", "--cache-dir", str(rcache), "--exit-zero", "--quiet", str(root)])
        t_ruff_cached = run([ruff, "check", "--cache-dir", str(rcache), "--exit-zero", "--quiet", str(root)])
    print(f"syscall-lint cold (all rules)   {t_cold:7.2f} s  {len(files) / t_cold:8.0f} files/s")
    print(f"syscall-lint cached, no change  {t_cached:7.2f} s  {len(files) / t_cached:8.0f} files/s "
          f"(first cached run {t_cached_first:.2f} s)")
    print(f"flake8 -j2                      {t_flake8:7.2f} s  → syscall-lint cold is {t_flake8 / t_cold:.1f}x faster "
          f"(goal ≥ 10x)")
    if ruff:
        print(f"ruff (no cache, --select ALL)   {t_ruff:7.2f} s  → ratio syscall-lint/ruff {t_cold / t_ruff:.1f}")
        print(f"ruff cached                     {t_ruff_cached:7.2f} s  → syscall-lint cached / ruff cached = "
              f"{t_cached / t_ruff_cached:.2f} (goal ≤ 1.5)")
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
    five = files[:5]
    t_five = min(ours(five) for _ in range(3))
    print(f"five files (pre-commit's case)  {t_five:7.2f} s (goal < 0.5 s)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--django-version", default="5.2")
    ap.add_argument("--fixit-sample", type=int, default=300)
    ap.add_argument("--skip-django", action="store_true")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "syscall-lint-bench"))
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bench("stdlib", Path(sysconfig.get_paths()["stdlib"]), args.fixit_sample, workdir)
    if not args.skip_django:
        tree = django_tree(args.django_version, workdir)
        if tree is not None:
            bench("django", tree, args.fixit_sample, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
