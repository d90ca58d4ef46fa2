"""SCL301 thread-per-connection and SCL302 fork-per-connection."""

from __future__ import annotations

from syscall_lint.python.facts import Facts
from syscall_lint.python.rulekit import Hit, call_label

THREADING_SERVERS = {
    "socketserver.ThreadingMixIn", "socketserver.ThreadingTCPServer", "socketserver.ThreadingUnixStreamServer",
    "http.server.ThreadingHTTPServer", "xmlrpc.server.SimpleXMLRPCServer.ThreadingMixIn",
}
FORKING_SERVERS = {
    "socketserver.ForkingMixIn", "socketserver.ForkingTCPServer", "socketserver.ForkingUnixStreamServer",
}
THREAD_POOLS = {"concurrent.futures.ThreadPoolExecutor", "concurrent.futures.thread.ThreadPoolExecutor",
                "multiprocessing.pool.ThreadPool"}
THREAD_STARTERS = {"threading.Thread", "_thread.start_new_thread", "_thread.start_new", "threading._start_new_thread"}
FORKERS = {"os.fork", "os.forkpty", "multiprocessing.Process", "multiprocessing.context.Process"}


def _server_kind(qual: str, local: dict) -> str | None:
    if qual in THREADING_SERVERS:
        return "SCL301"
    if qual in FORKING_SERVERS:
        return "SCL302"
    return local.get(qual)


def check(facts: Facts):
    # Classes built on the threading/forking servers, including subclasses of local such classes.
    local: dict[str, str] = {}
    for cls in facts.classes:
        kinds = [_server_kind(q, local) for q in cls.quals]
        kind = next((k for k in kinds if k), None)
        if kind:
            local[cls.name] = kind
            base = next(q for q, k in zip(cls.quals, kinds) if k)
            yield Hit(kind, cls.node.name, {"cls": cls.name, "base": base.rsplit(".", 1)[-1]}, variant="class")
    for call in facts.calls:
        kind = _server_kind(call.qual or "", {}) if call.qual else None
        if kind and not call.qual.endswith("MixIn"):
            yield Hit(kind, call.node, {"call": call_label(call)}, variant="server")
    # accept() in a loop that starts a thread or forks for each connection.
    for scope in facts.scopes:
        for loop in scope.loops:
            if not any(c.tail == "accept" and c.receiver is not None and not c.node.args and c.loop is loop
                       for c in loop.calls):
                continue
            for call in loop.calls:
                if call.qual in THREAD_STARTERS:
                    yield Hit("SCL301", call.node, {"call": call_label(call)})
                elif call.qual in FORKERS:
                    yield Hit("SCL302", call.node, {"call": call_label(call)})

    # fork after this function started a thread
    for scope in facts.scopes:
        started = next((c for c in scope.calls if c.qual in THREAD_STARTERS or c.qual in THREAD_POOLS), None)
        if started is None:
            continue
        for call in scope.calls:
            if call.qual in ("os.fork", "os.forkpty") and call.order > started.order and call.loop is None:
                yield Hit("SCL303", call.node, {"call": call_label(call),
                                                "thread_line": facts.position(started.node)[0]})
