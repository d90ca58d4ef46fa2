"""`syscall-lint check`: find Python files, use the cache, analyse the rest in parallel.

The main process only walks, stats and looks up the (path, size, mtime) cache; reading, hashing,
decoding, the pre-screens and libcst all happen in the workers."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path

from syscall_lint.cache import Cache
from syscall_lint.discover import walk
from syscall_lint.findings import Finding, InputError
from syscall_lint.inputs import InputRefused, not_regular_reason, read_regular
from syscall_lint.python import project
from syscall_lint.python.analyzer import MAX_BYTES, BadInput, analyze, decode, parse_ast
from syscall_lint.python.prescreen import text_modules
from syscall_lint.python.rulekit import module_codes
from syscall_lint.report import Report

PY_SUFFIXES = (".py", ".pyi")
PARALLEL_MIN_FILES = 8
# A worker's address space: far above what the size bounds in analyzer.py let one file cost
# (~0.5 GiB), so only a file that escapes them is stopped, by MemoryError or by the worker dying.
WORKER_MEMORY_LIMIT = 1536 * 1024 * 1024
WORKER_DIED = ("too costly to analyse (the worker analysing it died, most likely at the "
               f"{WORKER_MEMORY_LIMIT // (1024 * 1024)} MiB memory limit per worker)")
_known: dict = {}  # content key -> cached result; inherited by forked workers
_done = 0
_memory_limited = False


@dataclass(frozen=True)
class Job:
    """One file for a worker: what to read, the settings that apply, and how strictly to parse."""
    index: int
    path: str
    settings: object
    fingerprint: str
    strict: bool


@dataclass(frozen=True)
class Outcome:
    """A worker's answer: findings as dicts, or a one-line error string."""
    index: int
    path: str
    key: str | None
    found: object  # list of finding dicts | error string
    from_cache: bool = False
    deps: tuple = ()  # (path, size, mtime_ns) of the project modules whose summaries it used
    summaries: tuple = ()  # (cache key, summary json) computed by the worker, for the cache file


def _screen(text: str, settings, path: str, view=None):
    """The rule modules the text screen keeps, or None when nothing can be reported."""
    enabled = settings.enabled_codes(path)
    wanted = {m for m, codes in module_codes().items() if codes & enabled} & text_modules(text, view)
    if wanted or ("SCL900" in enabled and "noqa" in text):
        return wanted
    return None


def _limit_memory() -> None:
    """Pool worker initializer: cap the address space, so a runaway file fails alone."""
    global _memory_limited
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = WORKER_MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(WORKER_MEMORY_LIMIT, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        _memory_limited = True
    except (ImportError, ValueError, OSError):
        pass


def _limit_note() -> str:
    return f" at the {WORKER_MEMORY_LIMIT // (1024 * 1024)} MiB limit per worker" if _memory_limited else ""


def _work_many(jobs: list) -> list:
    return [_work(job) for job in jobs]


def _work(job: Job) -> Outcome:
    # libcst allocates millions of small objects per file; the cyclic GC scanning them costs ~30%.
    # Nothing here makes long-lived cycles, so collect between files instead of during them.
    global _done
    if gc.isenabled():
        gc.disable()
        gc.freeze()  # what is alive now (modules, the catalog) is never garbage: keep it out of scans
    path, settings = job.path, job.settings
    try:
        data = read_regular(path, MAX_BYTES)
    except InputRefused as exc:
        return Outcome(job.index, path, None, str(exc))
    except OSError as exc:
        return Outcome(job.index, path, None, f"cannot read: {exc.strerror or exc}")
    key = Cache.key(data, job.fingerprint)
    view, deps = project.EMPTY, ()
    try:
        # every file is decoded (bad bytes, NUL bytes, bad coding cookies are always reported);
        # only files a rule could report on are parsed, unless strict mode asks for every file
        text = decode(data)
        if getattr(settings, "follow_imports", True):
            view = project.view_for(path, text, getattr(settings, "src", ()))
            if view.consumed:  # the result also depends on the summaries of what it imports
                key = Cache.key(data, job.fingerprint + "|" + view.key())
                deps = tuple((p, size, mtime) for p, (_, size, mtime) in sorted(view.consumed.items()))
        cached = _known.get(key)
        if cached is not None:
            return Outcome(job.index, path, key, cached, True, deps, _fresh_summaries())
        screened = _screen(text, settings, path, view)
        if screened is None:
            if job.strict:
                parse_ast(text)
            return Outcome(job.index, path, key, [], False, deps, _fresh_summaries())
        _done += 1
        if _done % 8 == 0:  # only parsed files make garbage worth collecting
            gc.collect()
        found = [f.__dict__ for f in analyze(text, path, settings, screened=screened, view=view)]
        return Outcome(job.index, path, key, found, False, deps, _fresh_summaries())
    except BadInput as exc:
        return Outcome(job.index, path, key, str(exc), False, deps, _fresh_summaries())
    except MemoryError:
        return Outcome(job.index, path, None, f"too costly to analyse (ran out of memory{_limit_note()})")
    except Exception as exc:  # a bug of ours must not hide the rest of the run
        return Outcome(job.index, path, None, f"internal error while analysing: {_describe(exc)}")


def _fresh_summaries() -> tuple:
    """The summaries this process computed since the last call (sent back to be cached)."""
    idx = project.index()
    fresh, idx.fresh = tuple(idx.fresh.items()), {}
    return fresh


def _describe(exc: BaseException) -> str:
    """One short line for an exception whose str() may itself fail (a repr of a deep tree)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - any failure to describe it must not escape
        text = ""
    first = text.splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def check(paths, resolver, jobs: int | None = None, cache_dir: str | None = None,
          strict: bool = False) -> Report:
    """Lint the Python files under `paths`. `strict` (or `strict = true` in the settings) parses
    every file, so syntax errors are reported even in files no rule could match."""
    global _known
    report = Report(sources={"python"})
    cache = Cache(cache_dir)
    fingerprints: dict = {}
    dep_stats: dict = {}  # a project module's path -> (size, mtime_ns) now, or None (stat once per run)
    todo: list = []
    stats: dict = {}
    outcomes: list = []
    for arg in paths or ["."]:
        excluded = resolver.for_path(Path(arg)).excluder(arg) if os.path.exists(arg) else (lambda p: False)
        walked = 0
        for item in walk(arg, lambda p: p.endswith(PY_SUFFIXES), excluded):
            walked += 1
            if isinstance(item, InputError):
                report.errors.append(item)
                continue
            try:
                st = os.stat(item)
            except OSError as exc:
                report.errors.append(InputError(item, f"cannot read: {exc.strerror or exc}"))
                continue
            # a FIFO would block the reader and /dev/zero never ends: refuse them from stat alone
            refused = not_regular_reason(st.st_mode)
            if refused is None and st.st_size > MAX_BYTES:
                refused = f"too large to analyse ({st.st_size // (1024 * 1024)} MiB, the limit is " \
                          f"{MAX_BYTES // (1024 * 1024)} MiB)"
            if refused:
                report.errors.append(InputError(item, refused))
                continue
            settings = resolver.for_path(Path(item))
            strict_here = strict or bool(getattr(settings, "strict", False))
            fp = _result_fingerprint(fingerprints, settings, item, strict_here)
            index = len(stats)
            stats[index] = (st, fp)
            key = cache.key_from_stat(item, st, fp, dep_stats)
            cached = cache.get(key) if key else None
            if cached is not None:
                outcomes.append(Outcome(index, item, key, cached, True, cache.deps_of(item)))
                continue
            todo.append(Job(index, item, settings, fp, strict_here))
        if walked == 0 and os.path.isdir(arg):
            report.warnings.append(f"no Python files found under {arg}")
    todo.sort(key=lambda job: -stats[job.index][0].st_size)  # biggest first balances the workers
    jobs = jobs or os.cpu_count() or 1
    _known = cache.entries
    project.reset(cache.summaries, keep=bool(cache_dir))  # inherited by forked workers, as _known
    try:
        if jobs > 1 and len(todo) >= PARALLEL_MIN_FILES:
            outcomes.extend(_in_pools(todo, jobs))
        else:
            try:
                outcomes.extend(_work(job) for job in todo)
            finally:
                gc.unfreeze()
                gc.enable()
    finally:
        _known = {}
        project.reset()
    outcomes.sort(key=lambda o: o.index)
    for outcome in outcomes:
        st, fp = stats[outcome.index]
        path, key, found = outcome.path, outcome.key, outcome.found
        if isinstance(found, str):
            report.errors.append(InputError(path, found))
            cache.add_summaries(outcome.summaries)
            if key is not None:
                cache.put(path, st, fp, key, found, outcome.deps)
            continue
        cache.add_summaries(outcome.summaries)
        report.findings.extend(Finding(**dict(f, path=path)) for f in found)
        cache.put(path, st, fp, key, found, outcome.deps)
    cache.save()
    return report


def _result_fingerprint(memo: dict, settings, path: str, strict: bool) -> str:
    """Everything besides the content that decides a file's result: the settings, the codes enabled
    for this path (per-file-ignores make two identical files differ), whether it is a stub, and
    strict mode. Memoised per (settings, enabled codes), so the key string is built once."""
    enabled = frozenset(settings.enabled_codes(path))
    stub = path.endswith(".pyi")
    key = (id(settings), enabled, stub, strict)
    fp = memo.get(key)
    if fp is None:
        fp = memo[key] = "|".join([settings.fingerprint(), ",".join(sorted(enabled)),
                                   "stub" if stub else "", "strict" if strict else ""])
    return fp


def _pool(workers: int):
    # imported here: a pre-commit call on a few files runs in this process and never pays for them
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_limit_memory)


def _in_pools(todo: list, jobs: int) -> list:
    """Analyse in a pool of workers. A worker that dies (killed for memory) breaks the whole pool;
    the files not finished then are re-run one at a time in a fresh single-worker pool, so only
    the file that kills its worker gets an error and every other file still gets its result."""
    from concurrent.futures import wait
    from concurrent.futures.process import BrokenProcessPool

    done: dict = {}
    size = max(1, min(8, len(todo) // (jobs * 16)))
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    with _pool(jobs) as pool:
        futures = [pool.submit(_work_many, chunk) for chunk in chunks]
        wait(futures)
    for future in futures:
        if future.exception() is None:
            done.update((o.index, o) for o in future.result())
    leftover = [job for job in todo if job.index not in done]
    while leftover:
        with _pool(1) as pool:
            while leftover:
                job = leftover.pop(0)
                try:
                    [outcome] = pool.submit(_work_many, [job]).result()
                except BrokenProcessPool:
                    done[job.index] = Outcome(job.index, job.path, None, WORKER_DIED)
                    break  # this pool is unusable: the rest go to a fresh one
                except Exception as exc:  # e.g. a result that cannot be sent back
                    outcome = Outcome(job.index, job.path, None, f"internal error while analysing: {_describe(exc)}")
                done[job.index] = outcome
    return [done[job.index] for job in todo]
