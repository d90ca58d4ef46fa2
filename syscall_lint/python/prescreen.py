"""Cheap, conservative gates in front of libcst.

Stage 1 is textual: a rule module can only report if words its rules need appear in the file.
Stage 2 parses with `ast` (several times cheaper than libcst) and asks, per function and per loop,
the same structural questions the libcst rules ask, only more loosely: a rule module runs only if
some function or loop has the calls it needs. Both stages only drop files on which the rules
provably stay silent; a test checks gated and ungated runs agree on the fixtures and the stdlib.
"""

from __future__ import annotations

import ast
from collections import deque

from syscall_lint.python.lines import source_lines
from syscall_lint.python.rulekit import registry
from syscall_lint.python.rules.batching import SOCKET_FACTORIES
from syscall_lint.python.rules.connections import SUMMARY_DEPTH
from syscall_lint.python.vocabulary import (ACCEPT_CALLBACKS, ALL_TAILS, DELEGATORS, FILE_SYNC_TAILS, HANDLER_TAILS,
                                            OPEN_TAILS, RENAME_TAILS, RULE_MODULES, SERVER_TAILS, SHARED_TAILS,
                                            SPAWNER_CLASS_TAILS, SPAWNER_TAILS, THREAD_TAILS, tails)


def text_modules(text: str, view=None) -> set:
    """The rule families whose own text screen (their declared vocabulary) passes on `text`, and
    those the file's project imports can bring in (`view`: a project.ProjectView, whose names stand
    for words the text need not contain: `spawn(...)` imported from a helper that starts a Thread)."""
    found = {name for name, rule in registry().items() if rule.screen(text)}
    if view:
        found |= view.families() & set(registry())
    return found


def _tail(node):
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


class _Scope:
    __slots__ = ("tails", "renames", "writes_open", "syncs", "returns")

    def __init__(self):
        self.tails = set()
        self.renames = False
        self.writes_open = False
        self.syncs = False
        self.returns = False  # returns a value: may hand a file it opened to its caller


_LOOPS = frozenset({ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp})
_FUNCTIONS = frozenset({ast.FunctionDef, ast.AsyncFunctionDef})
# Nodes with nothing the gate asks about below them; most of a tree is these.
_INERT = frozenset({ast.Name, ast.Constant, ast.Load, ast.Store, ast.Del, ast.alias, ast.Pass, ast.Break,
                    ast.Continue, ast.Global, ast.Nonlocal, ast.Import, ast.ImportFrom}
                   | {cls for cls in vars(ast).values() if isinstance(cls, type)
                      and issubclass(cls, (ast.operator, ast.unaryop, ast.cmpop, ast.boolop))})


class _Leave:
    """Marks the end of a function (with the loops of the scope around it) or of a loop (None)."""
    __slots__ = ("outer_loops",)

    def __init__(self, outer_loops):
        self.outer_loops = outer_loops


class _Walker:
    """One pass: per-function call facts (nested functions count for their parents too, which
    only makes the gate looser) and per-loop facts for the batching, connections and ordering rules.

    The walk uses an explicit stack, not recursion: valid code nested deeper than Python's
    recursion limit (hundreds of nested lambdas or brackets) must still pass through the gate."""

    def __init__(self, aliases, unbuffered: bool, servers=SERVER_TAILS, bound=None, roots=frozenset(),
                 sockets: bool = True, spawner_classes=frozenset()):
        self.aliases = aliases
        self.sockets = sockets  # the file can make or accept a socket (ModuleNames.sockets)
        self.roots = roots  # imported and module-level-bound names: what `x.replace(a, b)` may resolve through
        self.bound = bound or {}  # name -> tails of the names it is bound to (`x = mod.attr`)
        self.used_binding = False
        self.spawner_classes = spawner_classes  # names ModuleNames bound to Thread/Process as subclasses
        self.used_spawner_class = False
        self.has_class = False
        self.accept_path = False  # an accept() call or an accept callback: spawns may be summarised
        self.unbuffered = unbuffered
        self.servers = servers  # the stdlib's threading/forking servers and this file's subclasses
        self.scopes = [_Scope()]
        self.all_scopes = [self.scopes[0]]
        self.loops = []  # stack of lists of (tail, call node)
        self.batching = False
        self.connections = False
        self.shared = False
        self.while_loops = False

    def _name(self, node):
        name = _tail(node)
        return self.aliases.get(name, name)

    def visit(self, root) -> None:
        # entries are AST nodes to enter, or a _Leave to close a function or loop after its body
        stack = [root]
        pop, push = stack.pop, stack.append
        while stack:
            node = pop()
            kind = type(node)
            if kind is _Leave:
                self._leave(node)
                continue
            leave = self._enter(node, kind)
            if leave is not None:
                push(leave)
            # children in reverse, so they are entered in source order; leaves that cannot hold a
            # call, loop or definition (names, constants, contexts, operators) are never pushed
            for name in reversed(node._fields):
                value = getattr(node, name, None)
                if type(value) is list:
                    for item in reversed(value):
                        if isinstance(item, ast.AST) and type(item) not in _INERT:
                            push(item)
                elif isinstance(value, ast.AST) and type(value) not in _INERT:
                    push(value)

    def _enter(self, node, kind):
        """Record what `node` says; return the _Leave that closes it, or None."""
        if kind is ast.Call:
            self._call(node)
            tail = _tail(node.func)
            if tail in _CLASS_HANDOFFS and any(
                    self._names_server(a, self.servers if tail == "type" else _HELD_SERVERS) for a in node.args):
                self._dynamic_server()
        elif kind is ast.Assign or kind is ast.AnnAssign:
            if node.value is not None and self._names_server(node.value, _HELD_SERVERS):
                self._dynamic_server()
        elif kind in _FUNCTIONS:
            if node.name in ACCEPT_CALLBACKS:
                self.accept_path = True
            if _shared_params(node):  # `shm: SharedMemory`: SCL501 takes the parameter as shared
                self.shared = True
            scope = _Scope()
            self.scopes.append(scope)
            self.all_scopes.append(scope)
            saved, self.loops = self.loops, []
            return _Leave(saved)
        elif kind in _LOOPS:
            if kind is ast.While:
                self.while_loops = True
            self.loops.append([])
            return _Leave(None)
        elif kind is ast.ClassDef:
            self._class(node)
        elif kind is ast.Return and node.value is not None:
            self.scopes[-1].returns = True
        return None

    def _names_server(self, value, servers) -> bool:
        """Does `value` name one of `servers` (also as a branch of `a if c else b` / `a or b`, or in
        a tuple of bases): what connections' _dynamic_servers looks at, by last name."""
        kind = type(value)
        if kind is ast.Name or kind is ast.Attribute:
            tail = _tail(value)
            return self._name(value) in servers or bool(self.bound.get(tail, set()) & servers)
        if kind is ast.IfExp:
            return self._names_server(value.body, servers) or self._names_server(value.orelse, servers)
        if kind is ast.BoolOp or kind is ast.Tuple:
            return any(self._names_server(v, servers) for v in (value.values if kind is ast.BoolOp else value.elts))
        return False

    def _dynamic_server(self) -> None:
        # a server class built by type(), handed to partial or held in a variable: the rule looks
        # for where the variable is instantiated anywhere in the file, so libcst needs all of it
        self.connections = True
        self.used_binding = True

    def _leave(self, leave: "_Leave") -> None:
        if leave.outer_loops is not None:  # a function: back to the enclosing scope's loops
            self.loops = leave.outer_loops
            scope = self.scopes.pop()
            self.scopes[-1].tails |= scope.tails
            return
        calls = self.loops.pop()
        self._judge_loop(calls)
        if self.loops:
            self.loops[-1].extend(calls)

    def _class(self, node):
        self.has_class = True
        if any(self.bound.get(_tail(b), set()) & self.servers for b in node.bases):
            self.used_binding = True  # the base's binding must be in what libcst sees
        if any(self._name(b) in self.servers or self.bound.get(_tail(b), set()) & self.servers
               for b in node.bases):
            self.connections = True
            if isinstance(self.servers, set):
                self.servers.add(node.name)

    def _judge_loop(self, calls):
        tails = {t for t, _ in calls}
        if "accept" in tails and tails & SPAWNER_TAILS:
            self.connections = True
        if "flush" in tails:
            self.batching = True
        for tail, call in calls:
            if tail in ("send", "sendall"):
                # batching judges a send only on a socket: a name made by a socket factory or an
                # accept (none in this file, when `sockets` is False), `self.request` or a name
                # that says `sock`; a generator's `.send(None)` is none of these
                if self.sockets or _maybe_socket(call.func):
                    self.batching = True
            elif tail == "print" and any(k.arg == "flush" for k in call.keywords):
                self.batching = True
            elif tail in ("write", "writelines"):
                func = call.func
                # os.write (through any alias), a bare `write` imported from os, or any write when
                # the file opens something unbuffered
                if self.unbuffered or isinstance(func, ast.Name) or (
                        isinstance(func.value, ast.Name)
                        and (func.value.id in _OS_NAMES or self.aliases.get(func.value.id) in _OS_NAMES)):
                    self.batching = True

    def _call(self, node):
        name = self._name(node.func)
        if name:
            self._call_named(node, name)
            root = node.func
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root is not node.func and root.id in self.bound:
                self.used_binding = True  # `_os.replace(...)`: resolved through a binding
            for bound in self.bound.get(_tail(node.func), ()):
                # `replace = os.replace` (module level) then `replace(a, b)`: the facts resolve
                # the name through the binding, so the gate judges the call under both names
                if bound != name:
                    if _tail(node.func) in self.spawner_classes:
                        self.used_spawner_class = True  # only connections needs the class statements
                    else:
                        self.used_binding = True
                    self._call_named(node, bound)
            if name in _DELEGATOR_TAILS:  # to_thread(os.replace, a, b): the rules see that rename
                for arg in node.args:
                    tail = self._name(arg) if isinstance(arg, (ast.Name, ast.Attribute)) else None
                    if tail in RENAME_TAILS or tail in FILE_SYNC_TAILS:
                        self._call_named(node, tail)

    def _call_named(self, node, name):
        scope = self.scopes[-1]
        if name:
            scope.tails.add(name)
            if name in RENAME_TAILS:
                if name != _tail(node.func) or _rename_candidate(node, self.roots):
                    scope.renames = True
            elif name in OPEN_TAILS:
                scope.writes_open = True
            elif name in FILE_SYNC_TAILS:
                scope.syncs = True
            elif name in SERVER_TAILS:
                self.connections = True
            elif name in SHARED_TAILS:
                self.shared = True
            if self.loops:
                self.loops[-1].append((name, node))


_CLASS_HANDOFFS = frozenset({"type", "partial"})  # connections' CLASS_BUILDERS and PARTIALS, by last name
# The stdlib server classes (not mixins) connections reports when held in a variable or handed to partial.
_HELD_SERVERS = frozenset(t for t in SERVER_TAILS if not t.endswith("MixIn"))
_OS_NAMES = frozenset({"os", "posix", "nt"})  # facts.CANONICAL_MODULES: the OS modules are os
# What makes a name a socket for batching (its SOCKET_FACTORIES' tails, `accept`, `wrap_socket`).
SOCKET_WORDS = tails(SOCKET_FACTORIES) | {"accept", "wrap_socket"}


def _maybe_socket(func) -> bool:
    """Can batching take the receiver of `x.send(...)` for a socket without knowing where it was
    made: `self.request` (in a request handler) or a name whose last part says `sock`. Anything
    that is not a plain name or attribute chain counts (the rule reads its code)."""
    if type(func) is not ast.Attribute:
        return False  # a bare `send(...)`: the rule needs a receiver
    dotted = _dotted(func.value)
    return dotted is None or dotted == "self.request" or "sock" in dotted.rsplit(".", 1)[-1].lower()


def _module_level_functions(tree) -> list:
    """Functions defined at module level, also inside `if`/`try`/`with` blocks (facts summarises a
    wrapper defined once per platform the same way)."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With)) or type(node).__name__ == "TryStar":
            todo.extend(getattr(node, "body", []))
            todo.extend(getattr(node, "orelse", []))
            todo.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                todo.extend(handler.body)
    return found
_DELEGATOR_TAILS = frozenset(name.rsplit(".", 1)[-1] for name in DELEGATORS)
_RENAME_OR_SYNC = RENAME_TAILS | FILE_SYNC_TAILS
_CONTEXT_MANAGERS = frozenset({"contextmanager", "asynccontextmanager"})


def _root(func):
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def _rename_candidate(node: ast.Call, roots) -> bool:
    """A call the rules can take for a rename: a bare name (`replace(a, b)` imported from os), a
    call through an imported or module-level-bound name (`os.replace`, `_os.rename`, `shutil.move`,
    any argument shape), or a method with one positional argument (`Path.rename(target)`).
    `text.replace("a", "b")` on a local is none of these: the facts cannot resolve it to a rename."""
    func = node.func
    if not isinstance(func, ast.Attribute):
        return True
    root = _root(func)
    if root is not None and (root in roots or root in _OS_NAMES):
        return True
    return len(node.args) == 1 and not node.keywords and not isinstance(node.args[0], ast.Starred)


def _publishes_params(call: ast.Call, params: list, roots) -> bool:
    """`os.rename(src, dst)` with the function's first two parameters: the facts then summarise
    the function as that rename (facts.Facts._apply_summaries asks the same)."""
    names = [a.id if isinstance(a, ast.Name) else None for a in call.args[:2]]
    return len(params) == 2 and names == params and _rename_candidate(call, roots)


_DEFINITIONS = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})
# Leaves with nothing below them that ModuleNames asks about (names stay: a stored name shadows).
_NAMES_INERT = _INERT - {ast.Name, ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal}


def walk_nodes(tree):
    """ast.walk's breadth-first order without its generators, skipping leaves that hold nothing
    (every node the gate's questions look at is visited: names, attributes, calls, statements)."""
    todo = deque([tree])
    popleft, append = todo.popleft, todo.append
    while todo:
        node = popleft()
        yield node
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST) and type(item) not in _NAMES_INERT:
                        append(item)
            elif isinstance(value, ast.AST) and type(value) not in _NAMES_INERT:
                append(value)


class ModuleNames:
    """What one walk of the tree tells about names: import aliases (for the gate), import lines and
    builtin-shadowing names (for the snippet's prelude)."""

    def __init__(self, tree, view=None):
        import builtins

        self.aliases: dict = {}
        self.bound: dict = {}  # name -> {tail}: `Mixin = socketserver.ForkingMixIn`, `x = os.replace`
        self.imported: set = set()  # every local name an import binds
        self.imports: list = []
        shadowed: set = set()
        sockets = False  # a socket can be made or accepted somewhere (batching's `send` needs one)
        file_ops: list = []  # (line, tail) of rename/sync calls: what a wrapper function does
        self.calls: list = []  # every call (may_rename_or_sync asks them once the names are known)
        self.classes: list = []  # every class statement, nested ones too
        self.spawner_classes: set = set()  # names bound only by _bind_spawner_classes
        self.spawner_attributes = False  # some class attribute is bound to a Thread/Process subclass
        calls = self.calls
        for node in walk_nodes(tree):
            kind = type(node)
            if kind is ast.Call:
                calls.append(node)
                tail = _tail(node.func)
                if tail in RENAME_TAILS or tail in FILE_SYNC_TAILS or tail in OPEN_TAILS:
                    file_ops.append((node.lineno, tail, node))
            elif kind is ast.Name:
                if type(node.ctx) is ast.Store:
                    shadowed.add(node.id)
                elif node.id in SOCKET_WORDS:
                    sockets = True
            elif kind is ast.Attribute:
                if node.attr in SOCKET_WORDS:
                    sockets = True
            elif kind is ast.Import:
                for a in node.names:
                    self.imported.add(a.asname or a.name.split(".")[0])
                    self.imports.append(f"import {a.name}" + (f" as {a.asname}" if a.asname else ""))
                    if a.asname:
                        self.aliases[a.asname] = a.name.rsplit(".", 1)[-1]
            elif kind is ast.ImportFrom:
                for a in node.names:
                    self.imported.add(a.asname or a.name)
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    if node.module and not node.level and a.name != "*":
                        self.imports.append(f"from {node.module} import {a.name}" + (f" as {a.asname}" if a.asname else ""))
            elif kind in _DEFINITIONS:
                shadowed.add(node.name)
                if kind is ast.ClassDef:
                    self.classes.append(node)
            elif kind is ast.ExceptHandler:
                if node.name:
                    shadowed.add(node.name)
            elif kind is ast.arguments:
                shadowed.update(a.arg for a in (*node.posonlyargs, *node.args, *node.kwonlyargs))
        self.shadowed_builtins = sorted(shadowed & set(dir(builtins)))
        self.sockets = sockets or any(name in SOCKET_WORDS for name in self.aliases.values())
        self._bind_module_level(tree)
        if view:  # names imported from the project stand for what their summaries say (project.py)
            for name, tails in view.gate_tails().items():
                self.bound.setdefault(name, set()).update(tails)
        self._bind_spawner_classes(tree)
        # names a dotted call can resolve through: imports (any form) and module-level bindings
        self.roots = self.imported | set(self.bound)
        if file_ops:  # a module-level function that renames or syncs: calls of it may be summarised
            for fn in _module_level_functions(tree):
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)][:2]
                    inside = {t for line, t, call in file_ops if fn.lineno <= line <= fn.end_lineno
                              and (t not in RENAME_TAILS or _publishes_params(call, params, self.roots))}
                    if not any(_tail(d) in _CONTEXT_MANAGERS or (isinstance(d, ast.Call) and _tail(d.func)
                               in _CONTEXT_MANAGERS) for d in fn.decorator_list):
                        inside -= OPEN_TAILS  # only a context manager hands its opened file to the caller
                    if inside:
                        self.bound.setdefault(fn.name, set()).update(inside)


    def may_rename_or_sync(self) -> bool:
        """Can the `ast` gate see a rename or a sync anywhere in the file? The durability gate needs
        one (a scope that renames or syncs: _judge, `made_apart`, `class_files`), so without one it
        drops durability whatever else the file does. Asks each call what _Walker._call would,
        more loosely (any binding to a rename or sync counts), so it never says no when the
        walker would say yes."""
        aliases, bound, roots = self.aliases, self.bound, self.roots
        for call in self.calls:
            tail = _tail(call.func)
            name = aliases.get(tail, tail)
            if name in FILE_SYNC_TAILS:
                return True
            if name in RENAME_TAILS and (name != tail or _rename_candidate(call, roots)):
                return True
            if tail in bound and bound[tail] & _RENAME_OR_SYNC:
                return True
            if name in _DELEGATOR_TAILS:
                for arg in call.args:
                    if isinstance(arg, (ast.Name, ast.Attribute)):
                        arg_tail = _tail(arg)
                        if aliases.get(arg_tail, arg_tail) in _RENAME_OR_SYNC:
                            return True
        return False

    def _bind_spawner_classes(self, tree) -> None:
        """A class whose bases lead to Thread or Process (by last name, through local bases and
        bindings), and a class attribute bound to one (`Worker = Session`): the facts take a call of
        it for that spawn (facts._apply_spawner_classes), so the gate judges it as `Thread`/`Process`."""
        classes = self.classes
        if not classes:
            return
        aliases, bound = self.aliases, self.bound
        before = set(bound)

        def made_by(node) -> set:
            tail = _tail(node)
            return ({aliases.get(tail, tail)} | bound.get(tail, set())) & SPAWNER_CLASS_TAILS if tail else set()

        for _ in range(8):
            changed = False
            for node in classes:
                made = set().union(*(made_by(base) for base in node.bases)) - bound.get(node.name, set())
                if made:
                    bound.setdefault(node.name, set()).update(made)
                    changed = True
            if not changed:
                break
        for node in classes:
            for stmt in node.body:
                if type(stmt) is ast.Assign and len(stmt.targets) == 1 and type(stmt.targets[0]) is ast.Name:
                    made = made_by(stmt.value) if isinstance(stmt.value, (ast.Name, ast.Attribute)) else set()
                    if made:
                        bound.setdefault(stmt.targets[0].id, set()).update(made)
                        self.spawner_attributes = True
        self.spawner_classes = set(bound) - before

    def handlers(self) -> list:
        """The request handler classes (nested ones too): a base named as one of the stdlib's, or a
        class of this file that is one (connections' _handler_spawns, by last name)."""
        handlers = set(HANDLER_TAILS)
        for _ in range(8):
            more = {node.name for node in self.classes if node.name not in handlers and any(
                self.aliases.get(_tail(b), _tail(b)) in handlers for b in node.bases)}
            if not more:
                break
            handlers |= more
        return [node for node in self.classes if node.name in handlers]

    def _bind_module_level(self, tree) -> None:
        """`x = mod.attr` or a wrapped callable `x = retry(...)(os.replace)` outside any function or
        class: the facts resolve `x` through it when it names something a rule knows (or a module
        the rules use), so the gate must judge calls of `x` under those names too. Looser than the
        facts: every name passed positionally counts, and every binding of `x`."""
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(node, ast.Assign):
                value = node.value
                if isinstance(value, (ast.Name, ast.Attribute)):
                    tails = {_tail(value)}
                elif isinstance(value, ast.Call):
                    tails = {_tail(a) for a in value.args if isinstance(a, (ast.Name, ast.Attribute))}
                else:
                    tails = set()
                tails = {self.aliases.get(t, t) for t in tails}  # `import os as o` then `x = o`
                tails = {t for t in tails if t in ALL_TAILS or t in RULE_MODULES}
                for target in node.targets:
                    if isinstance(target, ast.Name) and tails:
                        self.bound.setdefault(target.id, set()).update(tails)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    stack.append(child)


def _judge(node, aliases, unbuffered, seen=None, servers=SERVER_TAILS, bound=None, roots=frozenset(),
           sockets: bool = True, spawner_classes=frozenset()) -> set:
    walker = _Walker(aliases, unbuffered, servers, bound, roots, sockets, spawner_classes)
    walker.visit(node)
    if seen is not None:
        if walker.used_binding:
            seen["binding"] = True
        if walker.used_spawner_class:
            seen["spawner_class"] = True
        scopes = walker.all_scopes
        seen["accepts"] = seen.get("accepts", False) or walker.accept_path or any("accept" in s.tails for s in scopes)
        seen["spawns"] = seen.get("spawns", False) or any(s.tails & SPAWNER_TAILS for s in scopes)
        if seen.get("in_class") or walker.has_class:  # methods share `self.` files: note what any does
            seen["class_opens"] = seen.get("class_opens", False) or any(s.writes_open for s in walker.all_scopes)
            seen["class_renames"] = seen.get("class_renames", False) or any(s.renames for s in walker.all_scopes)
    if seen is not None:  # durability follows files from the function (or script) that makes them to another
        for s in walker.all_scopes:
            # a file opened by a helper that returns it, or by a script's top-level statement
            maker = s.writes_open and (s.returns or s is walker.all_scopes[0])
            if maker or s.renames:
                key = "opens_renames" if maker and s.renames else "opens" if maker else "renames"
                seen[key] = True
    if seen is not None:  # SCL501 follows shared objects across functions: gather file-wide
        seen["shared"] = seen.get("shared", False) or walker.shared
        seen["while"] = seen.get("while", False) or walker.while_loops
    wanted = set()
    if any(s.tails & THREAD_TAILS and s.tails & {"fork", "forkpty"} for s in walker.all_scopes):
        wanted.add("connections")
    if any(s.writes_open and (s.renames or s.syncs) for s in walker.all_scopes):
        wanted.add("durability")
    if walker.batching:
        wanted.add("batching")
    if walker.connections:
        wanted.add("connections")
    if walker.shared and walker.while_loops:
        wanted.add("ordering")
    return wanted


def _mentions(node, names: "ModuleNames") -> set:
    """Every name and attribute `node` mentions, also under the names they are bound or aliased to."""
    return _mentions_and_callees(node, names)[0]


def _mentions_and_callees(node, names: "ModuleNames") -> tuple:
    """(_mentions(node), _callees(node)) in one walk."""
    found, callees = set(), set()
    aliases, bound = names.aliases, names.bound
    for sub in walk_nodes(node):
        kind = type(sub)
        if kind is ast.Name:
            word = sub.id
            callees.add(word)
        elif kind is ast.Attribute:
            word = sub.attr
            if type(sub.value) is ast.Name and sub.value.id == "self":
                callees.add(word)
        else:
            continue
        found.add(word)
        found.add(aliases.get(word, word))
        if word in bound:
            found.update(bound[word])
    return found, callees


def _accept_reaches_spawn(tree, names: "ModuleNames") -> bool:
    """Can an accept path reach a spawn through calls, as connections' call summaries follow them
    (as deep as they do)? Looser than the rule: functions are known by name alone (every method and
    nested function of that name, in any class), a function may call every bare name and `self.`
    attribute it mentions (also callables passed as arguments), and spawns whenever it mentions a
    spawner's name (aliases, module-level bindings and project imports included); any loop counts
    as a serve loop, and module-level code that mentions `accept` as an accept path. When no spawn
    is reachable, the cross-function part of the rule cannot fire and the gate need not hand
    libcst the whole file."""
    by_name: dict = {}  # function name -> [(what it mentions, what it can call)]
    accepts_in_loop: set = set()  # ids of functions with a loop that mentions accept
    called_in_loops: set = set()
    functions = [node for node in walk_nodes(tree) if type(node) in _FUNCTIONS]
    for node in functions:
        mentioned, callees = _mentions_and_callees(node, names)
        by_name.setdefault(node.name, []).append((mentioned, callees, id(node)))
        # a loop in it mentions no more than the function does: look for one only when it can
        if "accept" in mentioned and any(type(loop) in _LOOPS and "accept" in _mentions(loop, names)
                                         for loop in walk_nodes(node)):
            accepts_in_loop.add(id(node))
    if any("accept" in f[0] and f[2] not in accepts_in_loop for group in by_name.values() for f in group):
        called_in_loops = _loop_callees(tree)  # (only asked about such functions)
        for node in functions:  # a callback a looping function registers (`register(sock, ev, self.on_accept)`)
            if any(type(sub) is ast.While for sub in walk_nodes(node)):
                called_in_loops |= _callees(node)
    # an accept path: an accept in a serve loop, an accept in a function some loop calls, or an
    # accept callback (the rule asks the same, per class; here any loop and any class will do)
    todo = [f for name, group in by_name.items() for f in group if name in ACCEPT_CALLBACKS or (
        "accept" in f[0] and (f[2] in accepts_in_loop or name in called_in_loops))]
    top = [node for node in tree.body if type(node) not in _FUNCTIONS and type(node) is not ast.ClassDef]
    mentioned_at_top = set().union(*(_mentions(node, names) for node in top))
    if "accept" in mentioned_at_top:
        todo.append((mentioned_at_top, set().union(*(_callees(node) for node in top)), None))
    visited: set = set()
    for _ in range(SUMMARY_DEPTH + 1):  # the accept path, then the calls connections follows from it
        if any(mentioned & SPAWNER_TAILS for mentioned, _, _ in todo):
            return True
        called = {name for _, callees, _ in todo for name in callees if name in by_name} - visited
        visited |= called
        todo = [f for name in called for f in by_name[name]]
    return False


def _handler_reaches_spawn(tree, names: "ModuleNames") -> bool:
    """Can a request handler's setup()/handle() reach a spawn through calls, as connections'
    _handler_spawns follows them? Looser than the rule: the hooks of every handler class (and of
    every class, for methods a handler inherits from a local base), callees known by name alone."""
    handlers = names.handlers()
    if not handlers:
        return False
    # the handlers and the local classes they inherit from (a mixin may bring the hook)
    owners, todo_classes = [], list(handlers)
    by_class = {}
    for node in names.classes:
        by_class.setdefault(node.name, []).append(node)
    while todo_classes and len(owners) < 200:
        node = todo_classes.pop()
        if node not in owners:
            owners.append(node)
            todo_classes.extend(c for b in node.bases for c in by_class.get(_tail(b), ()))
    todo = [_mentions_and_callees(item, names) for node in owners for item in node.body
            if type(item) in _FUNCTIONS and item.name in ("setup", "handle")]
    if not todo:
        return False
    by_name: dict = {}
    for node in walk_nodes(tree):
        if type(node) in _FUNCTIONS:
            mentioned, callees = _mentions_and_callees(node, names)
            by_name.setdefault(node.name, []).append((mentioned, callees))
    visited: set = set()
    for _ in range(SUMMARY_DEPTH + 2):
        if any(mentioned & SPAWNER_TAILS for mentioned, _ in todo):
            return True
        called = {name for _, callees in todo for name in callees if name in by_name} - visited
        visited |= called
        todo = [f for name in called for f in by_name[name]]
    return False


def _with_spawner_classes(tree, parts, names: "ModuleNames"):
    """`parts` with the statements of the file's Thread/Process subclasses (their headers: the
    facts resolve a call of one through its bases), or None (the whole file) when one is nested in
    a function or read through a class attribute (the facts then need more of the module)."""
    from types import SimpleNamespace

    if names.spawner_attributes:
        return None
    index = {id(node): i for i, node in enumerate(tree.body)}
    headers, whole, members = set(), set(), {}
    for node in names.classes:
        if node.name not in names.spawner_classes:
            continue
        if id(node) in index:
            headers.add(index[id(node)])
            continue
        # nested: the top-level statement around it (of a class, the member around it)
        i, outer = next(((i, top) for i, top in enumerate(tree.body)
                         if top.lineno <= node.lineno <= top.end_lineno), (None, None))
        if outer is None:
            return None
        member = next((item for item in outer.body if item.lineno <= node.lineno <= item.end_lineno), None) \
            if type(outer) is ast.ClassDef else None
        if member is not None:
            members.setdefault(i, []).append(member)
        else:
            whole.add(i)
    return _with_needs(tree, parts, SimpleNamespace(whole=whole, members=members, headers=headers))


def _callees(node) -> set:
    """The functions a scope can call as connections resolves calls: bare names (module-level and
    nested functions, also passed as callables) and `self.` methods, by name."""
    found = set()
    for sub in walk_nodes(node):
        kind = type(sub)
        if kind is ast.Name:
            found.add(sub.id)
        elif kind is ast.Attribute and type(sub.value) is ast.Name and sub.value.id == "self":
            found.add(sub.attr)
    return found


def _loop_callees(tree) -> set:
    """_callees of every loop in the tree: those of the outermost loops (the inner ones are in them)."""
    found: set = set()
    todo = [tree]
    while todo:
        node = todo.pop()
        if type(node) in _LOOPS:
            found |= _callees(node)
            continue
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                todo.extend(item for item in value if isinstance(item, ast.AST) and type(item) not in _NAMES_INERT)
            elif isinstance(value, ast.AST) and type(value) not in _NAMES_INERT:
                todo.append(value)
    return found


def _dotted(node):
    parts = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is not ast.Name:
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _dotted_names(node) -> set:
    return {d for sub in walk_nodes(node) if type(sub) in (ast.Name, ast.Attribute) for d in (_dotted(sub),) if d}


def _touches(dotted: set, shared: set) -> bool:
    """ordering's `is_shared`: the name, or the name without its last attribute, is shared."""
    return any(d in shared or d.rsplit(".", 1)[0] in shared for d in dotted)


def _shared_params(function) -> set:
    """Parameters whose annotation mentions a shared-memory type (`shm: SharedMemory`,
    `Optional[mmap.mmap]`): looser than ordering's `_annotated_shared` (any mention counts)."""
    args = function.args
    return {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)
            if a.annotation is not None and any(type(sub) in (ast.Name, ast.Attribute) and _tail(sub) in SHARED_TAILS
                                                 for sub in ast.walk(a.annotation))}


def _shared_polled(tree, names: "ModuleNames") -> bool:
    """Can SCL501 find a `while` loop that reads shared memory? The rule needs a name bound to
    shared memory (made here, returned by a helper of this module, a view of such a name, or a
    parameter it is passed to through `Process(args=...)`) read in a `while` loop. Looser than the
    rule: every call that mentions a shared-memory constructor counts as one (lock= and mmap's
    access flags are not asked), every function that mentions one or calls such a function is a
    maker, every assignment whose value mentions a shared name makes its targets shared, and a loop
    counts when any name anywhere in it is shared. When no loop can, ordering is not run at all."""
    def called(node) -> set:
        """What the callees of the calls in `node` mention (a call there `makes` shared memory when
        this meets SHARED_TAILS or the makers: computed once, asked again as makers grow)."""
        out: set = set()
        for sub in walk_nodes(node):
            if type(sub) is ast.Call:
                out |= _mentions(sub.func, names)
        return out

    functions = [n for n in walk_nodes(tree) if type(n) in _FUNCTIONS]
    calling = [(f.name, called(f)) for f in functions]
    makers: set = set()
    while True:
        making = SHARED_TAILS | makers
        grown = {name for name, words in calling if name not in makers and words & making}
        if not grown:
            break
        makers |= grown
    making = SHARED_TAILS | makers
    assigns = []  # (target dotted names, the value's dotted names)
    shared: set = set()
    calls = []  # (the dotted names a call mentions, the call)
    whiles = []
    for node in walk_nodes(tree):
        kind = type(node)
        pairs = ()
        if kind in (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr):
            targets = node.targets if kind is ast.Assign else [node.target]
            if node.value is not None:
                pairs = [(set().union(*(_dotted_names(t) for t in targets)), node.value)]
        elif kind in (ast.With, ast.AsyncWith):
            pairs = [(_dotted_names(item.optional_vars), item.context_expr) for item in node.items
                     if item.optional_vars is not None]
        elif kind in (ast.For, ast.AsyncFor, ast.comprehension):
            pairs = [(_dotted_names(node.target), node.iter)]
        elif kind is ast.Call:
            calls.append((_dotted_names(node), node))
        elif kind is ast.While:
            whiles.append(node)
        for targets, value in pairs:
            assigns.append((targets, _dotted_names(value)))
            if called(value) & making:
                shared |= targets
    for f in functions:
        shared |= _shared_params(f)
    params = {f.name: {a.arg for a in (*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs)} for f in functions}
    while shared:
        # a class attribute read through `self.`, or `self.x` read bare: both forms, to stay loose
        shared |= {f"self.{n}" for n in shared if "." not in n} | {n[5:] for n in shared if n.startswith("self.")}
        before = len(shared)
        for targets, value in assigns:
            if not targets <= shared and _touches(value, shared):
                shared |= targets
        for mentioned, call in calls:  # Process(target=f, args=(flag,)): f's parameters
            if _touches(mentioned, shared):
                for name in mentioned:
                    shared |= params.get(name, set())
                args = call.args  # setattr(obj, "name", view) (any such call, to stay loose)
                if len(args) == 3 and type(args[1]) is ast.Constant and isinstance(args[1].value, str):
                    shared |= {f"{d}.{args[1].value}" for d in _dotted_names(args[0])}
        if len(shared) == before:
            break
    if not shared:
        return False
    return any(_touches(_dotted_names(n), shared) for n in whiles)


def _span(node) -> tuple:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first, node.end_lineno


def plan(tree: ast.Module, text: str, names: ModuleNames) -> tuple:
    """(modules that can report, the parts of the file they need).

    The parts are the top-level statements, functions and methods (with their class's header) in
    which some rule could fire; libcst then parses only those, not the whole module. None means the
    whole file (cross-function rules such as SCL501 follow shared objects from one function to another)."""
    aliases = names.aliases
    unbuffered = "buffering" in text
    modules: set = set()
    parts: list = []
    local_servers: set = set(SERVER_TAILS)
    seen: dict = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            raw = {_tail(b) for b in node.bases}
            bases = {aliases.get(b, b) for b in raw if b}
            server = bool(bases & local_servers)
            if any(names.bound.get(b, set()) & local_servers for b in raw if b):
                server = seen["binding"] = True  # a base bound at module level: the facts need that line
            if server:
                local_servers.add(node.name)
                modules.add("connections")
            members = []
            seen["in_class"] = True
            for item in node.body:
                found = _judge(item, aliases, unbuffered, seen, local_servers, names.bound, names.roots, names.sockets,
                               names.spawner_classes)
                if found:
                    modules |= found
                    members.append(_span(item))
                elif server and getattr(item, "name", None) == "process_request":
                    members.append(_span(item))  # an override decides whether the mixin spawns
            seen["in_class"] = False
            if server or members:
                parts.append(("class", node, members))
            continue
        found = _judge(node, aliases, unbuffered, seen, local_servers, names.bound, names.roots, names.sockets,
                       names.spawner_classes)
        if found:
            modules |= found
            parts.append(("span", _span(node)))
    if seen.get("shared") and seen.get("while"):
        modules.add("ordering")
    if "ordering" in modules and not _shared_polled(tree, names):
        modules.discard("ordering")  # no loop can read shared memory: SCL501 need not see the file
    if seen.get("spawns") and _handler_reaches_spawn(tree, names):
        # a request handler's setup()/handle() may start a thread or process per connection,
        # directly or through the calls connections follows: the whole file
        modules.add("connections")
        seen["binding"] = True
    if seen.get("accepts") and seen.get("spawns") and _accept_reaches_spawn(tree, names):
        # an accept path and a spawn in different functions: the call summaries need the whole file
        modules.add("connections")
        seen["binding"] = True
    class_files = seen.get("class_opens") and seen.get("class_renames")
    if class_files:
        modules.add("durability")
    # a file made by a helper (or a top-level statement) and renamed elsewhere
    made_apart = bool((seen.get("opens") and (seen.get("renames") or seen.get("opens_renames"))) or (
        seen.get("renames") and seen.get("opens_renames")))
    if made_apart:
        modules.add("durability")
    if "connections" in modules and seen.get("spawner_class") and not seen.get("binding"):
        # a call of a Thread/Process subclass: the facts need its class statement (and its bases')
        parts = _with_spawner_classes(tree, parts, names)
        if parts is None:
            return modules, None
    if "ordering" in modules or seen.get("binding"):
        return modules, None  # whole file: the facts resolve names through module-level bindings
    if made_apart or class_files:
        # the functions that rename or sync, what they call, and the classes whose methods share
        # a file (gate_durability); module-level code that needs them all takes the whole file
        from syscall_lint.python.gate_durability import durability_needs

        needs = durability_needs(tree, names, _rename_candidate)
        if needs is None:
            return modules, None
        parts = _with_needs(tree, parts, needs)
    if "durability" in modules and parts and _flags_from_module(tree, text, names):
        return modules, None
    return modules, parts


def _with_needs(tree: ast.Module, parts: list, needs) -> list:
    """`parts` (as plan makes them) and what gate_durability.Needs asks for, in source order."""
    index = {id(node): i for i, node in enumerate(tree.body)}
    by_span = {_span(node): i for i, node in enumerate(tree.body)}
    whole, members, headers = set(needs.whole), {k: set(map(id, v)) for k, v in needs.members.items()}, set(needs.headers)
    for part in parts:
        if part[0] == "span":
            whole.add(by_span[part[1]])
            continue
        _, node, spans = part
        i = index[id(node)]
        headers.add(i)
        wanted = set(spans)
        members.setdefault(i, set()).update(id(item) for item in node.body if _span(item) in wanted)
    out = []
    for i, node in enumerate(tree.body):
        if i in whole:
            out.append(("span", _span(node)))
        elif i in members or i in headers:
            kept = members.get(i, set())
            out.append(("class", node, [_span(item) for item in node.body if id(item) in kept]))
    return out


def _flags_from_module(tree: ast.Module, text: str, names: "ModuleNames") -> bool:
    """`os.open(path, FLAGS)` with FLAGS (or a name a local set from it) set at module level: the
    rules read that assignment to know whether the file is opened for writing, and a snippet of
    functions would not hold it. Looser than the rules: any call named `open` with a name in its
    flags, in a function (or module-level code) that mentions a name set outside functions."""
    if not any(flag in text for flag in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")):
        return False  # no flags the rules act on: they read the same (nothing) either way
    assigned: set = set()
    module_code: list = []
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if type(node) in _FUNCTIONS:
            continue
        module_code.append(node)
        if type(node) is ast.Name and type(node.ctx) is ast.Store:
            assigned.add(node.id)
        todo.extend(ast.iter_child_nodes(node))
    if not assigned:
        return False
    units = [list(walk_nodes(n)) for n in walk_nodes(tree) if type(n) in _FUNCTIONS] + [module_code]
    for nodes in units:
        opens_with_flags = any(
            type(n) is ast.Call and names.aliases.get(_tail(n.func), _tail(n.func)) == "open"
            and (n.args[1:2] or any(k.arg == "flags" for k in n.keywords)) for n in nodes)
        if opens_with_flags and any(type(n) is ast.Name and n.id in assigned for n in nodes):
            return True
    return False


def snippet(text: str, parts, names: ModuleNames) -> tuple:
    """(source of just the needed parts, map from its line numbers to the file's).

    Imports and builtin-shadowing names come first (generated, so names resolve as in the whole
    file); every other line is copied verbatim with its indentation, so columns are unchanged."""
    lines = source_lines(text)
    out: list = list(names.imports)
    line_map: list = [0]  # 1-based
    out.extend(f"{name} = None" for name in names.shadowed_builtins)
    line_map.extend([0] * len(out))

    def copy(first, last):
        for n in range(first, last + 1):
            out.append(lines[n - 1] if n - 1 < len(lines) else "")
            line_map.append(n)

    for part in parts:
        if part[0] == "span":
            copy(*part[1])
            continue
        _, node, members = part
        first = _span(node)[0]
        body_first = node.body[0].lineno if node.body else node.end_lineno + 1
        body_first = min([body_first] + [d.lineno for d in getattr(node.body[0], "decorator_list", [])]) \
            if node.body else body_first
        if body_first <= node.lineno:  # a one-line class: take it whole
            copy(*_span(node))
            continue
        copy(first, body_first - 1)
        if members:
            for span in members:
                copy(*span)
        else:
            indent = " " * (node.body[0].col_offset if node.body else 4)
            out.append(f"{indent}pass")
            line_map.append(0)
    return "\n".join(out) + "\n", line_map
