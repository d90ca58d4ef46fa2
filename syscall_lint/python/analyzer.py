"""Python source → findings: decode, gate, parse with libcst, run the rule modules, apply noqa."""

from __future__ import annotations

import ast
import io
import tokenize
import warnings

from syscall_lint import findings as fmodel
from syscall_lint.noqa import Suppressions
from syscall_lint.python import prescreen

MAX_BYTES = 16 * 1024 * 1024
MODULE_CODES = {
    "durability": {"SCL101", "SCL102", "SCL106"},
    "batching": {"SCL201", "SCL401"},
    "connections": {"SCL301", "SCL302", "SCL303"},
    "ordering": {"SCL501"},
}


class BadInput(Exception):
    """The file cannot be analysed; the message says why, in one line."""


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise BadInput(f"file too large ({len(data) // (1024 * 1024)} MiB > {MAX_BYTES // (1024 * 1024)} MiB)")
    if b"\0" in data:
        raise BadInput("contains NUL bytes; not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if b"coding" in b"\n".join(data.splitlines()[:2]):
            raise BadInput(f"bad coding cookie: {exc.msg}") from None
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        where = f" at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else ""
        raise BadInput(f"cannot decode as {encoding}{where}: {reason}") from None
    return text[1:] if text.startswith("\ufeff") else text


def _modules(text: str, enabled: set) -> set:
    return _plan(text, enabled)[0]


def _plan(text: str, enabled: set, screened=None):
    """(modules to run, source to give libcst, line map or None for the whole file)."""
    wanted = {m for m, codes in MODULE_CODES.items() if codes & enabled}
    wanted &= prescreen.text_modules(text) if screened is None else screened
    if not wanted:
        return wanted, text, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except SyntaxError as exc:
        raise BadInput(f"syntax error at {exc.lineno}:{exc.offset}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise BadInput("too deeply nested to parse") from None
    names = prescreen.ModuleNames(tree)
    modules, parts = prescreen.plan(tree, text, names)
    modules &= wanted
    if not modules or parts is None:
        return modules, text, None
    source, line_map = prescreen.snippet(text, parts, names)
    if len(source) > 0.6 * len(text):
        return modules, text, None  # most of the file anyway: parse it as it is
    return modules, source, line_map


def run_modules(text: str, modules: set, line_map=None):
    """Parse with libcst and run the selected rule modules; yields (Hit, Facts)."""
    import libcst as cst

    from syscall_lint.python import batching, connections, durability, facts, ordering

    impl = {"durability": durability, "batching": batching, "connections": connections, "ordering": ordering}
    try:
        module = cst.parse_module(text)
        collected = facts.collect(module, line_map)
    except cst.ParserSyntaxError as exc:
        raise BadInput(f"syntax error at {exc.raw_line}:{exc.raw_column + 1}: {exc.message}") from None
    except RecursionError:
        raise BadInput("too deeply nested to parse") from None
    for name in sorted(modules):
        for hit in impl[name].check(collected):
            yield hit, collected


def analyze(text: str, path: str, settings, gate: bool = True, screened=None) -> list:
    """Findings for one file's text. Raises BadInput for files that cannot be analysed."""
    enabled = settings.enabled_codes(path)
    if path.endswith(".pyi"):
        modules, source, line_map = set(), text, None  # stubs declare, they never run: nothing to judge
    elif gate:
        modules, source, line_map = _plan(text, enabled, screened)
    else:
        modules, source, line_map = set(MODULE_CODES), text, None
    lines = text.splitlines()
    out = []
    suppressions = Suppressions(text)
    seen = set()
    if modules:
        for hit, collected in run_modules(source, modules, line_map):
            if hit.code not in enabled:
                continue
            line, col, end_line, end_col = collected.position(hit.node)
            key = (hit.code, line, col)
            if key in seen:
                continue
            seen.add(key)
            if suppressions.suppresses(line, hit.code):
                continue
            source_line = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            out.append(fmodel.make(hit.code, "python", path, line=line, column=col, end_line=end_line,
                                   end_column=end_col, evidence=hit.evidence, fingerprint_text=source_line,
                                   **hit.fields))
    if "SCL900" in enabled:
        for line, codes in suppressions.unused():
            codes = [c for c in codes if any(e.startswith(c) for e in enabled)]
            if not codes:
                continue
            text_line = lines[line - 1] if line <= len(lines) else ""
            col = text_line.lower().find("# noqa") + 1 or 1
            out.append(fmodel.make("SCL900", "python", path, line=line, column=col, end_line=line,
                                   end_column=len(text_line) + 1, codes=", ".join(codes),
                                   fingerprint_text=text_line.strip()))
    out.sort(key=lambda f: f.sort_key())
    return out
