"""Cheap, conservative gates in front of libcst.

Stage 1 is textual: a rule can only fire if words it needs appear in the file. Stage 2 parses with
`ast` (~10x cheaper than libcst) and collects the call names (through import aliases), the call
names inside loops, and class base names; a rule module runs only if the facts it needs are there.
Both stages only ever drop files on which the rule provably stays silent: every rule in this package
needs a call or base whose last name is in its gate, and the gates see the same names libcst does.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

RENAME = {"rename", "replace", "renames", "move"}
WRITE_OPEN = {"open", "fdopen", "NamedTemporaryFile", "mkstemp", "write_text", "write_bytes"}
SYNC = {"fsync", "fdatasync"}
LOOP_OUTPUT = {"write", "writelines", "send", "sendall", "print", "flush"}
SERVERS = {"ThreadingMixIn", "ThreadingTCPServer", "ThreadingUnixStreamServer", "ThreadingHTTPServer",
           "ForkingMixIn", "ForkingTCPServer", "ForkingUnixStreamServer"}
SPAWNERS = {"Thread", "start_new_thread", "start_new", "_start_new_thread", "fork", "forkpty", "Process"}
SHARED = {"SharedMemory", "ShareableList", "mmap", "RawValue", "RawArray", "Value", "Array"}

# Stage 1: per analysis module, a regex that must match somewhere in the text.
TEXT = {
    "durability": re.compile(r"rename|replace|move|fsync|fdatasync"),
    "batching": re.compile(r"write|send|print|flush"),
    "connections": re.compile(r"Thread|Forking|fork|Process|start_new"),
    "ordering": re.compile(r"SharedMemory|ShareableList|mmap|RawValue|RawArray|Value|Array"),
}


@dataclass
class AstFacts:
    calls: set = field(default_factory=set)
    loop_calls: set = field(default_factory=set)
    bases: set = field(default_factory=set)


def _tail(node) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


class _Walker(ast.NodeVisitor):
    def __init__(self):
        self.facts = AstFacts()
        self.aliases: dict = {}
        self.loop_depth = 0

    def visit_ImportFrom(self, node):
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name

    def visit_Import(self, node):
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name.rsplit(".", 1)[-1]

    def _loop(self, node):
        self.loop_depth += 1
        self.generic_visit(node)
        self.loop_depth -= 1

    visit_For = visit_AsyncFor = visit_While = _loop
    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _loop

    def visit_ClassDef(self, node):
        for base in node.bases:
            name = _tail(base)
            if name:
                self.facts.bases.add(name)
        self.generic_visit(node)

    def visit_Call(self, node):
        name = _tail(node.func)
        if name:
            self.facts.calls.add(name)
            if self.loop_depth:
                self.facts.loop_calls.add(name)
        self.generic_visit(node)

    def finish(self) -> AstFacts:
        f = self.facts
        for alias, original in self.aliases.items():
            if alias in f.calls:
                f.calls.add(original)
            if alias in f.loop_calls:
                f.loop_calls.add(original)
            if alias in f.bases:
                f.bases.add(original)
        return f


def ast_facts(tree: ast.AST) -> AstFacts:
    walker = _Walker()
    walker.visit(tree)
    return walker.finish()


def modules_for(f: AstFacts) -> set:
    """Which analysis modules can possibly report on a file with these facts."""
    wanted = set()
    if (f.calls & RENAME and f.calls & WRITE_OPEN) or (f.calls & SYNC and f.calls & WRITE_OPEN):
        wanted.add("durability")
    if f.loop_calls & LOOP_OUTPUT:
        wanted.add("batching")
    if (f.bases | f.calls) & SERVERS or ("accept" in f.loop_calls and f.loop_calls & SPAWNERS):
        wanted.add("connections")
    if f.calls & SHARED:
        wanted.add("ordering")
    return wanted


def text_modules(text: str) -> set:
    return {name for name, pattern in TEXT.items() if pattern.search(text)}
