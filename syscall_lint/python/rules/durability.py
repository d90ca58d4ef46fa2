"""SCL101 rename-without-fsync, SCL102 rename-without-dir-fsync, SCL106 fsync-without-flush.

Per function: which files it writes (under which names), the order of writes, flushes, syncs and
renames. Only renames whose source is a file the function wrote are judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from syscall_lint.python.rulekit import Hit, Rule, call_label, ident, string_value
from syscall_lint.python.vocabulary import DUMPERS, FILE_SYNCS, OPENERS, RENAMES

if TYPE_CHECKING:
    from syscall_lint.python.facts import CallSite, Facts, Scope

# called, or bound / passed as a value (`swap = os.replace`, `to_thread(os.replace, a, b)`)
_RENAME_CALL = re.compile(r"\b(?:rename|replace|renames|move|fsync|fdatasync)\s*(?:[(),]|$)", re.M)
_IMPORTED = re.compile(r"^[ \t]*from[ \t]+\S+[ \t]+import[^\n]*\b(?:rename|replace|renames|move|fsync|fdatasync)\b",
                       re.M)


class Durability(Rule):
    """A file written and published under another name (rename/replace/move) must have its data
    synced first (SCL101) and its directory synced after (SCL102); an fsync of a buffered handle
    must follow a flush (SCL106)."""

    name = "durability"
    codes = frozenset({"SCL101", "SCL102", "SCL106"})
    words = ("rename", "replace", "move", "fsync", "fdatasync")
    open_words = ("open", "NamedTemporaryFile", "mkstemp", "write_text", "write_bytes")
    gated = True

    @classmethod
    def screen(cls, text: str) -> bool:
        return (any(w in text for w in cls.words) and any(w in text for w in cls.open_words)
                and bool(_RENAME_CALL.search(text) or _IMPORTED.search(text)))

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
    writes: list = field(default_factory=list)  # (order, line-bearing call, direct)
    flushes: list = field(default_factory=list)


def _flags_code(facts: Facts, call: CallSite) -> str:
    """The code of os.open's flags; for flags held in a local (`how = os.O_WRONLY | ...`), the code
    of what it was last set to before the call."""
    flags = call.arg(1, "flags")
    if flags is None:
        return ""
    code = facts.code(flags)
    if code.isidentifier():
        values = [value for order, targets, value in call.scope.assigns if targets == [code] and order <= call.order]
        if values:
            return facts.code(values[-1])
    return code


def _is_write_mode(mode: Optional[str]) -> bool:
    return mode is not None and any(ch in mode for ch in "wax+")


def _unbuffered(call: CallSite) -> bool:
    value = call.arg(2, "buffering")
    return value is not None and getattr(value, "value", None) == "0"


class _ScopeModel:
    def __init__(self, facts: Facts, scope: Scope, fields: bool = False, managers=None):
        self.facts = facts
        self.managers = managers or {}  # name -> _Managed, for `with name(...) as f:`
        self.extra_syncs: list = []
        self.fields = fields  # a class model: `self.` names live across its methods
        self.assigns = scope.assigns
        self.files: list[Written] = []
        self.syncs: list[tuple[int, CallSite, Optional[str]]] = []
        self.renames: list[tuple[CallSite, Optional[str]]] = []
        self.dir_fds: set = set()
        for call in scope.calls:
            self._see(call)
        self._propagate_aliases(scope)

    def _by(self, attr: str, name: Optional[str]) -> Optional[Written]:
        if name is None:
            return None
        for written in reversed(self.files):
            if getattr(written, attr) == name:
                return written
        return None

    def _see(self, call: CallSite) -> None:
        facts, qual, tail = self.facts, call.qual, call.tail
        target = call.targets[0] if len(call.targets) == 1 else None
        if call.with_node is not None and target and call.dotted in self.managers:
            self._managed(call, target, self.managers[call.dotted])
        elif qual in OPENERS:
            mode = string_value(call.arg(1, "mode"))
            base = self._by("fd", ident(facts, call.arg(0, "fd" if qual == "os.fdopen" else "file")))
            if qual == "os.fdopen" or base is not None:  # a file object over a descriptor opened here
                if base is not None and (mode is None or _is_write_mode(mode)):
                    # the file object takes over the descriptor; a mkstemp file stays a temp file
                    base.temp = base.temp or (base.opener is not None and base.opener.qual == "tempfile.mkstemp")
                    base.handle, base.opener = target, call
                    base.buffered = qual != "io.FileIO" and not _unbuffered(call)
                return
            if _is_write_mode(mode):
                w = Written({ident(facts, call.arg(0, "file"))}, call.order, call, handle=target,
                            buffered=qual != "io.FileIO" and not _unbuffered(call))
                if target:
                    w.idents.add(f"{target}.name")
                self.files.append(w)
        elif qual == "tempfile.NamedTemporaryFile" and target:
            self.files.append(Written({f"{target}.name"}, call.order, call, handle=target,
                                      buffered=not _unbuffered(call)))
        elif qual == "tempfile.mkstemp" and len(call.targets) == 2:
            self.files.append(Written({call.targets[1]}, call.order, call, fd=call.targets[0]))
        elif qual == "os.open":
            flags = _flags_code(facts, call)
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


def _check(facts: Facts):
    managers = _context_managers(facts)
    for scope in facts.scopes:
        if not any(c.qual in FILE_SYNCS or c.qual in RENAMES or c.tail in ("rename", "replace") for c in scope.calls):
            continue
        model = _ScopeModel(facts, scope, managers=managers)
        yield from _renames(facts, model)
        yield from _unflushed_syncs(facts, model)
    yield from _class_fields(facts)


def _class_fields(facts: Facts):
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
        if not any(c.qual in RENAMES or c.tail in ("rename", "replace") for s in own.values() for c in s.calls):
            continue
        effective: dict = {}
        for base in _mro(cls, by_name):
            for name, scope in methods.get(id(base), {}).items():
                effective.setdefault(name, scope)
        scopes = list(effective.values())
        merged = Scope(cls.node, cls.name, cls, [],
                       sorted((c for s in scopes for c in s.calls), key=lambda c: c.order), [],
                       sorted((a for s in scopes for a in s.assigns), key=lambda a: a[0]))
        model = _ScopeModel(facts, merged, fields=True)
        own_scopes = set(map(id, own.values()))

        def judged(call, written, own_scopes=own_scopes):
            opener = written.opener
            return (id(call.scope) in own_scopes and opener is not None and opener.scope is not call.scope
                    and any(i and i.startswith("self.") for i in written.idents))

        yield from _renames(facts, model, judged)


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
        last = model.last_write_before(written, call.order)
        synced = written.sync_flag or any(last < order < call.order for order, _, _ in model.syncs)
        label = call_label(call)
        src_code = facts.code(call.arg(0) if call.receiver is None or call.qual else call.receiver)
        if not _is_replace(facts, written, call, src_code, model.bound_values(written)):
            continue
        dir_synced = any(order > call.order for order, _, _ in model.syncs) or any(
            fd in model.dir_fds for _, _, fd in model.syncs)
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
        if not dir_synced:
            dst = call.arg(1) if call.receiver is None or call.qual else call.arg(0)
            yield Hit("SCL102", call.node, {"call": label, "src": _quoted(src_code)},
                      autofix={"kind": "after", "line": facts.position(call.node)[0],
                               "dst": facts.code(dst) if dst is not None else None})


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
