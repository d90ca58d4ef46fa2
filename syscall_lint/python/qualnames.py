"""Module names reached under another name, shared by the facts (libcst) and the project
summaries (`ast`); importing this costs nothing (no libcst)."""

from __future__ import annotations

# The OS modules behind `os`, Python 2 names and six's compatibility shims
# (`from six.moves import socketserver`).
CANONICAL_MODULES = {
    "posix": "os", "nt": "os", "SocketServer": "socketserver", "six.moves.socketserver": "socketserver",
    "six.moves.SocketServer": "socketserver", "BaseHTTPServer": "http.server",
    "six.moves.BaseHTTPServer": "http.server", "six.moves.http_server": "http.server",
}


def canonical(qual: str) -> str:
    """`posix.replace` -> `os.replace`, `six.moves.socketserver.X` -> `socketserver.X`."""
    head = qual
    while head:
        mapped = CANONICAL_MODULES.get(head)
        if mapped is not None:
            return mapped + qual[len(head):]
        head = head.rpartition(".")[0]
    return qual
