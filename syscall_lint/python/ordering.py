"""SCL501 raw-shared-load: shared memory polled with plain reads, with no primitive in the protocol."""

from __future__ import annotations

import libcst as cst

from syscall_lint.python.facts import Facts, dotted_name
from syscall_lint.python.rulekit import Hit

SHARED_FACTORIES = {
    "multiprocessing.shared_memory.SharedMemory", "multiprocessing.shared_memory.ShareableList",
    "mmap.mmap", "multiprocessing.RawValue", "multiprocessing.RawArray",
    "multiprocessing.sharedctypes.RawValue", "multiprocessing.sharedctypes.RawArray",
}
LOCKABLE = {"multiprocessing.Value", "multiprocessing.Array", "multiprocessing.sharedctypes.Value",
            "multiprocessing.sharedctypes.Array"}
# Anything here in the polling function means a primitive takes part in the protocol.
SYNC_TAILS = {"acquire", "release", "wait", "wait_for", "notify", "notify_all", "get_lock", "get", "put",
              "recv", "send", "poll", "Lock", "RLock", "Event", "Condition", "Semaphore", "BoundedSemaphore",
              "Barrier", "Queue", "SimpleQueue", "JoinableQueue", "Pipe", "set", "is_set"}


def _shared_names(facts: Facts) -> set:
    names = set()
    for call in facts.calls:
        raw = call.qual in SHARED_FACTORIES
        if call.qual in LOCKABLE:
            lock = call.keyword("lock")
            raw = isinstance(lock, cst.Name) and lock.value == "False"
        if raw:
            names.update(call.targets)
    # views of shared memory: buf = shm.buf
    for scope in facts.scopes:
        for _, targets, value in scope.assigns:
            base = dotted_name(value) if isinstance(value, cst.Attribute) else None
            if base and base.rsplit(".", 1)[0] in names and len(targets) == 1:
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


def check(facts: Facts):
    shared = _shared_names(facts)
    if not shared:
        return
    for scope in facts.scopes:
        if any(c.tail in SYNC_TAILS for c in scope.calls):
            continue
        local = {n for n in shared if ":" not in n} | {n.split(":", 1)[1] for n in shared
                                                         if n.startswith(f"{scope.name}:")}
        for loop in scope.loops:
            if loop.kind != "while":
                continue
            reads = _Reads()
            loop.node.test.visit(reads)
            for check in _exit_tests(loop.node):  # while True: if flag.value: break
                check.visit(reads)
            polled = [n for n in reads.names if n in local or n.rsplit(".", 1)[0] in local]
            if not polled:
                continue
            yield Hit("SCL501", loop.node, {"loop_line": facts.position(loop.node)[0], "target": f"'{polled[0]}'"})
