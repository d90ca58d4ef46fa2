"""Opening user-named inputs safely: regular files only, never a blocking open, reads with a bound.

A FIFO opened for reading blocks until a writer appears, and `/dev/zero` never ends; both have been
passed to the linter by accident (and on purpose by fuzzing). Every analyser opens its inputs here.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, Optional


class InputRefused(Exception):
    """The input cannot be analysed; str(exc) is the one-line reason shown to the user."""


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def not_regular_reason(mode: int) -> Optional[str]:
    """Why a file with this st_mode is refused, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in _KINDS:
        if test(mode):
            return f"not a regular file ({name})"
    return "not a regular file"


def refusal(path: str) -> Optional[str]:
    """The reason `path` would be refused, from stat alone (never blocks), or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return not_regular_reason(st.st_mode)


# read-only, and a FIFO swapped in after a stat cannot block the open (the check follows on the descriptor)
READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def open_regular(path: str, limit: Optional[int] = None, buffering: int = -1) -> BinaryIO:
    """Open `path` for binary reading if it is a regular file no larger than `limit` bytes.

    The open itself uses O_NONBLOCK so a FIFO swapped in after a stat cannot block us; the check is
    made on the opened descriptor (fstat), so there is no window between check and use.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        raise InputRefused(exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        reason = not_regular_reason(st.st_mode)
        if reason:
            raise InputRefused(reason)
        if limit is not None and st.st_size > limit:
            raise InputRefused(f"too large to analyse ({_size(st.st_size)}, the limit is {_size(limit)})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str, limit: int) -> bytes:
    """The whole content of a regular file of at most `limit` bytes (checked again while reading)."""
    with open_regular(path, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:  # it grew between fstat and read
        raise InputRefused(f"too large to analyse (more than {_size(limit)})")
    return data


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
