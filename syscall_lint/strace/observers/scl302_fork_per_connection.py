"""SCL302 in a trace: a server that accepts a connection and forks a child for each."""

from __future__ import annotations

from syscall_lint.strace.observers._connections import ConnectionSpawns


class ForkPerConnection(ConnectionSpawns):
    CODE = "SCL302"
    THREAD = False
