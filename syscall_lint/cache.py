"""A content-addressed result cache for Python files.

Keyed on the file's content, the tool version, the catalog and the effective settings. One file per
cache directory, written once per run with a durable replace. A (path, size, mtime) index lets a
no-change run skip reading the files at all.
"""

from __future__ import annotations

import hashlib
import json
import os

from syscall_lint import __version__, catalog
from syscall_lint.durable import write_atomic

MAX_ENTRIES = 200_000


# Bumped when what an entry holds changes shape (2: autofix plans left `evidence`).
ENTRY_FORMAT = 2


def _salt() -> str:
    return f"{__version__}:{catalog.load().fingerprint}:{ENTRY_FORMAT}"


class Cache:
    def __init__(self, directory: str | None):
        self.directory = directory
        self.entries: dict = {}
        self.stats: dict = {}
        self.dirty = False
        self.salt = _salt()
        if directory:
            self.file = os.path.join(directory, "results-v1.json")
            try:
                with open(self.file, "rb") as fh:
                    data = json.load(fh)
                if data.get("salt") == self.salt:
                    self.entries, self.stats = data["entries"], data["stats"]
            except (OSError, ValueError, KeyError, TypeError):
                pass

    @staticmethod
    def key(content: bytes, settings_fingerprint: str) -> str:
        digest = hashlib.sha256(content)
        digest.update(settings_fingerprint.encode())
        return digest.hexdigest()

    def key_from_stat(self, path: str, st: os.stat_result, settings_fingerprint: str) -> str | None:
        hit = self.stats.get(path)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns and hit[2] == settings_fingerprint:
            return hit[3]
        return None

    def get(self, key: str):
        return self.entries.get(key)

    def put(self, path: str, st: os.stat_result | None, settings_fingerprint: str, key: str, value) -> None:
        if not self.directory:
            return
        self.entries[key] = value
        if st is not None:
            self.stats[path] = [st.st_size, st.st_mtime_ns, settings_fingerprint, key]
        self.dirty = True

    def save(self) -> None:
        if not self.directory or not self.dirty:
            return
        if len(self.entries) > MAX_ENTRIES:
            live = {v[3] for v in self.stats.values()}
            self.entries = {k: v for k, v in self.entries.items() if k in live}
        payload = json.dumps({"salt": self.salt, "entries": self.entries, "stats": self.stats}, separators=(",", ":"))
        try:
            os.makedirs(self.directory, exist_ok=True)
            gitignore = os.path.join(self.directory, ".gitignore")
            if not os.path.exists(gitignore):
                write_atomic(gitignore, b"*\n")
            write_atomic(self.file, payload.encode())
        except OSError:
            pass  # a cache that cannot be written is not an error
