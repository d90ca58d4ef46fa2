"""SCL101 rename-without-fsync, SCL102 rename-without-dir-fsync, SCL106 fsync-without-flush.

Per function: which files it writes (under which names), the order of writes, flushes, syncs and
renames. Only renames whose source is a file the function wrote are judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from syscall_lint.python.facts import CallSite, Facts, Scope
from syscall_lint.python.rulekit import Hit, call_label, ident, string_value

OPENERS = {"builtins.open", "io.open", "codecs.open", "os.fdopen"}
RENAMES = {"os.rename", "os.replace", "os.renames", "shutil.move"}
SYNCS = {"os.fsync", "os.fdatasync"}
DUMPERS = {"json.dump", "pickle.dump", "marshal.dump", "yaml.dump", "yaml.safe_dump", "toml.dump",
           "tomli_w.dump", "shutil.copyfileobj", "csv.writer", "plistlib.dump"}
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
    writes: list = field(default_factory=list)  # (order, line-bearing call, direct)
    flushes: list = field(default_factory=list)


def _is_write_mode(mode: Optional[str]) -> bool:
    return mode is not None and any(ch in mode for ch in "wax+")


def _unbuffered(call: CallSite) -> bool:
    value = call.arg(2, "buffering")
    return value is not None and getattr(value, "value", None) == "0"


class _ScopeModel:
    def __init__(self, facts: Facts, scope: Scope):
        self.facts = facts
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
        if qual in OPENERS:
            mode = string_value(call.arg(1, "mode"))
            if qual == "os.fdopen":
                base = self._by("fd", ident(facts, call.arg(0, "fd")))
                if base is not None and (mode is None or _is_write_mode(mode)):
                    base.handle, base.buffered, base.opener = target, not _unbuffered(call), call
                return
            if _is_write_mode(mode):
                w = Written({ident(facts, call.arg(0, "file"))}, call.order, call, handle=target,
                            buffered=not _unbuffered(call))
                if target:
                    w.idents.add(f"{target}.name")
                self.files.append(w)
        elif qual == "tempfile.NamedTemporaryFile" and target:
            self.files.append(Written({f"{target}.name"}, call.order, call, handle=target,
                                      buffered=not _unbuffered(call)))
        elif qual == "tempfile.mkstemp" and len(call.targets) == 2:
            self.files.append(Written({call.targets[1]}, call.order, call, fd=call.targets[0]))
        elif qual == "os.open":
            flags = facts.code(call.arg(1, "flags")) if call.arg(1, "flags") is not None else ""
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
        elif qual in SYNCS:
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

    def last_write_before(self, written: Written, order: int) -> int:
        before = [o for o, _, _ in written.writes if o < order]
        return max(before) if before else written.opened


TEMP_HINTS = ("tmp", "temp", "new", "part", "stag", "swp", "~", "lock", "next", "pending", "work", "incoming")


def _is_replace(facts: Facts, written: Written, rename: CallSite, src_code: str) -> bool:
    """A durable-replace question only arises when a temporary file is published under another name:
    a tempfile-made file, a temp-looking name, or a name derived from the target (path + ".new").
    Moving a file that was simply written (tests, archives) is not a replace."""
    if written.opener is not None and written.opener.qual in ("tempfile.mkstemp", "tempfile.NamedTemporaryFile"):
        return True
    texts = [src_code.lower()] + [i.lower() for i in written.idents if i]
    if any(hint in text for text in texts for hint in TEMP_HINTS):
        return True
    dst = rename.arg(1) if rename.receiver is None or rename.qual else rename.arg(0)
    dst_code = facts.code(dst) if dst is not None else ""
    return bool(dst_code) and any(dst_code in text and dst_code != text for text in texts)


def check(facts: Facts):
    for scope in facts.scopes:
        if not any(c.qual in SYNCS or c.qual in RENAMES or c.tail in ("rename", "replace") for c in scope.calls):
            continue
        model = _ScopeModel(facts, scope)
        yield from _renames(facts, model)
        yield from _unflushed_syncs(facts, model)


def _renames(facts: Facts, model: _ScopeModel):
    for call, src in model.renames:
        written = next((w for w in reversed(model.files) if src in w.idents and w.opened < call.order), None)
        if written is None:
            continue
        last = model.last_write_before(written, call.order)
        synced = written.sync_flag or any(last < order < call.order for order, _, _ in model.syncs)
        label = call_label(call)
        src_code = facts.code(call.arg(0) if call.receiver is None or call.qual else call.receiver)
        if not _is_replace(facts, written, call, src_code):
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
                      {"write_line": line, "autofix": fix}, variant="" if write is not None else "opened")
            continue
        if not dir_synced:
            dst = call.arg(1) if call.receiver is None or call.qual else call.arg(0)
            yield Hit("SCL102", call.node, {"call": label, "src": _quoted(src_code)},
                      {"autofix": {"kind": "after", "line": facts.position(call.node)[0],
                                   "dst": facts.code(dst) if dst is not None else None}})


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
                  {"write_line": line, "autofix": {"kind": "before", "line": facts.position(call.node)[0],
                                                   "code": [f"{handle}.flush()"]}})


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
