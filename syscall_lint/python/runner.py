"""`syscall-lint check`: find Python files, use the cache, analyse the rest in parallel."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor

from syscall_lint.cache import Cache
from syscall_lint.discover import walk
from syscall_lint.findings import Finding, InputError
from syscall_lint.python.analyzer import MODULE_CODES, BadInput, analyze, decode
from syscall_lint.python.prescreen import text_modules
from syscall_lint.report import Report

PY_SUFFIXES = (".py", ".pyi")
PARALLEL_MIN_FILES = 8


_done = 0


def _work(item):
    # libcst allocates millions of small objects per file; the cyclic GC scanning them costs ~30%.
    # Nothing here makes long-lived cycles, so collect between files instead of during them.
    global _done
    gc.disable()
    _done += 1
    if _done % 16 == 0:
        gc.collect()
    path, data, settings = item
    try:
        return path, [f.__dict__ for f in analyze(decode(data), path, settings)], None
    except BadInput as exc:
        return path, None, str(exc)
    except Exception as exc:  # a bug of ours must not hide the rest of the run
        return path, None, f"internal error while analysing: {type(exc).__name__}: {exc}"


def _needs_parse(text: str, settings, path: str) -> bool:
    enabled = settings.enabled_codes(path)
    if "SCL900" in enabled and "noqa" in text:
        return True
    wanted = {m for m, codes in MODULE_CODES.items() if codes & enabled}
    return bool(wanted & text_modules(text))


def check(paths, resolver, jobs: int | None = None, cache_dir: str | None = None) -> Report:
    report = Report(sources={"python"})
    cache = Cache(cache_dir)
    fingerprints: dict = {}
    todo = []
    for arg in paths or ["."]:
        excluded = resolver.for_path(Path(arg)).excluder(arg) if os.path.exists(arg) else (lambda p: False)
        for item in walk(arg, lambda p: p.endswith(PY_SUFFIXES), excluded):
            if isinstance(item, InputError):
                report.errors.append(item)
                continue
            report.inputs += 1
            settings = resolver.for_path(Path(item))
            fp = fingerprints.get(id(settings))
            if fp is None:
                fp = fingerprints[id(settings)] = settings.fingerprint()
            try:
                st = os.stat(item)
                key = cache.key_from_stat(item, st, fp)
                cached = cache.get(key) if key else None
                if cached is None:
                    with open(item, "rb") as fh:
                        data = fh.read()
                    key = cache.key(data, fp)
                    cached = cache.get(key)
            except OSError as exc:
                report.errors.append(InputError(item, f"cannot read: {exc.strerror or exc}"))
                continue
            if cached is not None:
                if isinstance(cached, str):
                    report.errors.append(InputError(item, cached))
                else:
                    report.findings.extend(Finding(**dict(f, path=item)) for f in cached)
                cache.put(item, st, fp, key, cached)
                continue
            # every file is decoded (bad bytes, NUL bytes and bad coding cookies are always reported);
            # only files the rules could report on are parsed
            try:
                text = decode(data)
            except BadInput as exc:
                report.errors.append(InputError(item, str(exc)))
                cache.put(item, st, fp, key, str(exc))
                continue
            if not _needs_parse(text, settings, item):
                cache.put(item, st, fp, key, [])
                continue
            todo.append((item, data, settings, st, fp, key))
    todo.sort(key=lambda t: -len(t[1]))  # biggest first balances the workers
    items = [(t[0], t[1], t[2]) for t in todo]
    meta = {t[0]: t[3:] for t in todo}
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(items) >= PARALLEL_MIN_FILES:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_work, items, chunksize=max(1, len(items) // (jobs * 8))))
    else:
        try:
            results = [_work(item) for item in items]
        finally:
            gc.enable()
    for path, found, error in results:
        st, fp, key = meta[path]
        if error is not None:
            report.errors.append(InputError(path, error))
            if not error.startswith("internal error"):
                cache.put(path, st, fp, key, error)
            continue
        report.findings.extend(Finding(**f) for f in found)
        cache.put(path, st, fp, key, found)
    cache.save()
    return report
