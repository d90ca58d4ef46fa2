"""SCL101 rename-without-fsync, SCL102 rename-without-dir-fsync, SCL106 fsync-without-flush.

Per function: which files it writes (under which names), the order of writes, flushes, syncs and
renames. Only renames whose source is a file the function wrote are judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from syscall_lint.python.rulekit import Hit, Rule, call_label, cst, delegated, ident, string_value
from syscall_lint.python.textscan import search_line_start, search_word
from syscall_lint.python.vocabulary import DUMPERS, FILE_SYNCS, LINKS, OPENERS, REMOVES, RENAMES

if TYPE_CHECKING:
    from syscall_lint.python.facts import CallSite, Facts, Scope

# called, or bound / passed as a value (`swap = os.replace`, `to_thread(os.replace, a, b)`)
# (one pattern per word, the anchors checked by textscan.py: re's scan stays fast)
_RENAME_CALL = tuple(re.compile(rf"{word}\s*(?:[(),]|$)", re.M)
                     for word in ("rename", "replace", "renames", "move", "link", "fsync", "fdatasync"))
_IMPORTED = re.compile(  # at the start of a line
    r"from[ \t]+\S+[ \t]+import[^\n]*\b(?:rename|replace|renames|move|link|fsync|fdatasync)\b")


class Durability(Rule):
    """A file written and published under another name (rename/replace/move) must have its data
    synced first (SCL101) and its directory synced after (SCL102); an fsync of a buffered handle
    must follow a flush (SCL106)."""

    name = "durability"
    codes = frozenset({"SCL101", "SCL102", "SCL106"})
    words = ("rename", "replace", "move", "link", "fsync", "fdatasync")
    open_words = ("open", "NamedTemporaryFile", "mkstemp", "write_text", "write_bytes")
    gated = True

    @classmethod
    def screen(cls, text: str) -> bool:
        return (any(w in text for w in cls.words) and any(w in text for w in cls.open_words)
                and (any(search_word(p, text) for p in _RENAME_CALL) or search_line_start(_IMPORTED, text)))

    def check(self, facts):
        return _check(facts)


WRITE_METHODS = {"write", "writelines"}


@dataclass(eq=False)
class Written:
    idents: set
    opened: int
    opener: Optional[CallSite] = None
    handle: Optional[str] = None
    fd: Optional[str] = None
    buffered: bool = False
    sync_flag: bool = False
    temp: bool = False  # made as a temporary file by a helper (a context manager yielding it)
    mode_param: Optional[int] = None  # opened with the mode a parameter gives (while summarising)
    writes: list = field(default_factory=list)  # (order, line-bearing call, direct)
    flushes: list = field(default_factory=list)


def _flags_code(facts: Facts, call: CallSite, assigns=None) -> str:
    """The code of os.open's flags, with names it uses replaced by what they were set to: a local
    (`how = os.O_WRONLY | ...`, its last value before the call), a field set in another method
    (`self.open_flags`, in a class model) or a module constant (`_FLAGS = os.O_RDWR | os.O_CREAT`)."""
    flags = call.arg(1, "flags")
    if flags is None:
        return ""
    code = facts.code(flags)
    local = assigns if assigns is not None else call.scope.assigns
    module = facts.scopes[0].assigns if facts.scopes else []
    seen: set = set()
    for _ in range(3):
        names = [n for n in _NAME_TOKEN.findall(code) if "O_" not in n and n not in seen]
        if not names:
            break
        for name in names:
            seen.add(name)
            values = [value for order, targets, value in local if targets == [name]
                      and (order <= call.order or name.startswith("self."))]
            values = values or [value for _, targets, value in module if targets == [name]]
            if values:
                code += " " + " ".join(facts.code(v) for v in (values[-1:] if not name.startswith("self.") else values))
    return code


_NAME_TOKEN = re.compile(r"[A-Za-z_][\w.]*")


def _is_write_mode(mode) -> bool:
    return isinstance(mode, str) and any(ch in mode for ch in "wax+")


def _param_default(scope: Scope, name: str):
    node = scope.node
    params = getattr(node, "params", None)
    if params is None:
        return None
    for param in (*params.posonly_params, *params.params, *params.kwonly_params):
        if param.name.value == name:
            return param.default
    return None


def _unbuffered(call: CallSite) -> bool:
    value = call.arg(2, "buffering")
    return value is not None and getattr(value, "value", None) == "0"


class _ScopeModel:
    def __init__(self, facts: Facts, scope: Scope, fields: bool = False, managers=None, returners=None,
                 summarising: bool = False):
        self.facts = facts
        self.managers = managers or {}  # name -> _Managed, for `with name(...) as f:`
        self.returners = returners or {}  # (class id or None, name) -> _Returned, for `f = make_tmp(...)`
        self.summarising = summarising  # a mode given by a parameter is the caller's: assume writing
        self.removes: list = []  # (order, name, scope) of os.remove/os.unlink calls
        self.links: list = []  # (call, source name) of os.link calls
        self.extra_syncs: list = []
        self.fields = fields  # a class model: `self.` names live across its methods
        self.assigns = scope.assigns
        self.files: list[Written] = []
        self.syncs: list[tuple[int, CallSite, Optional[str]]] = []
        self.renames: list[tuple[CallSite, Optional[str]]] = []
        self.dir_fds: set = set()
        self.scope = scope
        for call in scope.calls:
            self._see(delegated(facts, call) or call)
        self._propagate_aliases(scope)
        # os.link(a, b) and then os.remove(a): the file moved from a to b, as by a rename
        for call, src in self.links:
            if any(order > call.order and name == src for order, name, _ in self.removes):
                self.renames.append((call, src))
        self.renames.sort(key=lambda r: r[0].order)

    def _by(self, attr: str, name: Optional[str]) -> Optional[Written]:
        if name is None:
            return None
        for written in reversed(self.files):
            if getattr(written, attr) == name:
                return written
        return None

    def _by_name(self, name: Optional[str]) -> Optional[Written]:
        return next((w for w in reversed(self.files) if name is not None and name in w.idents), None)

    def _see(self, call: CallSite) -> None:
        facts, qual, tail = self.facts, call.qual, call.tail
        target = call.targets[0] if len(call.targets) == 1 else None
        returned = self._returned(call) if qual is None and call.dotted else None
        if call.with_node is not None and target and call.dotted in self.managers:
            self._managed(call, target, self.managers[call.dotted])
        elif returned is not None:
            self._made_by_helper(call, returned)
        elif qual in OPENERS:
            mode = self._mode(call, call.arg(1, "mode"))
            base = self._by("fd", ident(facts, call.arg(0, "fd" if qual == "os.fdopen" else "file")))
            if qual == "os.fdopen" or base is not None:  # a file object over a descriptor opened here
                if base is not None and (mode is None or _is_write_mode(mode) or isinstance(mode, int)):
                    # the file object takes over the descriptor; a mkstemp file stays a temp file
                    base.temp = base.temp or (base.opener is not None and base.opener.qual == "tempfile.mkstemp")
                    base.handle, base.opener = target, call
                    base.mode_param = mode if isinstance(mode, int) else None
                    base.buffered = qual != "io.FileIO" and not _unbuffered(call)
                return
            if _is_write_mode(mode) or isinstance(mode, int):
                w = Written({ident(facts, call.arg(0, "file"))}, call.order, call, handle=target,
                            buffered=qual != "io.FileIO" and not _unbuffered(call),
                            mode_param=mode if isinstance(mode, int) else None)
                if target:
                    w.idents.add(f"{target}.name")
                self.files.append(w)
        elif (tail == "open" and qual is None and call.receiver is not None and target
              and _is_write_mode(self._mode(call, call.arg(0, "mode")))):
            # Path(p).open("w"): the receiver is the file's name
            self.files.append(Written({ident(facts, call.receiver), f"{target}.name"}, call.order, call,
                                      handle=target, buffered=not _unbuffered(call)))
        elif qual in LINKS:
            self.links.append((call, ident(facts, call.arg(0))))
        elif qual in REMOVES:
            self.removes.append((call.order, ident(facts, call.arg(0)), call.scope))
        elif qual == "tempfile.NamedTemporaryFile" and target:
            self.files.append(Written({f"{target}.name"}, call.order, call, handle=target,
                                      buffered=not _unbuffered(call)))
        elif qual == "tempfile.mkstemp" and len(call.targets) == 2:
            self.files.append(Written({call.targets[1]}, call.order, call, fd=call.targets[0]))
        elif qual == "os.open":
            flags = _flags_code(facts, call, self.assigns if self.fields else None)
            name = ident(facts, call.arg(0, "path"))
            if "O_CREAT" not in flags and "O_TRUNC" not in flags and self._by_name(name) is not None:
                return  # the file made here, opened again (to fsync it): the same life goes on
            if any(f in flags for f in ("O_WRONLY", "O_RDWR", "O_CREAT")):
                self.files.append(Written({ident(facts, call.arg(0, "path"))}, call.order, call, fd=target,
                                          sync_flag="O_SYNC" in flags or "O_DSYNC" in flags))
            elif target:
                self.dir_fds.add(target)
        elif tail in ("write_text", "write_bytes") and call.receiver is not None:
            name = ident(facts, call.receiver)
            w = Written({name}, call.order)
            w.writes.append((call.order, call, True))
            self.files.append(w)
        elif qual in FILE_SYNCS:
            self.syncs.append((call.order, call, ident(facts, call.arg(0, "fd"))))
        elif qual in RENAMES:
            self.renames.append((call, ident(facts, call.arg(0))))
        elif (tail in ("rename", "replace") and call.receiver is not None and qual is None
              and len(call.positional) == 1 and len(call.node.args) == 1):
            self.renames.append((call, ident(facts, call.receiver)))
        elif "sync" in tail.lower():
            # A helper such as fsync_dir(path) or self._fsync(f): trust that it syncs.
            self.syncs.append((call.order, call, None))
        else:
            self._see_write(call)

    def _mode(self, call: CallSite, node):
        """The mode string of an open call; for a mode given by a parameter, its default, or (while
        summarising a helper) the parameter's index: the caller's argument decides."""
        if isinstance(node, cst.IfExp):  # 'wb' if binary else 'w': writing if either writes
            modes = [self._mode(call, node.body), self._mode(call, node.orelse)]
            return next((m for m in modes if _is_write_mode(m)), modes[0])
        mode = string_value(node)
        if mode is not None or node is None or not isinstance(node, cst.Name):
            return mode
        scope = call.scope
        if node.value not in scope.params:
            return None
        default = _param_default(scope, node.value)
        if default is not None:
            return string_value(default)
        return scope.params.index(node.value) if self.summarising else None

    def _returned(self, call: CallSite) -> Optional["_Returned"]:
        if not self.returners:
            return None
        if call.receiver is None:
            return self.returners.get((None, call.dotted))
        if isinstance(call.receiver, cst.Name) and call.receiver.value in ("self", "cls") and call.scope.cls:
            for cls in _mro(call.scope.cls, {c.name: c for c in self.facts.classes}):
                found = self.returners.get((id(cls), call.tail))
                if found is not None:
                    return found
        return None

    def _made_by_helper(self, call: CallSite, returned: "_Returned") -> None:
        """`f = make_scratch(path, "w")` / `fd, name = self._tempfile()`: a helper that returns a file
        it opened for writing (named by one of its parameters, or a temp name of its own)."""
        facts = self.facts
        if returned.mode_index is not None:
            mode = self._mode(call, call.arg(returned.mode_index))
            if not (_is_write_mode(mode) or isinstance(mode, int)):
                return
        names = set()
        if returned.path_index is not None:
            names.add(ident(facts, call.arg(returned.path_index)))
        if returned.kind == "handle_name" and len(call.targets) == 2:
            self.files.append(Written(names | {call.targets[1], f"{call.targets[0]}.name"}, call.order, call,
                                      handle=call.targets[0], buffered=returned.buffered, temp=returned.temp))
        elif returned.kind == "fd_name" and len(call.targets) == 2:
            self.files.append(Written(names | {call.targets[1]}, call.order, call, fd=call.targets[0],
                                      temp=returned.temp))
        elif returned.kind == "handle" and len(call.targets) == 1:
            target = call.targets[0]
            self.files.append(Written(names | {f"{target}.name"}, call.order, call, handle=target,
                                      buffered=returned.buffered, temp=returned.temp))

    def _managed(self, call: CallSite, target: str, managed: "_Managed") -> None:
        """`with sibling_temp(path) as f:` where the context manager yields a temp file it made: `f`
        is that file, and a sync after its `yield` runs when the `with` block ends."""
        w = Written({f"{target}.name"}, call.order, call, handle=target, buffered=managed.buffered, temp=True)
        self.files.append(w)
        if managed.syncs_on_exit:
            lines = self.facts.positions[call.with_node]
            inside = [c.order for c in call.scope.calls
                      if lines.start.line <= self.facts.positions[c.node].start.line <= lines.end.line]
            self.syncs.append((max(inside) + 0.5, call, None))

    def _see_write(self, call: CallSite) -> None:
        facts = self.facts
        if call.receiver is not None:
            owner = self._by("handle", facts.key(call.receiver))
            if owner is not None:
                if call.tail in WRITE_METHODS:
                    owner.writes.append((call.order, call, True))
                elif call.tail == "flush":
                    owner.flushes.append(call.order)
                return
        if call.qual in ("os.write", "os.pwrite", "os.writev"):
            owner = self._by("fd", ident(facts, call.arg(0)))
            if owner is not None:
                owner.writes.append((call.order, call, True))
            return
        # The handle handed to json.dump or to any helper: assume the helper writes to it.
        for arg in call.node.args:
            owner = self._by("handle", facts.key(arg.value))
            if owner is not None:
                owner.writes.append((call.order, call, call.qual in DUMPERS))

    def _propagate_aliases(self, scope: Scope) -> None:
        for _ in range(2):
            for _, targets, value in scope.assigns:
                if len(targets) != 1:
                    continue
                name = ident(self.facts, value)
                for written in self.files:
                    if name in written.idents:
                        written.idents.add(targets[0])

    def bound_values(self, written: Written) -> list:
        """The code of what a name of the file was set to (`scratch = target + ".new"`; in a class
        `self.scratch` is made in one method and published in another)."""
        return [self.facts.code(value) for _, targets, value in self.assigns
                if len(targets) == 1 and targets[0] in written.idents]

    def last_write_before(self, written: Written, order: int) -> int:
        before = [o for o, _, _ in written.writes if o < order]
        return max(before) if before else written.opened


_PID_FILE = re.compile(r"(?<![a-z])pid(?:_?file|_?path|s?\b)", re.I)
TEMP_HINTS = ("tmp", "temp", "new", "part", "stag", "swp", "~", "lock", "next", "pending", "work", "incoming")


def _is_replace(facts: Facts, written: Written, rename: CallSite, src_code: str, values=()) -> bool:
    """A durable-replace question only arises when a temporary file is published under another name:
    a tempfile-made file, a temp-looking name, or a name derived from the target (path + ".new").
    Moving a file that was simply written (tests, archives) is not a replace."""
    owner = rename.scope.cls.name if rename.scope.cls is not None else ""
    dst = rename.arg(1) if rename.receiver is None or rename.qual else rename.arg(0)
    if _PID_FILE.search(" ".join([owner, rename.scope.name, written.handle or "", facts.code(dst) if dst else ""])):
        return False  # a pid file describes the live process: after a crash it is stale whatever it holds
    if written.temp or (written.opener is not None
                        and written.opener.qual in ("tempfile.mkstemp", "tempfile.NamedTemporaryFile")):
        return True
    texts = [src_code.lower()] + [i.lower() for i in written.idents if i] + [v.lower() for v in values]
    if any(hint in text for text in texts for hint in TEMP_HINTS):
        return True
    dst = rename.arg(1) if rename.receiver is None or rename.qual else rename.arg(0)
    dst_code = facts.code(dst) if dst is not None else ""
    return bool(dst_code) and any(dst_code in text and dst_code != text for text in texts)


@dataclass
class _Managed:
    """What a `@contextmanager` function does for its caller: yields a temp file it opened for
    writing, and (maybe) syncs it after the `yield`, i.e. at the caller's `with` exit."""
    buffered: bool
    syncs_on_exit: bool


def _context_managers(facts: Facts) -> dict:
    import libcst as cst

    out = {}
    for stmt in facts.module.body:
        if not isinstance(stmt, cst.FunctionDef) or not any(
                (dotted_name_of(d.decorator) or "").rsplit(".", 1)[-1] in ("contextmanager", "asynccontextmanager")
                for d in stmt.decorators):
            continue
        scope = next((s for s in facts.scopes if s.node is stmt), None)
        yields = _yields(stmt)
        if scope is None or len(yields) != 1 or not isinstance(yields[0].value, cst.Name):
            continue
        model = _ScopeModel(facts, scope)
        handle = yields[0].value.value
        written = model._by("handle", handle)
        if written is None or written.opener is None or not (
                written.opener.qual in ("tempfile.NamedTemporaryFile", "tempfile.mkstemp", "os.fdopen")
                or any(h in " ".join(i or "" for i in written.idents).lower() for h in TEMP_HINTS)):
            continue
        yield_line = facts.positions[yields[0]].start.line
        syncs = any(facts.positions[c.node].start.line > yield_line for _, c, _ in model.syncs)
        out[scope.name] = _Managed(written.buffered, syncs)
    return out


def dotted_name_of(node):
    from syscall_lint.python.facts import dotted_name

    return dotted_name(node.func if hasattr(node, "func") else node)


def _yields(fn) -> list:
    import libcst as cst

    found = []

    class _Yields(cst.CSTVisitor):
        def visit_Yield(self, node):
            found.append(node)

        def visit_FunctionDef(self, node):
            return node is fn  # not into nested functions

    fn.visit(_Yields())
    return found


@dataclass
class _Returned:
    """What a helper returns to its caller: a writable file object (`kind` "handle"), a descriptor
    and a name (`"fd_name"`, as mkstemp) or a file object and its name (`"handle_name"`); which
    parameter names the file and which gives the mode, when the caller decides them."""
    kind: str
    path_index: Optional[int] = None
    mode_index: Optional[int] = None
    temp: bool = False
    buffered: bool = True


_TEMP_NAME = re.compile(r"te?mp|scratch|part", re.I)
_MAKERS = frozenset({"tempfile.mkstemp", "tempfile.NamedTemporaryFile"})


def _returners(facts: Facts, managers: dict) -> dict:
    """(class id or None, function name) -> _Returned for this module's functions and methods that
    return a file they opened for writing (directly, or through another such helper)."""
    candidates = [s for s in facts.scopes if isinstance(s.node, cst.FunctionDef)
                  and any(c.qual in OPENERS or c.qual in _MAKERS or c.qual == "os.open" or c.tail == "open"
                          or (c.qual is None and c.dotted) for c in s.calls)
                  and not any((dotted_name_of(d.decorator) or "").endswith("contextmanager")
                              for d in s.node.decorators)]
    found: dict = {}
    for _ in range(3):  # helpers that return what another helper returned
        changed = False
        for scope in candidates:
            key = (id(scope.cls) if scope.cls is not None else None, scope.name)
            if key in found:
                continue
            returns = scope.returns  # (facts collected them in the one pass over the module)
            if not returns:
                continue
            model = _ScopeModel(facts, scope, managers=managers, returners=found, summarising=True)
            for value in returns:
                summary = _returned_value(facts, model, scope, value)
                if summary is not None:
                    found[key] = summary
                    changed = True
                    break
        if not changed:
            break
    return found


def _returned_value(facts: Facts, model: "_ScopeModel", scope: Scope, value) -> Optional[_Returned]:
    temp_name = bool(_TEMP_NAME.search(scope.name))
    written = None
    if isinstance(value, cst.Name):
        written = model._by("handle", value.value)
        if written is None:
            return None
    elif isinstance(value, cst.Tuple) and len(value.elements) == 2:
        first, name = (facts.key(e.value) for e in value.elements)
        written = model._by("fd", first)
        if written is not None and name in written.idents:
            return _Returned("fd_name", _param_index(scope, written), None, True)
        written = model._by("handle", first)  # (file object, its name)
        if written is not None and name in written.idents:
            return _Returned("handle_name", _param_index(scope, written), written.mode_param,
                             True, written.buffered)
        return None
    elif isinstance(value, cst.Call):
        call = next((c for c in scope.calls if c.node is value), None)
        if call is None:
            return None
        if call.qual == "tempfile.mkstemp":
            return _Returned("fd_name", None, None, True)
        if call.qual == "tempfile.NamedTemporaryFile":
            return _Returned("handle", None, None, True, not _unbuffered(call))
        inner = model._returned(call) if call.qual is None and call.dotted else None
        if inner is not None:
            path = _arg_param(scope, call, inner.path_index)
            mode = _arg_param(scope, call, inner.mode_index)
            if inner.mode_index is not None and mode is None and not _is_write_mode(
                    model._mode(call, call.arg(inner.mode_index))):
                return None
            return _Returned(inner.kind, path, mode, inner.temp or temp_name, inner.buffered)
        written = next((w for w in model.files if w.opener is call), None)
        if written is None:
            return None
    else:
        return None
    return _Returned("handle", _param_index(scope, written), written.mode_param,
                     written.temp or temp_name or (written.opener is not None and written.opener.qual in _MAKERS),
                     written.buffered)


def _param_index(scope: Scope, written: Written) -> Optional[int]:
    return next((i for i, p in enumerate(scope.params) if p in written.idents), None)


def _arg_param(scope: Scope, call: CallSite, index: Optional[int]) -> Optional[int]:
    """The index of this function's parameter passed as argument `index` of `call`."""
    if index is None:
        return None
    arg = call.arg(index)
    if isinstance(arg, cst.Name) and arg.value in scope.params:
        return scope.params.index(arg.value)
    return None


def _publishes(facts: Facts, call: CallSite) -> bool:
    """A call the rule may take for a rename, a link or a sync (directly or handed to an executor)."""
    call = delegated(facts, call) or call
    return (call.qual in FILE_SYNCS or call.qual in RENAMES or call.qual in LINKS
            or call.tail in ("rename", "replace"))


def _check(facts: Facts):
    # temp-file context managers imported from the project (facts.project), then this file's own
    managers = {**facts.imported_managers, **_context_managers(facts)}
    returners = _returners(facts, managers) if any(_publishes(facts, c) for c in facts.calls) else {}
    for scope in facts.scopes:
        if not any(_publishes(facts, c) for c in scope.calls):
            continue
        model = _ScopeModel(facts, scope, managers=managers, returners=returners)
        yield from _renames(facts, model)
        yield from _unflushed_syncs(facts, model)
    yield from _class_fields(facts, returners)


def _class_fields(facts: Facts, returners=None):
    """Per class, its methods and those inherited from local base classes (the first definition
    in method resolution order wins) as one model in source order: a temp file opened in
    `__init__`, written in `write()` and renamed in `close()` is judged as one life."""
    from syscall_lint.python.facts import Scope

    methods: dict = {}
    for scope in facts.scopes:
        if scope.cls is not None and scope.node is not scope.cls.node:
            methods.setdefault(id(scope.cls), {}).setdefault(scope.name, scope)
    if not methods:
        return
    by_name = {cls.name: cls for cls in facts.classes}
    for cls in facts.classes:
        own = methods.get(id(cls), {})
        if not any(_publishes(facts, c) for s in own.values() for c in s.calls):
            continue
        effective: dict = {}  # name -> the definitions that run: the first in MRO, and those super() reaches
        for base in _mro(cls, by_name):
            for name, scope in methods.get(id(base), {}).items():
                chain = effective.setdefault(name, [])
                if not chain or _calls_super(chain[-1], name):
                    chain.append(scope)
        scopes = [scope for chain in effective.values() for scope in chain]
        merged = Scope(cls.node, cls.name, cls, [],
                       sorted((c for s in scopes for c in s.calls), key=lambda c: c.order), [],
                       sorted((a for s in scopes for a in s.assigns), key=lambda a: a[0]))
        model = _ScopeModel(facts, merged, fields=True, returners=returners)
        own_scopes = set(map(id, own.values()))

        def judged(call, written, own_scopes=own_scopes):
            opener = written.opener
            return (id(call.scope) in own_scopes and opener is not None and opener.scope is not call.scope
                    and any(i and i.startswith("self.") for i in written.idents))

        yield from _renames(facts, model, judged)


def _calls_super(scope: Scope, name: str) -> bool:
    """`super().__init__(...)` in the method `name`: the base's definition runs too."""
    return any(c.tail == name and isinstance(c.receiver, cst.Call) and isinstance(c.receiver.func, cst.Name)
               and c.receiver.func.value == "super" for c in scope.calls)


def _mro(cls, by_name: dict, depth: int = 0) -> list:
    """The class and its local bases, depth first, left to right (close to C3 for simple trees)."""
    out = [cls]
    if depth > 20:
        return out
    for base in cls.bases:
        local = by_name.get(base)
        if local is not None and local is not cls:
            out.extend(b for b in _mro(local, by_name, depth + 1) if b not in out)
    return out


def _renames(facts: Facts, model: _ScopeModel, judged=None):
    """`judged(call, written)`: which renames this model speaks for (class models: only a rename of
    a `self.` file opened in another method; the method's own model judges the rest)."""
    for call, src in model.renames:
        written = next((w for w in reversed(model.files) if src in w.idents and w.opened < call.order), None)
        if written is None or (judged is not None and not judged(call, written)):
            continue
        if not written.writes and written.handle is None and written.opener is not None and any(
                written.opened < order < call.order and name in written.idents and scope is written.opener.scope
                for order, name, scope in model.removes):
            continue  # made and removed unwritten (a reserved name): what moves there now is not it
        if not model.fields and _never_written(facts, model, written, call):
            continue  # an empty file made for its name alone (a dot-lock): there is no data to sync
        last = model.last_write_before(written, call.order)
        synced = written.sync_flag or any(last < order < call.order for order, _, _ in model.syncs)
        label = call_label(call)
        src_code = facts.code(call.arg(0) if call.receiver is None or call.qual else call.receiver)
        if not _is_replace(facts, written, call, src_code, model.bound_values(written)):
            continue
        if _into_private_temp_dir(facts, call):
            continue  # a scratch file moved inside a directory the function made for itself
        dir_synced = any(order > call.order for order, _, _ in model.syncs) or any(
            fd in model.dir_fds for _, _, fd in model.syncs)
        if not synced and _validated_before_reuse(facts, call):
            continue  # a torn file is detected and made again by the same function: a cache
        if not synced:
            fix = _sync_fix(facts, model, written, call)
            if fix is not None and not dir_synced:
                dst = call.arg(1) if call.receiver is None or call.qual else call.arg(0)
                if dst is not None:  # the file's fsync alone would leave SCL102: fix both at once
                    fix["dir_after"] = {"line": facts.position(call.node)[0], "dst": facts.code(dst)}
            write = next((c for o, c, _ in written.writes if o == last), None)
            # no write seen (it went through a name we do not follow): the open that truncated it
            anchor = write or written.opener
            line = facts.position(anchor.node)[0] if anchor is not None else facts.position(call.node)[0]
            yield Hit("SCL101", call.node, {"call": label, "src": _quoted(src_code), "write_line": line},
                      {"write_line": line}, variant="" if write is not None else "opened", autofix=fix)
            continue
        if not dir_synced and not _windows_only(facts, call):
            dst = call.arg(1) if call.receiver is None or call.qual else call.arg(0)
            yield Hit("SCL102", call.node, {"call": label, "src": _quoted(src_code)},
                      autofix={"kind": "after", "line": facts.position(call.node)[0],
                               "dst": facts.code(dst) if dst is not None else None})


_TEMP_DIR_MAKERS = frozenset({"tempfile.mkdtemp", "tempfile.TemporaryDirectory"})
_IDENT = re.compile(r"[A-Za-z_]\w*")


def _into_private_temp_dir(facts: Facts, rename: CallSite) -> bool:
    """The destination lies in a directory this function made with tempfile.mkdtemp() or
    TemporaryDirectory() (named in the destination's code, or in what the destination's name was
    set to): a file the run itself removes, so no crash can lose data that matters (a download
    renamed inside its scratch folder before it is unpacked)."""
    scope = rename.scope
    made = {t for call in scope.calls if call.qual in _TEMP_DIR_MAKERS for t in call.targets}
    if not made:
        return False
    dst = rename.arg(1) if rename.receiver is None or rename.qual else rename.arg(0)
    if dst is None:
        return False
    code = facts.code(dst)
    texts = [code] + [facts.code(value) for _, targets, value in scope.assigns if targets == [code]]
    return any(made & set(_IDENT.findall(text)) for text in texts)


_VALIDATOR = re.compile(r"(?:^|[._])(?:is_current|is_valid|is_fresh|up_to_date|verify\w*|validate\w*)$")


def _validated_before_reuse(facts: Facts, rename: CallSite) -> bool:
    """The function first checks the published file against its source and returns it when it is
    valid (`if self._is_current(real_path, ...): return real_path`): a file torn by a crash fails
    that check and is made again, so losing its data costs a rebuild, not the data."""
    dst = rename.arg(1) if rename.receiver is None or rename.qual else rename.arg(0)
    if dst is None or rename.scope.node is facts.module:
        return False
    target = facts.code(dst)
    found = []

    rename_line = facts.positions[rename.node].start.line

    class _Checks(cst.CSTVisitor):
        def visit_If(self, node):
            test = node.test
            if (isinstance(test, cst.Call) and _VALIDATOR.search(facts.code(test.func))
                    and any(facts.code(arg.value) == target for arg in test.args)
                    and "return" in facts.code(node.body)):
                found.append(node)
            elif (facts.positions[node].end.line < rename_line and "return" in facts.code(node.body)
                  and _compares_content(facts, node, target)):
                # `if path.exists(): ... if hash_path(path) != sha256: good = False ... return`
                found.append(node)

        def visit_FunctionDef(self, node):
            return node is rename.scope.node

    rename.scope.node.visit(_Checks())
    return bool(found)


def _compares_content(facts: Facts, block, target: str) -> bool:
    """`block` compares a value computed from the file's content with an expected one
    (`hash_path(path) != sha256`, `digest(path) == expected`): a project function (not an `os`,
    `os.path` or builtin call, which give its size, times or existence) given the file, on one side
    of `==`/`!=`."""
    found = []

    class _Compares(cst.CSTVisitor):
        def visit_Comparison(self, node):
            if not any(isinstance(t.operator, (cst.Equal, cst.NotEqual)) for t in node.comparisons):
                return
            for side in (node.left, *(t.comparator for t in node.comparisons)):
                if (isinstance(side, cst.Call) and any(facts.code(a.value) == target for a in side.args)
                        and facts.resolve(dotted_name_of(side.func)) is None):
                    found.append(side)

    block.visit(_Compares())
    return bool(found)


def _never_written(facts: Facts, model: _ScopeModel, written: Written, rename: CallSite) -> bool:
    """A file object this function holds and only closes (or names) before publishing it: no write,
    and the handle is not handed anywhere (a call, a `yield`, a return, another name) that might
    write to it."""
    if (not written.writes and written.handle is None and written.fd is not None and written.opener is not None
            and written.opener.qual == "tempfile.mkstemp"):
        return _fd_only_closed(facts, model, written.fd) and _name_only_probed(facts, model, written, rename)
    if written.writes or written.handle is None or written.fd is not None or "." in written.handle:
        return False
    uses = re.finditer(rf"(?<![\w.])(?:as\s+)?{re.escape(written.handle)}\b(\s*\.\s*\w+\s*\(?|\s*=(?!=))?",
                       facts.code(model.scope.node))
    return all(u.group(0).startswith("as ") or (u.group(1) or "").strip() in (".close(", ".name", "=")
               or re.sub(r"\s", "", u.group(1) or "") in (".close(", ".name") for u in uses)


_METADATA_CALLS = frozenset({"os.stat", "os.lstat", "os.chmod", "os.lchmod", "os.chown", "os.lchown", "os.utime",
                             "os.access", "os.path.exists", "os.path.isfile", "os.path.getsize",
                             "os.path.getmtime", "shutil.copymode"})


def _name_only_probed(facts: Facts, model: _ScopeModel, written: Written, rename: CallSite) -> bool:
    """Before the rename, the file's name goes only to calls that read or set its metadata
    (`os.stat`, `os.chmod`): nothing can have opened it by name and written to it."""
    for call in model.scope.calls:
        if call.order >= rename.order or call.order <= written.opened or call.qual in _METADATA_CALLS:
            continue
        if any(ident(facts, arg.value) in written.idents for arg in call.node.args):
            return False
    return True


def _fd_only_closed(facts: Facts, model: _ScopeModel, fd: str) -> bool:
    """An mkstemp descriptor that is bound and closed, and used for nothing else (no write, not
    handed to a call or another name): the file stays empty, made for its name or mode alone."""
    code = facts.code(model.scope.node)
    uses = list(re.finditer(rf"(?<![\w.]){re.escape(fd)}\b", code))
    closes = re.findall(rf"(?<![\w])(?:os\.)?close\(\s*{re.escape(fd)}\s*\)", code)
    binds = re.findall(rf"(?<![\w.]){re.escape(fd)}\s*,\s*\w+\s*=(?!=)", code)
    return bool(closes) and len(uses) == len(closes) + len(binds)


_WINDOWS_TEST = re.compile(r"""(?:platform|os\.name)\s*(==|!=)\s*['"](?:win32|nt|cygwin)['"]""")


def _windows_only(facts: Facts, call: CallSite) -> bool:
    """The call runs only on Windows (`if sys.platform == "win32":`, the `else` of `!=`), where a
    directory cannot be opened to be fsync'd: SCL102 has nothing to ask for."""
    line = facts.positions[call.node].start.line
    found = []

    class _Branches(cst.CSTVisitor):
        def visit_If(self, node):
            match = _WINDOWS_TEST.search(facts.code(node.test))
            branch = None if match is None else node.body if match.group(1) == "==" else node.orelse
            if branch is not None:
                span = facts.positions[branch]
                if span.start.line <= line <= span.end.line:
                    found.append(node)

        def visit_FunctionDef(self, node):
            return node is call.scope.node

    call.scope.node.visit(_Branches())
    return bool(found)


def _unflushed_syncs(facts: Facts, model: _ScopeModel):
    for order, call, fd in model.syncs:
        if fd is None or not fd.endswith(".fileno()"):
            continue
        handle = fd[: -len(".fileno()")]
        written = next((w for w in reversed(model.files) if w.handle == handle and w.opened < order), None)
        if written is None or not written.buffered:
            continue
        direct = [o for o, _, is_direct in written.writes if o < order and is_direct]
        if not direct:
            continue
        last = max(direct)
        if any(last < f < order for f in written.flushes):
            continue
        write_call = next(c for o, c, _ in written.writes if o == last)
        line = facts.position(write_call.node)[0]
        yield Hit("SCL106", call.node, {"call": call_label(call), "handle": handle, "write_line": line},
                  {"write_line": line}, autofix={"kind": "before", "line": facts.position(call.node)[0],
                                                 "code": [f"{handle}.flush()"]})


def _quoted(code: str) -> str:
    return code if code[:1] in ("'", '"') else f"'{code}'"


def _sync_fix(facts: Facts, model: "_ScopeModel", written: Written, rename: CallSite):
    """Where flush+fsync goes for SCL101: the end of the `with` block that wrote the file, or before
    the statement that closes it, or before the rename. None where no mechanical fix is safe."""
    if written.handle:
        code = [f"{written.handle}.flush()", f"os.fsync({written.handle}.fileno())"]
        if written.opener is not None and written.opener.with_node is not None:
            return {"kind": "block_end", "line": facts.position(written.opener.with_node)[0], "code": code}
        closer = next((c for c in written.opener.scope.calls if c.tail == "close" and c.receiver is not None
                       and facts.key(c.receiver) == written.handle and c.order < rename.order), None) \
            if written.opener is not None else None
        anchor = closer or rename
        return {"kind": "before", "line": facts.position(anchor.node)[0], "code": code}
    if written.opener is None and len(written.writes) == 1 and written.writes[0][1].tail in ("write_text", "write_bytes"):
        write = written.writes[0][1]
        data = write.arg(0)
        if data is None or len(write.node.args) > 2:
            return None
        binary = write.tail == "write_bytes"
        encoding = write.keyword("encoding")
        mode = '"wb"' if binary else '"w"' + (f", encoding={facts.code(encoding)}" if encoding is not None else "")
        return {"kind": "replace", "line": facts.position(write.node)[0], "code": [
            f"with open({facts.code(write.receiver)}, {mode}) as _fh:\n"
            f"    _fh.write({facts.code(data)})\n    _fh.flush()\n    os.fsync(_fh.fileno())"]}
    if written.fd:
        closer = next((c for c in written.opener.scope.calls if c.qual == "os.close"
                       and ident(facts, c.arg(0)) == written.fd and c.order < rename.order), None) \
            if written.opener is not None else None
        anchor = closer or rename
        return {"kind": "before", "line": facts.position(anchor.node)[0], "code": [f"os.fsync({written.fd})"]}
    return None
