"""SCL301 in a trace: a server that accepts a connection and starts a thread for each."""

from __future__ import annotations

from syscall_lint.strace.observers._connections import ConnectionSpawns


class ThreadPerConnection(ConnectionSpawns):
    CODE = "SCL301"
    THREAD = True
