"""A content-addressed result cache for Python files.

Keyed on the file's content, the tool version, the catalog, the effective settings and the digests
of the project-module summaries the file used (python/project.py). One file per cache directory,
written once per run with a durable replace. A (path, size, mtime) index, with the same for each
module whose summary the file used, lets a no-change run skip reading the files at all.
The summaries themselves are kept too, by content digest, so an unchanged module is not parsed again.
"""

from __future__ import annotations

import hashlib
import json
import os

from syscall_lint import __version__, catalog
from syscall_lint.durable import write_atomic

MAX_ENTRIES = 200_000


# Bumped when what an entry holds changes shape (2: autofix plans left `evidence`; 3: dependencies).
ENTRY_FORMAT = 3


def _salt() -> str:
    return f"{__version__}:{catalog.load().fingerprint}:{ENTRY_FORMAT}"


class Cache:
    def __init__(self, directory: str | None):
        self.directory = directory
        self.entries: dict = {}
        self.stats: dict = {}
        self.summaries: dict = {}  # "format:digest:module" -> summary json (python/summaries.py)
        self.dirty = False
        self.salt = _salt()
        if directory:
            self.file = os.path.join(directory, "results-v1.json")
            try:
                with open(self.file, "rb") as fh:
                    data = json.load(fh)
                if data.get("salt") == self.salt:
                    self.entries, self.stats = data["entries"], data["stats"]
                    self.summaries = data.get("summaries", {})
            except (OSError, ValueError, KeyError, TypeError):
                pass

    @staticmethod
    def key(content: bytes, settings_fingerprint: str) -> str:
        digest = hashlib.sha256(content)
        digest.update(settings_fingerprint.encode())
        return digest.hexdigest()

    def key_from_stat(self, path: str, st: os.stat_result, settings_fingerprint: str,
                      dep_stats: dict | None = None) -> str | None:
        """The entry key of an unchanged file whose imported project modules are unchanged too
        (`dep_stats` memoises their stats for the run)."""
        hit = self.stats.get(path)
        if not (hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns and hit[2] == settings_fingerprint):
            return None
        for dep, size, mtime in (hit[4] if len(hit) > 4 else ()):
            now = dep_stats.get(dep, False) if dep_stats is not None else False
            if now is False:
                try:
                    dst = os.stat(dep)
                    now = (dst.st_size, dst.st_mtime_ns)
                except OSError:
                    now = None
                if dep_stats is not None:
                    dep_stats[dep] = now
            if now is None or now[0] != size or now[1] != mtime:
                return None
        return hit[3]

    def deps_of(self, path: str) -> tuple:
        hit = self.stats.get(path)
        return tuple(tuple(d) for d in hit[4]) if hit and len(hit) > 4 else ()

    def add_summaries(self, fresh) -> None:
        if self.directory and fresh:
            self.summaries.update(fresh)
            self.dirty = True

    def get(self, key: str):
        return self.entries.get(key)

    def put(self, path: str, st: os.stat_result | None, settings_fingerprint: str, key: str, value,
            deps=()) -> None:
        """`deps`: (path, size, mtime_ns) of the project modules whose summaries the result used."""
        if not self.directory:
            return
        old = self.stats.get(path)
        if old is not None and old[3] == key and self.entries.get(key) == value and \
                old[:3] == [st.st_size if st else None, st.st_mtime_ns if st else None, settings_fingerprint] \
                and [list(d) for d in deps] == [list(d) for d in (old[4] if len(old) > 4 else ())]:
            return  # unchanged: nothing to write
        self.entries[key] = value
        if st is not None:
            self.stats[path] = [st.st_size, st.st_mtime_ns, settings_fingerprint, key, [list(d) for d in deps]]
        self.dirty = True

    def save(self) -> None:
        if not self.directory or not self.dirty:
            return
        if len(self.entries) > MAX_ENTRIES:
            live = {v[3] for v in self.stats.values()}
            self.entries = {k: v for k, v in self.entries.items() if k in live}
        if len(self.summaries) > MAX_ENTRIES:
            self.summaries = dict(list(self.summaries.items())[-MAX_ENTRIES // 2:])  # the newest half
        payload = json.dumps({"salt": self.salt, "entries": self.entries, "stats": self.stats,
                              "summaries": self.summaries}, separators=(",", ":"))
        try:
            os.makedirs(self.directory, exist_ok=True)
            gitignore = os.path.join(self.directory, ".gitignore")
            if not os.path.exists(gitignore):
                write_atomic(gitignore, b"*\n")
            write_atomic(self.file, payload.encode())
        except OSError:
            pass  # a cache that cannot be written is not an error
