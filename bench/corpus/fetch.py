#!/usr/bin/env python3
"""Download the pinned corpus of bench/corpus/projects.toml, verify sha256, unpack.

Each archive goes to CACHE/archives/, is checked against its pinned sha256 (a mismatch is
refused and the file deleted), and is unpacked to CACHE/src/<name>/ with the archive's single
top-level folder stripped, so label paths read like "pkg/module.py".  Idempotent: a project
whose unpacked folder carries a matching .corpus-sha256 stamp is skipped.

CACHE is $SYSCALL_LINT_CORPUS_DIR or bench/corpus/.cache/.  --projects FILE fetches another list
of the same format (a staged addition) instead of bench/corpus/projects.toml.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import os
import shutil
import sys
import tarfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    return Path(os.environ.get("SYSCALL_LINT_CORPUS_DIR") or HERE / ".cache")


def load_projects(path: Path = HERE / "projects.toml") -> list[dict]:
    with open(path, "rb") as f:
        return tomllib.load(f)["project"]


def load_projects_or_exit(path: Path) -> list[dict]:
    """load_projects for a user-named list: a bad file is one line on stderr, exit status 2."""
    try:
        return load_projects(path)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        reason = "no [[project]] table" if isinstance(e, (KeyError, TypeError)) else str(e).splitlines()[0]
        print(f"{path}: error: {reason}", file=sys.stderr)
        sys.exit(2)


def project_dir(name: str) -> Path:
    return cache_dir() / "src" / name


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, timeout: float) -> None:
    part = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as out:
        shutil.copyfileobj(r, out)
    os.replace(part, dest)  # a scratch download; the sha256 check below guards it


def _unpack(archive: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for m in z.infolist():
                p = Path(m.filename)
                if p.is_absolute() or ".." in p.parts:
                    raise ValueError(f"unsafe member {m.filename!r}")
            z.extractall(tmp)
    else:
        with tarfile.open(archive) as t:
            t.extractall(tmp, filter="data")
    entries = list(tmp.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() and not name.endswith(".whl") else tmp
    shutil.rmtree(dest, ignore_errors=True)
    shutil.move(str(root), str(dest))
    shutil.rmtree(tmp, ignore_errors=True)


def fetch_one(p: dict, timeout: float) -> str:
    dest = project_dir(p["name"])
    stamp = dest / ".corpus-sha256"
    if stamp.is_file() and stamp.read_text().strip() == p["sha256"]:
        return "cached"
    archives = cache_dir() / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    archive = archives / p["filename"]
    if not archive.is_file() or sha256_of(archive) != p["sha256"]:
        _download(p["url"], archive, timeout)
    got = sha256_of(archive)
    if got != p["sha256"]:
        archive.unlink(missing_ok=True)
        raise ValueError(f"sha256 mismatch: want {p['sha256']}, got {got}; refused")
    _unpack(archive, dest)
    stamp.write_text(p["sha256"] + "\n")
    return "fetched"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", "-j", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per download")
    ap.add_argument("--only", default="", help="comma-separated project names")
    ap.add_argument("--projects", default=str(HERE / "projects.toml"),
                    help="the pinned project list to fetch (default: the live projects.toml)")
    args = ap.parse_args(argv)
    projects = load_projects_or_exit(Path(args.projects))
    if args.only:
        want = {n.strip().lower() for n in args.only.split(",")}
        projects = [p for p in projects if p["name"].lower() in want]
    failed = 0
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = {ex.submit(fetch_one, p, args.timeout): p for p in projects}
        for fut in cf.as_completed(futs):
            p = futs[fut]
            try:
                print(f"{p['name']} {p['version']}: {fut.result()}")
            except Exception as e:  # one line per failure
                failed += 1
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                print(f"{p['name']} {p['version']}: error: {msg}", file=sys.stderr)
    print(f"{len(projects) - failed}/{len(projects)} projects ready in {cache_dir() / 'src'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
