"""`check --fix` / `--diff`: libcst edits for the rules whose fix is mechanical.

SCL106 (safe): insert `f.flush()` before `os.fsync(f.fileno())`.
SCL101 (unsafe — an fsync costs milliseconds at run time): flush and fsync the file at the end of the
`with` block that wrote it, or before it is closed, or before the rename.
SCL102 (unsafe): fsync the parent directory right after the rename.
Edits keep formatting and comments, are idempotent (a fixed file has no finding left to fix), and
files are rewritten with a durable replace."""

from __future__ import annotations

import difflib
import os
import sys
from collections import defaultdict

import libcst as cst
from libcst.metadata import PositionProvider

from syscall_lint import catalog
from syscall_lint.discover import walk
from syscall_lint.durable import write_atomic
from syscall_lint.findings import InputError
from syscall_lint.inputs import InputRefused, read_regular
from syscall_lint.python.analyzer import MAX_BYTES, MAX_CST_BYTES, BadInput, analyze, decode, too_costly

DIR_SYNC = [
    "{dfd} = {os}.open({os}.path.dirname({os}.path.abspath({dst})) or \".\", {os}.O_RDONLY)",
    "try:\n    {os}.fsync({dfd})\nfinally:\n    {os}.close({dfd})",
]


class _Edits(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, before, after, block_end, replace):
        super().__init__()
        self.before, self.after, self.block_end, self.replace = before, after, block_end, replace

    def _line(self, node) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def _weave(self, original_body, updated_body):
        out = []
        for orig, new in zip(original_body, updated_body):
            line = self._line(orig)
            out.extend(self.before.pop(line, []))
            out.extend(self.replace.pop(line, [new]))
            out.extend(self.after.pop(line, []))
        return out

    def leave_IndentedBlock(self, original_node, updated_node):
        return updated_node.with_changes(body=self._weave(original_node.body, updated_node.body))

    def leave_Module(self, original_node, updated_node):
        return updated_node.with_changes(body=self._weave(original_node.body, updated_node.body))

    def leave_With(self, original_node, updated_node):
        extra = self.block_end.pop(self._line(original_node), [])
        if extra and isinstance(updated_node.body, cst.IndentedBlock):
            body = updated_node.body
            return updated_node.with_changes(body=body.with_changes(body=[*body.body, *extra]))
        return updated_node


def _os_name(module: cst.Module) -> str | None:
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Import):
                    for alias in small.names:
                        if isinstance(alias.name, cst.Name) and alias.name.value == "os":
                            return alias.asname.name.value if alias.asname else "os"
    return None


def _add_import_os(module: cst.Module) -> cst.Module:
    body = list(module.body)
    index = 0
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and (
                isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.SimpleString) and i == 0
                or isinstance(stmt.body[0], cst.ImportFrom) and getattr(stmt.body[0].module, "value", "") == "__future__"):
            index = i + 1
    body.insert(index, cst.parse_statement("import os\n"))
    return module.with_changes(body=body)


class CannotFix(BadInput):
    """The file was analysed but cannot be fixed; only --fix knows, so only --fix reports it."""


def fix_source(text: str, path: str, settings, unsafe: bool) -> tuple:
    """(new text, number of fixes applied). Raises BadInput for files that cannot be analysed."""
    cat = catalog.load()
    wanted = {code for code, rule in cat.rules.items()
              if rule.fix_safety == "safe" or (unsafe and rule.fix_safety == "unsafe")}
    findings = [f for f in analyze(text, path, settings) if f.code in wanted and f.autofix]
    if not findings:
        return text, 0
    if len(text) > MAX_CST_BYTES:  # the edits need the whole file in libcst, not just the snippet
        raise CannotFix(str(too_costly("the file to fix", len(text.encode("utf-8", "surrogatepass")), MAX_CST_BYTES)))
    module = cst.parse_module(text)
    os_name = _os_name(module)
    needs_os = os_name is None
    os_name = os_name or "os"
    before, after, block_end, replace = defaultdict(list), defaultdict(list), defaultdict(list), {}
    applied = 0
    for f in findings:
        fix = f.autofix
        if f.code == "SCL102":
            if not fix.get("dst"):
                continue
            lines = [s.format(os=os_name, dst=fix["dst"], dfd="_dir_fd") for s in DIR_SYNC]
        else:
            lines = [line.replace("os.", f"{os_name}.") for line in fix["code"]]
        statements = [cst.parse_statement(line + "\n") for line in lines]
        if fix.get("dir_after") and unsafe:
            d = fix["dir_after"]
            dir_lines = [x.format(os=os_name, dst=d["dst"], dfd="_dir_fd") for x in DIR_SYNC]
            after[d["line"]].extend(cst.parse_statement(x + "\n") for x in dir_lines)
        if fix["kind"] == "replace":
            replace[fix["line"]] = statements
            applied += 1
            continue
        target = {"before": before, "after": after, "block_end": block_end}[fix["kind"]]
        # one edit per place: two findings that want the same statement there get it once
        existing = {module.code_for_node(s) for s in target[fix["line"]]}
        statements = [s for s in statements if module.code_for_node(s) not in existing]
        target[fix["line"]].extend(statements)
        applied += 1
    wrapper = cst.MetadataWrapper(module)
    new = wrapper.visit(_Edits(before, after, block_end, replace))
    if needs_os:
        new = _add_import_os(new)
    return new.code, applied


def run_fixes(paths, resolver, unsafe: bool, diff_only: bool) -> int:
    from pathlib import Path

    status = 0
    total = 0

    def error(path: str, message, fix_only: bool = False) -> None:
        # with --fix the check that follows reports a bad input again: one line per input
        if diff_only or fix_only:
            print(f"syscall-lint: error: {path}: {message}", file=sys.stderr)

    for arg in paths:
        excluded = resolver.for_path(Path(arg)).excluder(arg) if os.path.exists(arg) else (lambda p: False)
        for item in walk(arg, lambda p: p.endswith((".py", ".pyi")), excluded):
            if isinstance(item, InputError):
                error(item.path, item.message)
                status = 2
                continue
            try:
                # a FIFO or a device named *.py must not block or fill memory: regular files only
                text = decode(read_regular(item, MAX_BYTES))
                new, count = fix_source(text, item, resolver.for_path(Path(item)), unsafe)
            except (OSError, BadInput, InputRefused) as exc:
                error(item, exc, fix_only=isinstance(exc, CannotFix))
                status = 2
                continue
            if not count or new == text:
                continue
            total += count
            if diff_only:
                sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                           f"a/{item}", f"b/{item}"))
                status = status or 1
            else:
                write_atomic(item, new.encode("utf-8"))
    if not diff_only and total:
        print(f"syscall-lint: applied {total} fix{'es' if total != 1 else ''}", file=sys.stderr)
    return status
