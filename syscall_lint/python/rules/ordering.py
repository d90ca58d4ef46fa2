"""SCL501 raw-shared-load: shared memory polled with plain reads, with no primitive in the protocol."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from syscall_lint.python.rulekit import Hit, Rule
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
_SHARED = re.compile(r"SharedMemory|ShareableList|\bmmap\b|RawValue|RawArray|sharedctypes|lock\s*=\s*False")


class Ordering(Rule):
    """Shared memory polled with plain loads while no lock, event or queue orders the protocol
    (SCL501)."""

    name = "ordering"
    codes = frozenset({"SCL501"})
    words = ("SharedMemory", "ShareableList", "mmap", "RawValue", "RawArray", "Value", "Array", "sharedctypes")
    gated = True

    @classmethod
    def screen(cls, text: str) -> bool:
        return "while" in text and any(w in text for w in cls.words) and bool(_SHARED.search(text))

    def check(self, facts):
        _bind()
        return _check(facts)


def _shared_names(facts: Facts) -> set:
    names = set()
    for call in facts.calls:
        raw = call.qual in SHARED_FACTORIES
        if call.qual in LOCKABLE_SHARED:
            lock = call.keyword("lock")
            raw = isinstance(lock, cst.Name) and lock.value == "False"
        if raw:
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

        def visit_Attribute(self, node):
            if node.attr.value in ("value", "buf", "raw"):
                name = dotted_name(node.value)
                if name:
                    self.names.append(name)

        def visit_Subscript(self, node):
            name = dotted_name(node.value)
            if name:
                self.names.append(name)

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
    """The tests of `if ...: break` statements directly in a `while True:` body."""
    if not (isinstance(loop.test, cst.Name) and loop.test.value == "True") or not isinstance(loop.body, cst.IndentedBlock):
        return []
    out = []
    for stmt in loop.body.body:
        if isinstance(stmt, cst.If) and isinstance(stmt.body, cst.IndentedBlock) and any(
                isinstance(small, cst.Break) for line in stmt.body.body if isinstance(line, cst.SimpleStatementLine)
                for small in line.body):
            out.append(stmt.test)
        elif isinstance(stmt, cst.If) and isinstance(stmt.body, cst.SimpleStatementSuite) and any(
                isinstance(small, cst.Break) for small in stmt.body.body):
            out.append(stmt.test)
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
            polled = [n for n in reads.names if n in local or n.rsplit(".", 1)[0] in local]
            if not polled:
                continue
            yield Hit("SCL501", loop.node, {"loop_line": facts.position(loop.node)[0], "target": f"'{polled[0]}'"})
