"""SCL501 raw-shared-load: shared memory polled with plain reads, with no primitive in the protocol."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from syscall_lint.python.rulekit import Hit, Rule
from syscall_lint.python.textscan import search_word
from syscall_lint.python.vocabulary import (LOCKABLE_SHARED, OBJECT_STATE_ATTRS, PROTOCOL_TAILS, SHARED_FACTORIES,
                                            SHARED_ANNOTATIONS)

if TYPE_CHECKING:
    from syscall_lint.python.facts import Facts

cst: Any = None  # libcst, bound by check(): the rule's contract imports without it
dotted_name: Any = None


def _bind() -> None:
    global cst, dotted_name
    if cst is None:
        import libcst
        from syscall_lint.python.facts import dotted_name as _dotted_name

        cst = libcst
        dotted_name = _dotted_name


# Value/Array are raw only with lock=False; the others are raw by construction
_SHARED_WORDS = ("SharedMemory", "ShareableList", "RawValue", "RawArray", "sharedctypes")
_MMAP = re.compile(r"mmap\b")  # as a word (textscan.py)
_UNLOCKED = re.compile(r"lock\s*=\s*False")


def _mentions_shared(text: str) -> bool:
    return any(w in text for w in _SHARED_WORDS) or bool(_UNLOCKED.search(text)) or search_word(_MMAP, text)


class Ordering(Rule):
    """Shared memory polled with plain loads while no lock, event or queue orders the protocol
    (SCL501)."""

    name = "ordering"
    codes = frozenset({"SCL501"})
    words = ("SharedMemory", "ShareableList", "mmap", "RawValue", "RawArray", "Value", "Array", "sharedctypes")
    gated = True

    @classmethod
    def screen(cls, text: str) -> bool:
        return "while" in text and any(w in text for w in cls.words) and _mentions_shared(text)

    def check(self, facts):
        _bind()
        return _check(facts)


def _raw_shared(call) -> bool:
    """A call that makes memory other processes see, with no lock of its own."""
    if call.qual in LOCKABLE_SHARED:
        lock = call.keyword("lock")
        return isinstance(lock, cst.Name) and lock.value == "False"
    if call.qual == "mmap.mmap":
        # a private (copy-on-write) map: no other process can change what it holds
        options = " ".join(dotted_name(a.value) or "" for a in call.node.args)
        return "ACCESS_COPY" not in options and "MAP_PRIVATE" not in options
    return call.qual in SHARED_FACTORIES


def _shared_names(facts: Facts) -> set:
    names = set()
    for call in facts.calls:
        if _raw_shared(call):
            names.update(call.targets)
    # helpers that return shared memory: `self.ctl = self.get_memory(name)`
    makers = _shared_makers(facts, names)
    if makers:
        for call in facts.calls:
            if call.tail in makers and call.qual is None and (
                    call.receiver is None or isinstance(call.receiver, cst.Name)):
                names.update(call.targets)
    # views of shared memory: buf = shm.buf, self.head = self.ctl.buf[0:4], memoryview(shm.buf).cast("i")
    stores = _attribute_stores(facts)
    for _ in range(2):  # a view of a view
        for scope in facts.scopes:
            for _, targets, value in [*scope.assigns, *stores.get(id(scope), ())]:
                base = _viewed(value)
                if base and len(targets) == 1 and (base in names or base.rsplit(".", 1)[0] in names):
                    names.add(targets[0])
    # parameters typed as shared memory: `def write(shm: SharedMemory, ...)`
    for scope in facts.scopes:
        if isinstance(scope.node, cst.FunctionDef):
            for param in (*scope.node.params.posonly_params, *scope.node.params.params,
                          *scope.node.params.kwonly_params):
                if param.annotation is not None and _annotated_shared(facts, param.annotation.annotation):
                    names.add(f"{scope.name}:{param.name.value}")
    _add_returned_views(facts, names)
    # shared objects handed to a process: Process(target=f, args=(flag, data)) marks f's parameters
    funcs = {s.name: s for s in facts.scopes if isinstance(s.node, cst.FunctionDef)}
    for call in facts.calls:
        if call.tail != "Process":
            continue
        target, args = call.keyword("target"), call.keyword("args")
        if not isinstance(target, cst.Name) or target.value not in funcs or not isinstance(args, cst.Tuple):
            continue
        params = funcs[target.value].params
        for param, element in zip(params, args.elements):
            if facts.key(element.value) in names:
                names.add(f"{target.value}:{param}")
    return names


_SETATTRS = frozenset({"builtins.setattr", "builtins.object.__setattr__"})


def _attribute_stores(facts: Facts) -> dict:
    """id(scope) -> [(order, [target], value)] for `setattr(obj, "name", value)` and
    `object.__setattr__(obj, "name", value)` (also through a local `d = object.__setattr__`),
    which bind `obj.name` as `obj.name = value` does."""
    out: dict = {}
    for call in facts.calls:
        qual = call.qual
        if qual not in _SETATTRS and call.receiver is None and call.qual is None:
            bound = [v for _, t, v in call.scope.assigns if t == [call.tail]]
            if len(bound) == 1 and facts.resolve(dotted_name(bound[0])) in _SETATTRS:
                qual = "builtins.setattr"
        positional = call.positional
        if qual not in _SETATTRS or len(positional) != 3:
            continue
        owner, name = dotted_name(positional[0].value), positional[1].value
        if owner is not None and isinstance(name, cst.SimpleString) and isinstance(name.evaluated_value, str):
            out.setdefault(id(call.scope), []).append(
                (call.order, [f"{owner}.{name.evaluated_value}"], positional[2].value))
    return out


def _annotated_shared(facts: Facts, annotation) -> bool:
    """`SharedMemory`, `mmap.mmap`, also `Optional[...]` / `... | None` of one."""
    if isinstance(annotation, cst.Subscript) and dotted_name(annotation.value) in ("Optional", "typing.Optional"):
        element = annotation.slice[0].slice if len(annotation.slice) == 1 else None
        return isinstance(element, cst.Index) and _annotated_shared(facts, element.value)
    if isinstance(annotation, cst.BinaryOperation) and isinstance(annotation.operator, cst.BitOr):
        return _annotated_shared(facts, annotation.left) or _annotated_shared(facts, annotation.right)
    return facts.resolve(dotted_name(annotation)) in SHARED_ANNOTATIONS


def _view_source(value):
    """The expression whose memory `value` views without copying: `x.buf[a:b]` (a slice),
    `memoryview(x)`, `x.cast(...)`, `numpy.frombuffer(x)`, `numpy.ndarray(shape, dtype, x)` or
    `numpy.ndarray(..., buffer=x)`; None when `value` is not such a view."""
    if isinstance(value, cst.Subscript):
        sliced = len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Slice)
        return value.value if sliced else None
    if not isinstance(value, cst.Call):
        return None
    func = dotted_name(value.func) or ""
    tail = value.func.attr.value if isinstance(value.func, cst.Attribute) else func
    positional = [a.value for a in value.args if a.keyword is None and a.star == ""]
    if func == "memoryview" and len(positional) == 1:
        return positional[0]
    if isinstance(value.func, cst.Attribute) and tail in ("cast", "toreadonly"):
        return value.func.value
    if tail == "frombuffer" and positional:
        return positional[0]
    if tail == "ndarray":
        keyword = next((a.value for a in value.args if a.keyword is not None and a.keyword.value == "buffer"), None)
        return keyword if keyword is not None else positional[2] if len(positional) > 2 else None
    return None


def _view_root(value):
    """The name a chain of views ends at (`np.ndarray(buffer=shm.buf)` -> `shm`), or None."""
    for _ in range(8):
        inner = _view_source(value)
        if inner is None:
            break
        value = inner
    name = dotted_name(value) if isinstance(value, (cst.Attribute, cst.Name)) else None
    if name is not None and name.endswith(".buf"):
        name = name[: -len(".buf")]
    return name


def _view_makers(facts: Facts) -> dict:
    """function name -> index of the parameter whose memory its return value views, for this
    module's functions (`def header(shm): return np.ndarray((4,), np.int64, shm.buf)`, also through
    a local or another such function) and the project functions the file imports (summaries)."""
    makers: dict = dict(facts.project.views)
    functions = [s for s in facts.scopes if isinstance(s.node, cst.FunctionDef) and s.cls is None]
    for _ in range(3):
        before = len(makers)
        for scope in functions:
            if scope.name in makers:
                continue
            origin = {p: p for p in scope.params}  # local -> the parameter it views
            for _, targets, value in scope.assigns:
                root = _called_view(facts, value, makers) or _view_root(value)
                if len(targets) == 1 and root in origin:
                    origin[targets[0]] = origin[root]
            for value in scope.returns:
                root = _called_view(facts, value, makers) or _view_root(value)
                if root in origin and not (isinstance(value, cst.Name) and value.value in scope.params):
                    makers[scope.name] = scope.params.index(origin[root])
                    break
        if len(makers) == before:
            break
    return makers


def _called_view(facts: Facts, value, makers: dict):
    """For `maker(x, ...)` where maker returns a view of its parameter i: the name passed there."""
    if not isinstance(value, cst.Call):
        return None
    index = makers.get(dotted_name(value.func) or "")
    positional = [a.value for a in value.args if a.keyword is None and a.star == ""]
    if index is None or index >= len(positional):
        return None
    return _view_root(positional[index])


def _add_returned_views(facts: Facts, names: set) -> None:
    """`hdr = header(shm)` where `header` returns a view of its argument and `shm` is shared in
    that function: `hdr` is shared there (recorded as `function:hdr`)."""
    makers = _view_makers(facts)
    if not makers:
        return
    for call in facts.calls:
        if len(call.targets) != 1 or (call.dotted or "") not in makers:
            continue
        root = _called_view(facts, call.node, makers)
        scope = call.scope.name
        if root is not None and (root in names or f"{scope}:{root}" in names):
            target = call.targets[0]
            scoped = isinstance(call.scope.node, cst.FunctionDef) and not target.startswith("self.")
            names.add(f"{scope}:{target}" if scoped else target)


def _shared_makers(facts: Facts, names: set) -> set:
    """Names of this module's functions and methods that return shared memory they made (or got
    from another such function)."""
    makers: set = set()
    functions = [s for s in facts.scopes if isinstance(s.node, cst.FunctionDef)]
    for _ in range(3):
        before = len(makers)
        for scope in functions:
            if scope.name in makers:
                continue
            local = {t for c in scope.calls if _raw_shared(c) or (c.tail in makers and c.qual is None)
                     for t in c.targets}
            for value in scope.returns:  # (facts collected them in the one pass over the module)
                if isinstance(value, cst.Name) and value.value in local:
                    makers.add(scope.name)
                elif isinstance(value, cst.Call):
                    call = next((c for c in scope.calls if c.node is value), None)
                    if call is not None and (_raw_shared(call) or (call.tail in makers and call.qual is None)):
                        makers.add(scope.name)
        if len(makers) == before:
            break
    return makers


def _viewed(value):
    """The name a view expression looks into: `x.buf[a:b]`, `memoryview(x.buf)`, `x.buf.cast(...)`."""
    for _ in range(8):
        if isinstance(value, cst.Subscript):
            if not any(isinstance(element.slice, cst.Slice) for element in value.slice):
                return None  # `x[0]` loads a value (a copy); only a slice `x[a:b]` is a view
            value = value.value
        elif isinstance(value, cst.Call) and dotted_name(value.func) == "memoryview" and len(value.args) == 1:
            value = value.args[0].value
        elif (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
              and value.func.attr.value in ("cast", "toreadonly")):
            value = value.func.value
        else:
            break
    if isinstance(value, cst.Attribute) and value.attr.value in OBJECT_STATE_ATTRS:
        return None  # `shm.name`, `region.size`: the object's own state, not its memory
    return dotted_name(value) if isinstance(value, (cst.Attribute, cst.Name)) else None


def _reads_visitor():
    """A visitor collecting the names read through `.value`/`.buf`/`.raw` or subscripts."""
    class _Reads(cst.CSTVisitor):
        def __init__(self):
            self.names = []
            self.attrs = set()

        def visit_Attribute(self, node):
            self.attrs.add(id(node.attr))  # `x.size`: `size` is not a name of its own
            if node.attr.value in OBJECT_STATE_ATTRS:
                self.attrs.add(id(node.value))  # `region.closed`: the object's own state, no load
            if node.attr.value in ("value", "buf", "raw"):
                name = dotted_name(node.value)
                if name:
                    self.names.append(name)

        def visit_Subscript(self, node):
            name = dotted_name(node.value)
            if name:
                self.names.append(name)

        def visit_Name(self, node):
            # a bare name: a flag loaded into a local earlier in the loop (`if ready == 0: continue`)
            if id(node) not in self.attrs:
                self.names.append(node.value)

        def visit_Call(self, node):
            # read through a decoder: int.from_bytes(view, ...), struct.unpack_from(fmt, view), bytes(view)
            for arg in node.args:
                name = dotted_name(arg.value)
                if name:
                    self.names.append(name)
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("tobytes", "tolist"):
                name = dotted_name(node.func.value)
                if name:
                    self.names.append(name)

    return _Reads()


def _exit_tests(loop: cst.While) -> list:
    """The tests of `if ...: break` (or `continue`, `return`) statements in a `while` body, also
    inside `with`, `try` and other `if` blocks (not in nested loops, whose break is their own)."""
    leaves = (cst.Break, cst.Continue, cst.Return)
    out = []

    def simple(block):
        lines = block.body if isinstance(block, cst.SimpleStatementSuite) else [
            line for line in getattr(block, "body", []) if isinstance(line, cst.SimpleStatementLine)]
        smalls = [small for line in lines for small in (line.body if isinstance(line, cst.SimpleStatementLine) else [line])]
        return any(isinstance(small, leaves) for small in smalls)

    def walk(block, depth=0):
        if depth > 8 or not isinstance(block, cst.IndentedBlock):
            return
        for stmt in block.body:
            if isinstance(stmt, cst.If):
                if simple(stmt.body):
                    out.append(stmt.test)
                walk(stmt.body, depth + 1)
                orelse = stmt.orelse
                while isinstance(orelse, cst.If):
                    if simple(orelse.body):
                        out.append(orelse.test)
                    walk(orelse.body, depth + 1)
                    orelse = orelse.orelse
                if orelse is not None:
                    walk(orelse.body, depth + 1)
            elif isinstance(stmt, (cst.With, cst.Try)):
                walk(stmt.body, depth + 1)

    walk(loop.body)
    return out


_LOCK_NAME = re.compile(r"lock|mutex|cond|sem(?:aphore)?\b", re.I)


def _under_lock(facts: Facts, scope, loop, sites) -> bool:
    """A real lock orders the polled loads: the loop runs inside `with lock:`, or takes one on
    every pass (a `with` that is a statement of the loop body), or the `with` holds the polled load
    or exit test itself. A lock taken only on a branch that does not exit (a recovery path) orders
    nothing the waiter reads, and `async with` is an asyncio lock (it orders this process's
    coroutines, not another process's stores)."""
    span = facts.positions[loop.node]
    every_pass = {id(stmt) for stmt in getattr(loop.node.body, "body", ())}
    site_lines = [facts.positions[site].start.line for site in sites]
    found = []

    class _Withs(cst.CSTVisitor):
        def visit_With(self, node):
            if node.asynchronous is not None or not any(_LOCK_NAME.search(facts.code(item.item))
                                                        for item in node.items):
                return
            rng = facts.positions[node]
            if rng.start.line <= span.start.line <= rng.end.line:
                found.append(node)  # the whole loop runs under the lock
            elif span.start.line <= rng.start.line <= span.end.line and (
                    id(node) in every_pass or any(rng.start.line <= line <= rng.end.line for line in site_lines)):
                found.append(node)

        def visit_FunctionDef(self, node):
            return node is scope.node

    scope.node.visit(_Withs())
    return bool(found)


def _assigned_in(facts: Facts, scope, loop) -> dict:
    """name -> values assigned to it inside the loop (a `while` statement: its lines)."""
    out: dict = {}
    for _, targets, value in scope.assigns:
        if facts.within(value, loop.node):
            for target in targets:
                out.setdefault(target, []).append(value)
    return out


def _check(facts: Facts):
    shared = _shared_names(facts)
    if not shared:
        return
    for scope in facts.scopes:
        if any(c.tail in PROTOCOL_TAILS for c in scope.calls):
            continue
        local = {n for n in shared if ":" not in n} | {n.split(":", 1)[1] for n in shared
                                                         if n.startswith(f"{scope.name}:")}
        for loop in scope.loops:
            if loop.kind != "while":
                continue
            reads = _reads_visitor()
            loop.node.test.visit(reads)
            exits = _exit_tests(loop.node)
            for check in exits:  # while True: if flag.value: break
                check.visit(reads)
            assigned = _assigned_in(facts, scope, loop)

            def is_shared(name, local=local):
                return name in local or name.rsplit(".", 1)[0] in local

            # a flag loaded into a local in the loop and tested there: `head = int.from_bytes(v)`
            loaded = set()
            loads = []  # the values that load shared memory into such a local
            for name, values in assigned.items():
                for value in values:
                    inner = _reads_visitor()
                    value.visit(inner)
                    if any(is_shared(n) for n in inner.names):
                        loaded.add(name)
                        loads.append(value)
            # a name the loop itself advances (`d = d[size:]`) is a cursor, not a value it waits for
            polled = [n for n in reads.names if (is_shared(n) and n not in assigned)
                      or (n in loaded and not is_shared(n))]
            if not polled or _under_lock(facts, scope, loop, [loop.node.test, *exits, *loads]):
                continue
            yield Hit("SCL501", loop.node, {"loop_line": facts.position(loop.node)[0], "target": f"'{polled[0]}'"})
