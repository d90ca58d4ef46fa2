"""SCL402 in a trace: bytes relayed socket to socket with recv+send pairs (splice would do it in the kernel)."""

from __future__ import annotations

from syscall_lint.strace.observers._copies import CopyPairs
from syscall_lint.strace.state import SOCKET


class ProxyCopyLoop(CopyPairs):
    CODE = "SCL402"
    SOURCE = SOCKET
    READ_CALLS = frozenset({"read", "recvfrom", "recv"})
