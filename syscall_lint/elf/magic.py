"""The ELF magic check of the input walk, apart from reader.py so the walk imports no analysis."""

from __future__ import annotations

import os
import stat

from syscall_lint.inputs import READ_FLAGS


def is_elf(path: str) -> bool:
    """Starts with the ELF magic; False for anything that is not a readable regular file.

    inputs.open_regular's checks (open non-blocking, fstat the descriptor, regular files only) on a
    bare descriptor: a walk of /usr asks this of thousands of files, and a buffered file object
    per file for 4 bytes cost more than the walk itself."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 4) == b"\x7fELF"
    except OSError:
        return False
    finally:
        os.close(fd)
