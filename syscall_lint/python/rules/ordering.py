"""SCL501 raw-shared-load: shared memory polled with plain reads, with no primitive in the protocol."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from syscall_lint.python.rulekit import Hit, Rule
from syscall_lint.python.textscan import search_word
from syscall_lint.python.vocabulary import LOCKABLE_SHARED, PROTOCOL_TAILS, SHARED_FACTORIES

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
    for _ in range(2):  # a view of a view
        for scope in facts.scopes:
            for _, targets, value in scope.assigns:
                base = _viewed(value)
                if base and len(targets) == 1 and (base in names or base.rsplit(".", 1)[0] in names):
                    names.add(targets[0])
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
            value = value.value
        elif isinstance(value, cst.Call) and dotted_name(value.func) == "memoryview" and len(value.args) == 1:
            value = value.args[0].value
        elif (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
              and value.func.attr.value in ("cast", "toreadonly")):
            value = value.func.value
        else:
            break
    return dotted_name(value) if isinstance(value, (cst.Attribute, cst.Name)) else None


def _reads_visitor():
    """A visitor collecting the names read through `.value`/`.buf`/`.raw` or subscripts."""
    class _Reads(cst.CSTVisitor):
        def __init__(self):
            self.names = []
            self.attrs = set()

        def visit_Attribute(self, node):
            self.attrs.add(id(node.attr))  # `x.size`: `size` is not a name of its own
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


def _under_lock(facts: Facts, scope, loop) -> bool:
    """The loop runs inside `with lock:` (or takes one in its body): a real lock orders the loads."""
    span = facts.positions[loop.node]
    found = []

    class _Withs(cst.CSTVisitor):
        def visit_With(self, node):
            if any(_LOCK_NAME.search(facts.code(item.item)) for item in node.items):
                rng = facts.positions[node]
                if rng.start.line <= span.start.line <= rng.end.line or (
                        span.start.line <= rng.start.line <= span.end.line):
                    found.append(node)

        def visit_FunctionDef(self, node):
            return node is scope.node

    scope.node.visit(_Withs())
    return bool(found)


def _assigned_in(facts: Facts, scope, loop) -> dict:
    """name -> values assigned to it inside the loop's lines."""
    span = facts.positions[loop.node]
    out: dict = {}
    for _, targets, value in scope.assigns:
        line = facts.positions[value].start.line
        if span.start.line <= line <= span.end.line:
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
            for check in _exit_tests(loop.node):  # while True: if flag.value: break
                check.visit(reads)
            assigned = _assigned_in(facts, scope, loop)

            def is_shared(name, local=local):
                return name in local or name.rsplit(".", 1)[0] in local

            # a flag loaded into a local in the loop and tested there: `head = int.from_bytes(v)`
            loaded = set()
            for name, values in assigned.items():
                for value in values:
                    inner = _reads_visitor()
                    value.visit(inner)
                    if any(is_shared(n) for n in inner.names):
                        loaded.add(name)
            # a name the loop itself advances (`d = d[size:]`) is a cursor, not a value it waits for
            polled = [n for n in reads.names if (is_shared(n) and n not in assigned)
                      or (n in loaded and not is_shared(n))]
            if not polled or _under_lock(facts, scope, loop):
                continue
            yield Hit("SCL501", loop.node, {"loop_line": facts.position(loop.node)[0], "target": f"'{polled[0]}'"})
