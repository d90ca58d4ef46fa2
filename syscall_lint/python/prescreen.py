"""Cheap, conservative gates in front of libcst.

Stage 1 is textual: a rule module can only report if words its rules need appear in the file.
Stage 2 parses with `ast` (several times cheaper than libcst) and asks, per function and per loop,
the same structural questions the libcst rules ask, only more loosely: a rule module runs only if
some function or loop has the calls it needs. Both stages only drop files on which the rules
provably stay silent; a test checks gated and ungated runs agree on the fixtures and the stdlib.
"""

from __future__ import annotations

import ast
import re

RENAME_TAILS = {"rename", "replace", "renames", "move"}
OPEN_TAILS = {"open", "fdopen", "NamedTemporaryFile", "mkstemp", "write_text", "write_bytes"}
SYNC_TAILS = {"fsync", "fdatasync"}
SERVERS = {"ThreadingMixIn", "ThreadingTCPServer", "ThreadingUnixStreamServer", "ThreadingHTTPServer",
           "ForkingMixIn", "ForkingTCPServer", "ForkingUnixStreamServer"}
SPAWNERS = {"Thread", "start_new_thread", "start_new", "_start_new_thread", "fork", "forkpty", "Process"}
THREADS = {"Thread", "start_new_thread", "start_new", "_start_new_thread", "ThreadPoolExecutor", "ThreadPool"}
SHARED = {"SharedMemory", "ShareableList", "mmap", "RawValue", "RawArray", "Value", "Array"}

_OS_WRITE = re.compile(r"\bos\s*\.\s*write\b|^[ \t]*(?:import os as|from os import[^\n]*\bwrite\b)", re.M)
# Stage 1 uses substring tests (C speed, several hundred MB/s); a word missing means the rule's call
# cannot be there. Substrings are looser than words, which only keeps more files.
RENAME_WORDS = ("rename", "replace", "move", "fsync", "fdatasync")
OPEN_WORDS = ("open", "NamedTemporaryFile", "mkstemp", "write_text", "write_bytes")
SERVER_WORDS = ("ThreadingMixIn", "ThreadingTCPServer", "ThreadingUnixStreamServer", "ThreadingHTTPServer",
                "ForkingMixIn", "ForkingTCPServer", "ForkingUnixStreamServer", "accept")
SHARED_WORDS = ("SharedMemory", "ShareableList", "mmap", "RawValue", "RawArray", "Value", "Array", "sharedctypes")


_RENAME_CALL = re.compile(r"\b(?:rename|replace|renames|move|fsync|fdatasync)\s*\(")
_IMPORTED = re.compile(r"^[ \t]*from[ \t]+\S+[ \t]+import[^\n]*\b(?:rename|replace|renames|move|fsync|fdatasync)\b", re.M)
_SERVER = re.compile(r"Threading(?:MixIn|TCPServer|UnixStreamServer|HTTPServer)|"
                     r"Forking(?:MixIn|TCPServer|UnixStreamServer)|\baccept\s*\(")
# Value/Array are raw only with lock=False; the others are raw by construction
_SHARED = re.compile(r"SharedMemory|ShareableList|\bmmap\b|RawValue|RawArray|sharedctypes|lock\s*=\s*False")
_SEND_OR_FLUSH = re.compile(r"\bsend(?:all)?\s*\(|\.flush\s*\(|flush\s*=|buffering")


def text_modules(text: str) -> set:
    """Substring tests first (C speed); a regex confirms only where the substrings are present."""
    out = set()
    if any(w in text for w in RENAME_WORDS) and any(w in text for w in OPEN_WORDS) and (
            _RENAME_CALL.search(text) or _IMPORTED.search(text)):
        out.add("durability")
    if (("send" in text or "flush" in text or "buffering" in text) and _SEND_OR_FLUSH.search(text)) or (
            "write" in text and _OS_WRITE.search(text)):
        out.add("batching")
    if (any(w in text for w in SERVER_WORDS) and _SERVER.search(text)) or ("fork" in text and (
            "Thread" in text or "start_new" in text)):
        out.add("connections")
    if "while" in text and any(w in text for w in SHARED_WORDS) and _SHARED.search(text):
        out.add("ordering")
    return out


def _tail(node):
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


class _Scope:
    __slots__ = ("tails", "renames", "writes_open", "syncs")

    def __init__(self):
        self.tails = set()
        self.renames = False
        self.writes_open = False
        self.syncs = False


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

    def __init__(self, aliases, unbuffered: bool, servers=SERVERS):
        self.aliases = aliases
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
        elif kind in _FUNCTIONS:
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
        return None

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
        if any(self._name(b) in self.servers for b in node.bases):
            self.connections = True
            if isinstance(self.servers, set):
                self.servers.add(node.name)

    def _judge_loop(self, calls):
        tails = {t for t, _ in calls}
        if "accept" in tails and tails & SPAWNERS:
            self.connections = True
        if tails & {"send", "sendall", "flush"}:
            self.batching = True
        for tail, call in calls:
            if tail == "print" and any(k.arg == "flush" for k in call.keywords):
                self.batching = True
            elif tail in ("write", "writelines"):
                func = call.func
                # os.write (through any alias), a bare `write` imported from os, or any write when
                # the file opens something unbuffered
                if self.unbuffered or isinstance(func, ast.Name) or (
                        isinstance(func.value, ast.Name) and (func.value.id == "os" or self.aliases.get(func.value.id) == "os")):
                    self.batching = True

    def _call(self, node):
        name = self._name(node.func)
        scope = self.scopes[-1]
        if name:
            scope.tails.add(name)
            if name in RENAME_TAILS:
                is_method = isinstance(node.func, ast.Attribute)
                # os.replace(a, b) / shutil.move, or Path.replace(target): one positional argument
                if not is_method or len(node.args) >= 2 or (len(node.args) == 1 and len(node.keywords) == 0
                                                             and not isinstance(node.args[0], ast.Starred)):
                    scope.renames = True
            elif name in OPEN_TAILS:
                scope.writes_open = True
            elif name in SYNC_TAILS:
                scope.syncs = True
            elif name in SERVERS:
                self.connections = True
            elif name in SHARED:
                self.shared = True
            if self.loops:
                self.loops[-1].append((name, node))


class ModuleNames:
    """What one walk of the tree tells about names: import aliases (for the gate), import lines and
    builtin-shadowing names (for the snippet's prelude)."""

    def __init__(self, tree):
        import builtins

        self.aliases: dict = {}
        self.imports: list = []
        shadowed: set = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imports.append(f"import {a.name}" + (f" as {a.asname}" if a.asname else ""))
                    if a.asname:
                        self.aliases[a.asname] = a.name.rsplit(".", 1)[-1]
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    if node.module and not node.level and a.name != "*":
                        self.imports.append(f"from {node.module} import {a.name}" + (f" as {a.asname}" if a.asname else ""))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                shadowed.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                shadowed.add(node.name)
            elif isinstance(node, ast.arguments):
                shadowed.update(a.arg for a in (*node.posonlyargs, *node.args, *node.kwonlyargs))
        self.shadowed_builtins = sorted(shadowed & set(dir(builtins)))


def _judge(node, aliases, unbuffered, seen=None, servers=SERVERS) -> set:
    walker = _Walker(aliases, unbuffered, servers)
    walker.visit(node)
    if seen is not None:  # SCL501 follows shared objects across functions: gather file-wide
        seen["shared"] = seen.get("shared", False) or walker.shared
        seen["while"] = seen.get("while", False) or walker.while_loops
    wanted = set()
    if any(s.tails & THREADS and s.tails & {"fork", "forkpty"} for s in walker.all_scopes):
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
    local_servers: set = set(SERVERS)
    seen: dict = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = {_tail(b) for b in node.bases}
            bases = {aliases.get(b, b) for b in bases if b}
            server = bool(bases & local_servers)
            if server:
                local_servers.add(node.name)
                modules.add("connections")
            members = []
            for item in node.body:
                found = _judge(item, aliases, unbuffered, seen, local_servers)
                if found:
                    modules |= found
                    members.append(_span(item))
            if server or members:
                parts.append(("class", node, members))
            continue
        found = _judge(node, aliases, unbuffered, seen, local_servers)
        if found:
            modules |= found
            parts.append(("span", _span(node)))
    if seen.get("shared") and seen.get("while"):
        modules.add("ordering")
    if "ordering" in modules:
        return modules, None
    return modules, parts


def snippet(text: str, parts, names: ModuleNames) -> tuple:
    """(source of just the needed parts, map from its line numbers to the file's).

    Imports and builtin-shadowing names come first (generated, so names resolve as in the whole
    file); every other line is copied verbatim with its indentation, so columns are unchanged."""
    lines = text.splitlines()
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
