"""Python source → findings: decode, gate, parse with libcst, run the rule modules, apply noqa."""

from __future__ import annotations

import ast
import io
import tokenize
import warnings

from syscall_lint import findings as fmodel
from syscall_lint.noqa import Suppressions
from syscall_lint.python import prescreen
from syscall_lint.python.lines import source_lines
from syscall_lint.python.rulekit import module_codes, registry

# Cost bounds (measured on CPython 3.11): `ast` needs ~150-200 MiB per MiB of source, libcst with
# positions ~0.8-1 GiB per MiB and ~25 s. Reading and the text screen are cheap, so a big file that
# no rule can match costs nothing; only what must be parsed is bounded. A file over a bound gets a
# one-line "too costly to analyse" error instead of taking the machine's memory.
MAX_BYTES = 16 * 1024 * 1024  # read and decoded at all
MAX_PARSE_BYTES = 2 * 1024 * 1024  # given to `ast` (the gate, strict mode)
MAX_CST_BYTES = 512 * 1024  # given to libcst: the needed functions, or the whole file


class BadInput(Exception):
    """The file cannot be analysed; the message says why, in one line."""


TOO_DEEP = "too deeply nested to analyse (Python's recursion limit)"


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


def too_costly(what: str, size: int, limit: int) -> BadInput:
    return BadInput(f"too costly to analyse ({what} is {_mib(size)}, the limit is {_mib(limit)})")


def parse_ast(text: str) -> ast.Module:
    """`ast.parse` within the size bound; syntax errors and overly deep code as BadInput."""
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_PARSE_BYTES else len(text)
    if size > MAX_PARSE_BYTES:
        raise too_costly("the source to parse", size, MAX_PARSE_BYTES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except SyntaxError as exc:
        raise BadInput(f"syntax error at {exc.lineno}:{exc.offset}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise BadInput(TOO_DEEP) from None
    except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
        raise BadInput(f"cannot parse: {exc}") from None


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


def _plan(text: str, enabled: set, screened=None, view=None):
    """(modules to run, source to give libcst, line map or None for the whole file)."""
    wanted = {m for m, codes in module_codes().items() if codes & enabled}
    wanted &= prescreen.text_modules(text, view) if screened is None else screened
    if not wanted:
        return wanted, text, None
    tree = parse_ast(text)
    names = prescreen.ModuleNames(tree, view)
    if "durability" in wanted and registry()["durability"].gated and not names.may_rename_or_sync():
        # the durability gate needs a rename or a sync: without one the whole walk would drop it
        wanted = wanted - {"durability"}
        if not wanted:
            return wanted, text, None
    modules, parts = prescreen.plan(tree, text, names)
    modules &= wanted
    # a rule the `ast` gate has no structural test for runs on the whole file whenever it screens in
    ungated = {m for m in wanted if not registry()[m].gated}
    if ungated:
        return modules | ungated, text, None
    if not modules or parts is None:
        return modules, text, None
    source, line_map = prescreen.snippet(text, parts, names)
    if len(source) > 0.6 * len(text):
        return modules, text, None  # most of the file anyway: parse it as it is
    return modules, source, line_map


def run_modules(text: str, modules: set, line_map=None, options=None, view=None):
    """Parse with libcst and run the selected rule modules; yields (Hit, Facts).

    `options` are the rule options in effect (code -> {option: value}, defaults from the catalog);
    `view` what the file's project imports offer (project.ProjectView), or None."""
    import libcst as cst

    from syscall_lint.python import facts

    rules = registry()
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_CST_BYTES else len(text)
    if size > MAX_CST_BYTES:
        raise too_costly("the code the rules must parse", size, MAX_CST_BYTES)
    try:
        module = cst.parse_module(text)
        collected = facts.collect(module, line_map, options, view)
        hits = [hit for name in sorted(modules) for hit in rules[name]().check(collected)]
        if hits:
            collected.positions.resolve()  # here, where a too-deep module becomes a BadInput
    except cst.ParserSyntaxError as exc:
        raise BadInput(f"syntax error at {exc.raw_line}:{exc.raw_column + 1}: {exc.message}") from None
    except Exception as exc:
        # libcst's visitors recurse; on deep code the RecursionError may surface as another
        # exception raised while handling it (a KeyError in its position bookkeeping)
        if _from_recursion(exc):
            raise BadInput(TOO_DEEP) from None
        raise
    for hit in hits:
        yield hit, collected


def _from_recursion(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 50:
        if isinstance(exc, RecursionError):
            return True
        exc, seen = exc.__context__, seen + 1
    return False


def analyze(text: str, path: str, settings, gate: bool = True, screened=None, view=None) -> list:
    """Findings for one file's text. Raises BadInput for files that cannot be analysed.

    `view`: the file's project imports, summarised (project.view_for); None follows none."""
    enabled = settings.enabled_codes(path)
    if path.endswith(".pyi"):
        modules, source, line_map = set(), text, None  # stubs declare, they never run: nothing to judge
    elif gate:
        modules, source, line_map = _plan(text, enabled, screened, view)
    else:
        modules, source, line_map = set(registry()), text, None
    lines = source_lines(text)
    out = []
    suppressions = Suppressions(text)
    seen = set()
    if modules:
        for hit, collected in run_modules(source, modules, line_map, settings.options, view):
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
                                   variant=hit.variant, autofix=hit.autofix, **hit.fields))
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
