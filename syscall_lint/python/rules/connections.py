"""SCL301 thread-per-connection and SCL302 fork-per-connection."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from syscall_lint.python.rulekit import Hit, Rule, cst, call_label
from syscall_lint.python.textscan import search_word
from syscall_lint.python.vocabulary import (ACCEPT_CALLBACKS, CLASS_BUILDERS, CONNECTION_HOOKS, DATAGRAM_SERVERS,
                                            FORKERS, FORKING_SERVERS, MP_CONTEXTS, PARTIALS, RAW_FORKS,
                                            REQUEST_HANDLERS, STREAM_SERVERS, THREAD_POOLS, THREAD_STARTERS,
                                            THREADING_SERVERS)

if TYPE_CHECKING:
    from syscall_lint.python.facts import Facts



# the stdlib's threading/forking servers, or `accept(` as a word (one pattern per word: textscan.py)
_SERVER = (re.compile(r"Threading(?:MixIn|TCPServer|UnixStreamServer|HTTPServer)"),
           re.compile(r"Forking(?:MixIn|TCPServer|UnixStreamServer)"))
_ACCEPT = re.compile(r"accept\s*\(")


class Connections(Rule):
    """A thread (SCL301) or a process (SCL302) per accepted connection, and a fork after threads
    started (SCL303)."""

    name = "connections"
    codes = frozenset({"SCL301", "SCL302", "SCL303"})
    words = ("ThreadingMixIn", "ThreadingTCPServer", "ThreadingUnixStreamServer", "ThreadingHTTPServer",
             "ForkingMixIn", "ForkingTCPServer", "ForkingUnixStreamServer", "accept", "RequestHandler")
    gated = True

    @classmethod
    def screen(cls, text: str) -> bool:
        return bool(any(w in text for w in cls.words) and (
            any(p.search(text) for p in _SERVER) or search_word(_ACCEPT, text))) or (
            "fork" in text and ("Thread" in text or "start_new" in text)) or (
            "accept" in text and any(w in text for w in _SPAWN_WORDS)) or (
            "RequestHandler" in text and any(w in text for w in _SPAWN_WORDS))

    def check(self, facts):
        return _check(facts)


_SPAWN_WORDS = ("Thread", "fork", "Process", "start_new")
SUMMARY_DEPTH = 3  # how many calls deep a spawn is followed from the accept path


def _server_kind(qual: str, local: dict) -> str | None:
    if qual in THREADING_SERVERS:
        return "SCL301"
    if qual in FORKING_SERVERS:
        return "SCL302"
    return local.get(qual)


def _check(facts: Facts):
    # Classes built on the threading/forking servers, including subclasses of local such classes.
    local: dict[str, str] = dict(facts.imported_servers)  # bases imported from the project (project.py)
    # an own process_request replaces the mixin's spawn, unless it hands on to it (`super().process_request`)
    overrides = {id(s.cls) for s in facts.scopes if s.cls is not None and s.name == "process_request"
                 and not _delegates_up(s)}
    program = _Program(facts)
    for cls in facts.classes:
        if any(q in DATAGRAM_SERVERS for q in cls.quals):
            continue  # a thread or process per datagram: no connection is held
        kinds = [_server_kind(q, local) for q in cls.quals]
        kind = next((k for k in kinds if k), None)
        if kind and id(cls) in overrides:
            continue  # its own process_request replaces the mixin's thread/process per request
        if kind:
            local[cls.name] = kind
            base = next(q for q, k in zip(cls.quals, kinds) if k)
            yield Hit(kind, cls.node.name, {"cls": cls.name, "base": base.rsplit(".", 1)[-1]}, variant="class")
            continue
        found = _local_mixin(program, cls)
        if found is not None:
            kind, mixin = found
            local[cls.name] = kind
            yield Hit(kind, cls.node.name, {"cls": cls.name, "base": mixin}, variant="class")
    for call in facts.calls:
        kind = _server_kind(call.qual or "", {}) if call.qual else None
        if kind and not call.qual.endswith("MixIn"):
            yield Hit(kind, call.node, {"call": call_label(call)}, variant="server")
    yield from _dynamic_servers(facts, local)
    yield from _handler_spawns(facts, program)
    # accept() in a loop that starts a thread or forks for each connection.
    for scope in facts.scopes:
        for loop in scope.loops:
            if not any(c.tail == "accept" and c.receiver is not None and not c.node.args and c.loop is loop
                       for c in loop.calls):
                continue
            accepted = _accepted_names(facts, scope)
            for call in loop.calls + _after_retry(loop):
                kind = _spawn_kind(call, program.contexts)
                if kind == "SCL301":
                    yield Hit("SCL301", call.node, {"call": call_label(call)})
                elif (kind == "SCL302" and not _closed_before(facts, loop, accepted, call)
                      and not _child_ignores(facts, scope, accepted, call)):
                    yield Hit("SCL302", call.node, {"call": call_label(call)})

    yield from _spawns_on_accept_path(facts)

    # fork after this function started a thread
    for scope in facts.scopes:
        started = next((c for c in scope.calls if c.qual in THREAD_STARTERS or c.qual in THREAD_POOLS), None)
        if started is None:
            continue
        for call in scope.calls:
            if call.qual in RAW_FORKS and call.order > started.order and call.loop is None:
                yield Hit("SCL303", call.node, {"call": call_label(call),
                                                "thread_line": facts.position(started.node)[0]})


def _after_retry(loop) -> list:
    """The calls after an accept retry loop (`while True: try: conn = s.accept(); break ...`), in
    the loop around it: they run once per accepted connection, as the retry loop's own would."""
    outer = loop.parent
    if outer is None or loop.kind != "while" or not _breaks_out(loop.node):
        return []
    accept = min(c.order for c in loop.calls if c.tail == "accept")
    return [c for c in outer.calls if c.order > accept]


def _breaks_out(node) -> bool:
    """A `break` of this loop itself (not of a loop nested in it)."""
    found = []

    class _Breaks(cst.CSTVisitor):
        def visit_Break(self, _node):
            found.append(True)

        def visit_While(self, inner):
            return inner is node

        def visit_For(self, _inner):
            return False

        def visit_FunctionDef(self, _inner):
            return False

    node.visit(_Breaks())
    return bool(found)


def _non_mixin_server(facts: Facts, node) -> str | None:
    """SCL301/SCL302 when `node` names one of the stdlib's threading/forking server classes (not a
    mixin: a mixin alone serves nothing)."""
    dotted = _dotted(node)
    qual = facts.resolve(dotted) if dotted else None
    if qual is None or qual.endswith("MixIn"):
        return None
    return _server_kind(qual, {})


def _choices(value) -> list:
    """The expressions a value can be: both branches of `a if c else b`, each operand of `a or b`."""
    if isinstance(value, cst.IfExp):
        return _choices(value.body) + _choices(value.orelse)
    if isinstance(value, cst.BooleanOperation):
        return _choices(value.left) + _choices(value.right)
    return [value]


def _dynamic_servers(facts: Facts, local: dict):
    """Server classes made or chosen at run time: `type(name, (ThreadingMixIn, Base), {})` reported
    as a class; a stdlib threading/forking server class held in a variable or attribute that is then
    instantiated (`kind(...)`, `partial(kind, ...)`), or handed to `partial` directly, reported where
    it is named."""
    partials = [c for c in facts.calls if c.arg(0) is not None and (
        c.qual in PARTIALS or (c.qual is None and c.dotted == "partial"))]  # (unresolved: a star import)
    instantiated = {c.dotted for c in facts.calls if c.dotted} | {facts.key(c.arg(0)) for c in partials}
    for call in facts.calls:
        if call.qual in CLASS_BUILDERS and len(call.positional) == 3 and isinstance(call.arg(1), cst.Tuple):
            for element in call.arg(1).elements:
                dotted = _dotted(element.value)
                kind = _server_kind(facts.resolve(dotted) or dotted or "", local) if dotted else None
                if kind:
                    name = call.arg(0)
                    label = name.evaluated_value if isinstance(name, cst.SimpleString) else facts.code(name)
                    yield Hit(kind, call.node, {"cls": label, "base": dotted.rsplit(".", 1)[-1]}, variant="class")
                    break
    for call in partials:
        kind = _non_mixin_server(facts, call.arg(0))
        if kind:
            yield Hit(kind, call.arg(0), {"call": facts.code(call.arg(0))}, variant="server")
    for scope in facts.scopes:
        for _, targets, value in scope.assigns:
            if len(targets) != 1 or targets[0] not in instantiated or isinstance(value, cst.Call):
                continue
            for choice in _choices(value):
                kind = _non_mixin_server(facts, choice)
                if kind:
                    yield Hit(kind, choice, {"call": facts.code(choice)}, variant="server")


def _handler_spawns(facts: Facts, program: "_Program"):
    """A request handler (socketserver's, http.server's, ...) whose setup() or handle() starts a
    thread or a process: the server makes one handler per accepted connection and runs these once,
    so it is a spawn per connection whatever the server class. Reported on the `.start()` of the
    thread when it is started there, else where it is made."""
    handlers: set = set()
    for _ in range(8):  # local subclasses of local handlers
        more = {c.name for c in facts.classes if c.name not in handlers
                and any(q in REQUEST_HANDLERS or b in handlers for b, q in zip(c.bases, c.quals))}
        if not more:
            break
        handlers |= more
    for cls in facts.classes:
        if cls.name not in handlers:
            continue
        methods = program.effective(cls)
        for hook in CONNECTION_HOOKS:
            scope = methods.get(hook)
            if scope is None or scope.cls is not cls:
                continue  # a base's hook is reported with that base
            for call in scope.calls:
                kind = _spawn_kind(call, program.contexts)
                inner = None if kind else program.callee(call, methods)
                found = (kind, call) if kind else program.spawn_in(inner, methods, 1) if inner is not None else None
                if not found or _child_drops_connection(facts, found[1]):
                    continue
                site = found[1] if kind or inner.cls is not None else call
                started = next((c for c in scope.calls if c.tail == "start" and c.order > call.order
                                and len(call.targets) == 1 and c.receiver is not None
                                and facts.key(c.receiver) == call.targets[0]), None)
                site = started or site
                yield Hit(found[0], site.node, {"call": call_label(site), "cls": cls.name, "hook": hook},
                          variant="handler")
                break


def _delegates_up(scope) -> bool:
    """A method that calls the inherited method of its own name: `super().m(...)`, or
    `Base.m(self, ...)` of one of its class's bases (the base's behaviour still runs)."""
    bases = set(scope.cls.bases) if scope.cls is not None else set()
    for call in scope.calls:
        if call.tail != scope.name or call.receiver is None:
            continue
        receiver = call.receiver
        if isinstance(receiver, cst.Call) and _dotted(receiver.func) == "super":
            return True
        if _dotted(receiver) in bases:
            return True
    return False


def _callbacks(facts: Facts, methods: dict, program) -> set:
    """Methods handed as a callable to a registration call (`selector.register(sock, EVENT_READ,
    self.on_accept)`, `loop.add_reader(fd, self.on_accept)`) by a function that runs a loop: the
    loop's dispatch (`key.data(...)`) calls them once per event. Not a spawn's target (that
    runs once, in a thread or process)."""
    out = set()
    for scope in methods.values():
        if not any(loop.kind == "while" for loop in scope.loops):
            continue
        for call in scope.calls:
            if _spawn_kind(call, program.contexts) or call.qual in THREAD_POOLS or call.tail in ("submit", "map"):
                continue
            for arg in call.node.args:
                value = arg.value
                if (isinstance(value, cst.Attribute) and isinstance(value.value, cst.Name)
                        and value.value.value == "self" and value.attr.value in methods):
                    out.add(value.attr.value)
    return out


def _accepted_names(facts: Facts, scope) -> set:
    """Names bound to an accepted connection: `conn, addr = s.accept()`, `with s.accept()[0] as c`."""
    names = set()
    for _, targets, value in scope.assigns:
        if isinstance(value, cst.Await):
            value = value.expression
        if isinstance(value, cst.Subscript):
            value = value.value
        if (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and value.func.attr.value == "accept" and targets):
            names.add(targets[0])
    return names


def _child_ignores(facts: Facts, scope, accepted: set, fork) -> bool:
    """`pid = os.fork()` whose child branch (`if pid == 0:`) never touches the accepted connection:
    the child does other work (a fork-on-request service), it does not serve this client."""
    if fork.qual not in RAW_FORKS or len(fork.targets) != 1 or not accepted:
        return False
    pid = fork.targets[0]
    children = []

    class _ChildBranch(cst.CSTVisitor):
        def visit_If(self, node):
            test = facts.code(node.test).replace(" ", "")
            if test in (f"{pid}==0", f"not{pid}", f"0=={pid}"):
                children.append(node.body)

    scope.node.visit(_ChildBranch())
    return bool(children) and not any(
        re.search(rf"\b{re.escape(name)}\b", facts.code(body)) for body in children for name in accepted)


def _closed_before(facts: Facts, loop, accepted: set, fork) -> bool:
    """The parent closed the accepted connection before forking: the child cannot serve that
    client (a fork server that only receives fds over it, as multiprocessing's forkserver does)."""
    return any(c.tail == "close" and c.receiver is not None and c.order < fork.order
               and facts.key(c.receiver) in accepted for c in loop.calls)


def _spawn_kind(call, contexts=frozenset()) -> str | None:
    if call.qual in THREAD_STARTERS:
        return "SCL301"
    if call.qual in FORKERS:
        return "SCL302"
    if call.tail == "Process" and call.receiver is not None and contexts:
        # ctx.Process(...) on a multiprocessing context (`self._ctx = multiprocessing.get_context()`)
        receiver = call.receiver
        if isinstance(receiver, cst.Call):
            return "SCL302" if id(receiver) in contexts else None
        name = _dotted(receiver)
        if name is not None and (name in contexts or name.split(".", 1)[-1] in contexts):
            return "SCL302"
    return None


def _dotted(node):
    from syscall_lint.python.facts import dotted_name

    return dotted_name(node)


def _contexts(facts: Facts) -> frozenset:
    """Names bound to a multiprocessing context (`ctx = mp.get_context("fork")`, also a class
    attribute read as `self._ctx`), and the ids of the get_context calls (`get_context().Process`)."""
    names = set()
    for call in facts.calls:
        if call.qual in MP_CONTEXTS:
            names.update(call.targets)
            names.add(id(call.node))
    return frozenset(names)


def _local_mixin(program: "_Program", cls):
    """(kind, mixin name) for a stream server that gets its per-request thread or process from a
    base class of this module (`class ThreadingTCPServer(ThreadingMixIn, TCPServer)` where both are
    defined here): the inherited process_request spawns, and get_request accepts a connection."""
    methods = program.effective(cls)
    dispatch = methods.get("process_request")
    if dispatch is None or dispatch.cls is cls:
        return None
    found = program.spawn_in(dispatch, methods)
    if found is None:
        return None
    accepting = methods.get("get_request")
    stream = (accepting is not None and bool(_accept_calls(accepting))) or any(
        q in STREAM_SERVERS for base in program.bases(cls) for q in base.quals)
    return (found[0], dispatch.cls.name) if stream else None


class _Program:
    """Per-module call summaries for the accept path: which functions start a thread or a
    process (directly, or through module-level helpers and `self.` methods resolved in a class)."""

    def __init__(self, facts: Facts):
        self.functions = {s.name: s for s in facts.scopes
                          if s.cls is None and isinstance(s.node, cst.FunctionDef) and s.name not in facts.imports}
        self.methods: dict = {}
        for scope in facts.scopes:
            if scope.cls is not None and isinstance(scope.node, cst.FunctionDef):
                self.methods.setdefault(id(scope.cls), {}).setdefault(scope.name, scope)
        self.by_name = {c.name: c for c in facts.classes}
        self.contexts = _contexts(facts)

    def bases(self, cls) -> list:
        """The class and its local bases (breadth first)."""
        seen: list = []
        todo = [cls]
        while todo and len(seen) < 30:
            current = todo.pop(0)
            if current not in seen:
                seen.append(current)
                todo.extend(self.by_name[b] for b in current.bases if b in self.by_name)
        return seen

    def effective(self, cls) -> dict:
        out: dict = {}
        seen: list = []
        todo = [cls]
        while todo and len(seen) < 30:
            current = todo.pop(0)
            if current in seen:
                continue
            seen.append(current)
            for name, scope in self.methods.get(id(current), {}).items():
                out.setdefault(name, scope)
            todo.extend(self.by_name[b] for b in current.bases if b in self.by_name)
        return out

    def callee(self, call, methods: dict):
        """The scope a call runs: `self.m(...)` in this class, or a module-level function."""
        if call.receiver is not None and isinstance(call.receiver, cst.Name) and call.receiver.value == "self":
            return methods.get(call.tail)
        if call.receiver is None and call.qual is None:
            return self.functions.get(call.tail)
        return None

    def spawn_in(self, scope, methods: dict, depth: int = 0, after: int = 0):
        """(kind, the call to report) for the first spawn `scope` makes: the spawn itself, or the call
        of a module-level helper that spawns (the report stays in the class that owns the path)."""
        if depth > SUMMARY_DEPTH:
            return None
        for call in scope.calls:
            if call.order <= after:
                continue
            kind = _spawn_kind(call, self.contexts)
            if kind:
                return kind, call
            inner = self.callee(call, methods)
            if inner is None or inner is scope:
                continue
            found = self.spawn_in(inner, methods, depth + 1)
            if found:
                return found if inner.cls is not None else (found[0], call)
        return None


def _accept_calls(scope) -> list:
    return [c for c in scope.calls if c.tail == "accept" and c.receiver is not None and not c.node.args]


def _spawns_on_accept_path(facts: Facts):
    """A thread or process per connection where the accept and the spawn are in different
    functions: the serve loop calls `self.dispatch(conn)`, overridden by a subclass to fork; an
    accept callback (`handle_accepted`) calls a factory method a subclass overrides to make a
    Thread; a handler called from a select loop accepts once and starts a thread."""
    program = _Program(facts)
    contexts = [(cls, program.effective(cls)) for cls in facts.classes]
    contexts.append((None, program.functions))
    for cls, methods in contexts:
        called_in_loops = {c.tail for s in methods.values() for loop in s.loops for c in loop.calls
                           if program.callee(c, methods) is not None}
        if cls is not None:
            called_in_loops |= _callbacks(facts, methods, program)
        for name, scope in methods.items():
            accepts = _accept_calls(scope)
            if accepts:
                for accept in accepts:
                    if accept.loop is not None:  # serve loop: what the loop calls after the accept
                        calls = [c for c in accept.loop.calls + _after_retry(accept.loop)
                                 if c.order > accept.order and not _spawn_kind(c, program.contexts)]
                    elif name in called_in_loops or name in ACCEPT_CALLBACKS:
                        calls = [c for c in scope.calls if c.order > accept.order]
                    else:
                        continue
                    for call in calls:
                        kind = _spawn_kind(call, program.contexts)
                        inner = None if kind else program.callee(call, methods)
                        found = (kind, call) if kind else (
                            program.spawn_in(inner, methods, 1) if inner is not None else None)
                        if found and not _child_drops_connection(facts, found[1]):
                            kind, site = found if inner is None or inner.cls is not None else (found[0], call)
                            yield Hit(kind, site.node, {"call": call_label(site)})
            elif name in ACCEPT_CALLBACKS and cls is not None:
                found = program.spawn_in(scope, methods)
                if found and not _child_drops_connection(facts, found[1]):
                    yield Hit(found[0], found[1].node, {"call": call_label(found[1])})


def _child_drops_connection(facts: Facts, spawn) -> bool:
    """A fork whose child closes the connection it was given (`if pid == 0: conn.close()`) does not
    serve that client: a pool that grows on demand, or a fork server handing out children."""
    if spawn.qual not in RAW_FORKS:
        return False
    scope = spawn.scope
    names = set(scope.params) - {"self"}
    pid = spawn.targets[0] if len(spawn.targets) == 1 else None
    found = []

    class _ChildBranch(cst.CSTVisitor):
        def visit_If(self, node):
            test = facts.code(node.test).replace(" ", "")
            forked = (pid is not None and (f"{pid}==0" in test or test == f"not{pid}")) or "fork()==0" in test
            if forked and any(f"{name}.close()" in facts.code(node.body) for name in names):
                found.append(node)

    scope.node.visit(_ChildBranch())
    return bool(found)
