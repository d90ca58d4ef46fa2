"""SCL401 in a trace: a file copied to a socket with read+send pairs (sendfile would do it in the kernel)."""

from __future__ import annotations

from syscall_lint.strace.observers._copies import CopyPairs
from syscall_lint.strace.state import FILE


class CopyLoopToSocket(CopyPairs):
    CODE = "SCL401"
    SOURCE = FILE
    READ_CALLS = frozenset({"read", "pread64"})
