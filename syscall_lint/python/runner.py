"""`syscall-lint check`: find Python files, use the cache, analyse the rest in parallel.

The main process only walks, stats and looks up the (path, size, mtime) cache; reading, hashing,
decoding, the pre-screens and libcst all happen in the workers."""

from __future__ import annotations

import gc
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from syscall_lint.cache import Cache
from syscall_lint.discover import walk
from syscall_lint.findings import Finding, InputError
from syscall_lint.python.analyzer import MODULE_CODES, BadInput, analyze, decode
from syscall_lint.python.prescreen import text_modules
from syscall_lint.report import Report

PY_SUFFIXES = (".py", ".pyi")
PARALLEL_MIN_FILES = 8
_known: dict = {}  # content key -> cached result; inherited by forked workers
_done = 0


def _screen(text: str, settings, path: str):
    """The rule modules the text screen keeps, or None when nothing can be reported."""
    enabled = settings.enabled_codes(path)
    wanted = {m for m, codes in MODULE_CODES.items() if codes & enabled} & text_modules(text)
    if wanted or ("SCL900" in enabled and "noqa" in text):
        return wanted
    return None


def _work(item):
    """(path, content key, findings as dicts or an error string, from_cache)."""
    # libcst allocates millions of small objects per file; the cyclic GC scanning them costs ~30%.
    # Nothing here makes long-lived cycles, so collect between files instead of during them.
    global _done
    if gc.isenabled():
        gc.disable()
        gc.freeze()  # what is alive now (modules, the catalog) is never garbage: keep it out of scans
    path, settings, fp = item
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return path, None, f"cannot read: {exc.strerror or exc}", False
    key = Cache.key(data, fp)
    cached = _known.get(key)
    if cached is not None:
        return path, key, cached, True
    try:
        # every file is decoded (bad bytes, NUL bytes, bad coding cookies are always reported);
        # only files a rule could report on are parsed
        text = decode(data)
        screened = _screen(text, settings, path)
        if screened is None:
            return path, key, [], False
        _done += 1
        if _done % 8 == 0:  # only parsed files make garbage worth collecting
            gc.collect()
        return path, key, [f.__dict__ for f in analyze(text, path, settings, screened=screened)], False
    except BadInput as exc:
        return path, key, str(exc), False
    except Exception as exc:  # a bug of ours must not hide the rest of the run
        return path, None, f"internal error while analysing: {type(exc).__name__}: {exc}", False


def check(paths, resolver, jobs: int | None = None, cache_dir: str | None = None) -> Report:
    global _known
    report = Report(sources={"python"})
    cache = Cache(cache_dir)
    fingerprints: dict = {}
    todo = []
    stats = {}
    results = []
    for arg in paths or ["."]:
        excluded = resolver.for_path(Path(arg)).excluder(arg) if os.path.exists(arg) else (lambda p: False)
        for item in walk(arg, lambda p: p.endswith(PY_SUFFIXES), excluded):
            if isinstance(item, InputError):
                report.errors.append(item)
                continue
            settings = resolver.for_path(Path(item))
            fp = fingerprints.get(id(settings))
            if fp is None:
                fp = fingerprints[id(settings)] = settings.fingerprint()
            try:
                st = os.stat(item)
            except OSError as exc:
                report.errors.append(InputError(item, f"cannot read: {exc.strerror or exc}"))
                continue
            key = cache.key_from_stat(item, st, fp)
            cached = cache.get(key) if key else None
            if cached is not None:
                results.append((item, key, cached, True))
                stats[item] = (st, fp)
                continue
            stats[item] = (st, fp)
            todo.append((item, settings, fp))
    todo.sort(key=lambda t: -stats[t[0]][0].st_size)  # biggest first balances the workers
    jobs = jobs or os.cpu_count() or 1
    _known = cache.entries
    try:
        if jobs > 1 and len(todo) >= PARALLEL_MIN_FILES:
            import multiprocessing

            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                results.extend(pool.map(_work, todo, chunksize=max(1, min(8, len(todo) // (jobs * 16)))))
        else:
            try:
                results.extend(_work(item) for item in todo)
            finally:
                gc.unfreeze()
                gc.enable()
    finally:
        _known = {}
    for path, key, found, _from_cache in results:
        st, fp = stats[path]
        if isinstance(found, str):
            report.errors.append(InputError(path, found))
            if key is not None:
                cache.put(path, st, fp, key, found)
            continue
        report.findings.extend(Finding(**dict(f, path=path)) for f in found)
        cache.put(path, st, fp, key, found)
    cache.save()
    return report
