#!/usr/bin/env python3
"""Fetch the issue-10 corpus: every package in packages.toml, downloaded and extracted, never installed
and never executed.

For each package: `apt-get download NAME:ARCH=VERSION` (falling back to the pool URL on deb.debian.org
when the archive has moved on to a newer version), check the .deb's sha256 against packages.toml, and
`dpkg-deb -x` it into CACHE/root/NAME_ARCH/. A package already extracted from the pinned sha256 is
skipped, so running this twice does nothing the second time.

CACHE is $SYSCALL_LINT_ELF_CORPUS_DIR, or bench/elf_corpus/.cache (git-ignored).

arm64 packages need the foreign architecture in apt's lists: as root this script runs
`dpkg --add-architecture arm64 && apt-get update` when arm64 is missing; otherwise run those two
commands yourself (the .debs are only unpacked, nothing of arm64 is installed).

Usage: python3 bench/elf_corpus/fetch.py [--only NAME[,NAME...]] [--arch amd64|arm64] [--group G]
Exit status: 0 all present, 1 some package failed (one line each on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from syscall_lint._toml import toml  # noqa: E402

POOLS = ("http://deb.debian.org/debian/", "http://deb.debian.org/debian-security/")
TIMEOUT = 300


def cache_dir() -> Path:
    return Path(os.environ.get("SYSCALL_LINT_ELF_CORPUS_DIR") or HERE / ".cache")


def load_packages(path: Path = HERE / "packages.toml") -> list[dict]:
    with open(path, "rb") as fh:
        return toml.load(fh)["package"]


def root_of(pkg: dict, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "root" / f"{pkg['name']}_{pkg['architecture']}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_arch(arch: str) -> None:
    native = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    if arch == native:
        return
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout.split()
    if arch in foreign:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"fetch: {arch} is not a dpkg architecture here; run `dpkg --add-architecture {arch} "
                         f"&& apt-get update` as root")
    subprocess.run(["dpkg", "--add-architecture", arch], check=True, timeout=60)
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=TIMEOUT, stdout=subprocess.DEVNULL)


def download(pkg: dict, debs: Path) -> Path:
    """The pinned .deb in debs/, downloaded if it is not there already."""
    target = debs / Path(pkg["filename"]).name
    if target.exists() and sha256(target) == pkg["sha256"]:
        return target
    spec = f"{pkg['name']}:{pkg['architecture']}={pkg['version']}"
    target.unlink(missing_ok=True)  # a stale or corrupt copy
    before = set(debs.iterdir())
    proc = subprocess.run(["apt-get", "download", "-qq", "-o", "APT::Sandbox::User=root", spec], cwd=debs,
                          capture_output=True, text=True, timeout=TIMEOUT)
    got = [p for p in set(debs.iterdir()) - before if p.suffix == ".deb"]
    if proc.returncode == 0 and got:
        if got[0] != target:
            got[0].rename(target)
    else:  # the archive no longer lists this version: try the pool directly
        err = (proc.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
        for pool in POOLS:
            try:
                with urllib.request.urlopen(pool + pkg["filename"], timeout=TIMEOUT) as r, open(target, "wb") as out:
                    shutil.copyfileobj(r, out)
                break
            except OSError:
                target.unlink(missing_ok=True)
        else:
            raise RuntimeError(f"{spec}: {err}")
    digest = sha256(target)
    if digest != pkg["sha256"]:
        target.unlink()
        raise RuntimeError(f"{spec}: sha256 {digest} does not match the pinned {pkg['sha256']}")
    return target


def extract(pkg: dict, deb: Path, cache: Path) -> Path:
    root = root_of(pkg, cache)
    stamp = root / ".sha256"
    if stamp.exists() and stamp.read_text().strip() == pkg["sha256"]:
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=TIMEOUT, capture_output=True)
    missing = [b for b in pkg.get("binaries", []) if not (root / b).exists()]
    if missing:
        raise RuntimeError(f"{pkg['name']}:{pkg['architecture']}: not in the package: {', '.join(missing)}")
    stamp.write_text(pkg["sha256"] + "\n")
    return root


def fetch(pkg: dict, cache: Path) -> Path:
    root = root_of(pkg, cache)
    stamp = root / ".sha256"
    if stamp.exists() and stamp.read_text().strip() == pkg["sha256"]:
        return root
    ensure_arch(pkg["architecture"])
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    return extract(pkg, download(pkg, debs), cache)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated package names")
    ap.add_argument("--arch", choices=("amd64", "arm64"))
    ap.add_argument("--group", help="server, scl501 or scl101")
    args = ap.parse_args(argv)
    cache = cache_dir()
    only = set(args.only.split(",")) if args.only else None
    failed = 0
    for pkg in load_packages():
        if (only and pkg["name"] not in only) or (args.arch and pkg["architecture"] != args.arch) \
                or (args.group and pkg["group"] != args.group):
            continue
        try:
            fetch(pkg, cache)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            failed += 1
            print(f"fetch: {pkg['name']}:{pkg['architecture']}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                  file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
