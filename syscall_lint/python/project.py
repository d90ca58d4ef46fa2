"""Following a file's imports into the project: find the modules, summarise them, bind the names.

A file asked for imports `pkg.util`, `from .work import start`, `from . import fs`: those resolve
to files under the project (the file's own package tree, the project root found by its markers and
its `src/`, and the `src` setting), which are read through inputs.py and summarised from `ast`
(summaries.py) — only summarised, never reported on. Third-party packages are not followed: a
file inside package `p` follows only `p.*`, relative imports and modules under the project's roots.

Everything is bounded: modules per file, chain depth (re-exports, base classes), bytes per module,
summaries per process; a module that cannot be read or parsed has an empty summary (and no error:
errors are for the files asked for).

`ProjectView` is what one analysed file sees: which dotted names (as written in it) stand for a
known operation, a temp-file context manager or a server class, and the digests of the summaries
it consumed (the result cache keys the file on them).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field

from syscall_lint.discover import MAX_MARKER_DEPTH, THIRD_PARTY_DIRS, nearest_project_root
from syscall_lint.inputs import InputRefused, read_regular
from syscall_lint.python.qualnames import canonical
from syscall_lint.python.summaries import (SUMMARY_FORMAT, ClassSummary, FunctionSummary, ModuleSummary,
                                           TempManager)
from syscall_lint.python.vocabulary import (DUMPERS, FILE_SYNCS, FORKERS, FORKING_SERVERS, PROCESS_CLASSES, RENAMES,
                                            RULE_MODULES, THREAD_CLASSES, THREAD_STARTERS, THREADING_SERVERS)

MAX_IMPORTS_PER_FILE = 200  # project modules one analysed file may pull in (directly)
MAX_DEPTH = 4  # re-export and base-class chains followed across modules
MAX_SUMMARY_BYTES = 2 * 1024 * 1024  # a bigger module is not summarised (as analyzer.MAX_PARSE_BYTES)
MAX_MODULES = 20_000  # summaries one process keeps; past it, further modules are not followed
# What makes a module (or one function of it) worth parsing: a rename/link of two names or one
# passed as a value (`retry(...)(os.replace)`), a sync, a spawn, a temp file, an accept, a server
# base or dispatch, a context manager. Anything else has nothing to offer the rules, and its
# imports and class bases are read from the text alone.
_WORTH_LITERALS = (
    "contextmanager", "process_request", ".accept()", "fsync(", "fdatasync(", "Thread(", "fork(", "Process(",
    "start_new_thread(", "start_new(", "NamedTemporaryFile(", "mkstemp(", "ThreadingMixIn", "ForkingMixIn",
    "ThreadingTCPServer", "ForkingTCPServer", "ThreadingUnixStreamServer", "ForkingUnixStreamServer",
    "ThreadingHTTPServer", ".buf", "buffer=", "frombuffer(",
    "Thread)", "Thread,", "Process)", "Process,",  # a Thread/Process subclass, maybe a class attribute's value
)
_TWO_NAMES = re.compile(r"\s*[A-Za-z_][\w.]*\s*,\s*[A-Za-z_][\w.]*\s*[,)]")  # `(src, dst)` after `rename(`
_AS_VALUE = re.compile(r"[ \t]*(?:[,)]|$)", re.M)  # `retry(...)(os.replace)`, `swap = os.replace`
_WORTH_FOLLOWED = tuple((word + "(", _TWO_NAMES) for word in ("rename", "replace", "renames", "move", "link")) + \
    tuple((word, _AS_VALUE) for word in ("rename", "replace", "renames", "move", "fsync", "fdatasync"))


def _worth_parsing(text: str) -> bool:
    """Literal scans (fast) first; a regex only where a word was found, anchored right after it."""
    if any(word in text for word in _WORTH_LITERALS):
        return True
    for word, follow in _WORTH_FOLLOWED:
        at = text.find(word)
        while at >= 0:
            if follow.match(text, at + len(word)):
                return True
            at = text.find(word, at + 1)
    return False


# Line-anchored patterns start at the "\n" before the line, searched in "\n" + text: a leading literal
# keeps re's scan fast, where `^` with re.M tries every position (as textscan.py explains). A match
# never ends just after a "\n", so the matches are the ones `^...` with re.M finds.
_CLASS_LINE = re.compile(r"\nclass[ \t]+(\w+)[ \t]*\(([^)]*)\)")
TEMP_HINTS = ("tmp", "temp", "new", "part", "stag", "swp", "~", "next", "pending", "incoming")
CONTEXT_MANAGERS = frozenset({"contextmanager", "asynccontextmanager"})
OPERATION_TAILS = {  # what a summarised call stands for at the call site, for the `ast` gate
    "os.replace": "replace", "os.rename": "rename", "os.renames": "renames", "shutil.move": "move",
    "os.fsync": "fsync", "os.fdatasync": "fdatasync", "threading.Thread": "Thread",
    "multiprocessing.Process": "Process", "tempfile.NamedTemporaryFile": "NamedTemporaryFile",
    "tempfile.mkstemp": "mkstemp",
}
DURABILITY_OPERATIONS = frozenset(RENAMES | FILE_SYNCS | {"tempfile.NamedTemporaryFile", "tempfile.mkstemp"})

_IMPORT_LINE = re.compile(
    r"\n[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]*(\([^)]*\)|[^\n#;]*)|import[ \t]+([^\n#;]+))")
# The same two statements, each starting with its literal word (re finds a literal fast; the "\n"
# above makes it try every line): _import_lines checks the line start and keeps _IMPORT_LINE's order
# and its non-overlapping matches.
_FROM_IMPORT = re.compile(r"from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]*(\([^)]*\)|[^\n#;]*)")
_PLAIN_IMPORT = re.compile(r"import[ \t]+([^\n#;]+)")


def _import_lines(text: str) -> list:
    """(source, names, plain) of each match `_IMPORT_LINE.finditer("\n" + text)` finds, in order."""
    found = []
    for pattern, kind in ((_FROM_IMPORT, 0), (_PLAIN_IMPORT, 1)):
        match = pattern.search(text)
        while match is not None:
            at = match.start()
            line = text.rfind("\n", 0, at) + 1
            if at == line or not text[line:at].strip(" \t"):
                found.append((line, match.end(), kind, match))
                match = pattern.search(text, match.end())
            else:  # not a statement: a real one may start inside what it spans (`"from a import (b"`)
                match = pattern.search(text, at + 1)
    found.sort(key=lambda item: item[0])
    out, reached = [], 0
    for line, end, kind, match in found:
        if line < reached:  # inside the previous statement's match (a parenthesised name list)
            continue
        reached = end + 1  # _IMPORT_LINE's next match starts at a "\n" at or after this end
        out.append(match.groups() + (None,) if kind == 0 else (None, None, match.group(1)))
    return out


# --- where modules are ------------------------------------------------------------------------

def package_of(path: str, memo: dict | None = None) -> tuple:
    """(the folder the file's top-level package lives in, the file's dotted module name).
    `memo` keeps each folder's answer (every file of a folder asks the same)."""
    folder, name = os.path.split(os.path.abspath(path))
    stem = name.rsplit(".", 1)[0]
    found = memo.get(("package", folder)) if memo is not None else None
    if found is None:
        directory, packages = folder, []
        for _ in range(MAX_MARKER_DEPTH):
            if not os.path.isfile(os.path.join(directory, "__init__.py")):
                break
            directory, package = os.path.split(directory)
            packages.insert(0, package)
        found = (directory, tuple(packages))
        if memo is not None:
            memo[("package", folder)] = found
    directory, packages = found
    return directory, ".".join(packages + (() if stem == "__init__" else (stem,)))


@dataclass(frozen=True)
class Layout:
    """Where one file's absolute imports may resolve: (root folder, allowed top-level names or
    None for any) pairs, and the file's own module name (for its relative imports)."""
    roots: tuple
    module: str
    is_package: bool


def layout_for(path: str, extra_roots=(), memo: dict | None = None) -> Layout:
    """`memo`: per-folder answers kept across the files of a run (the package above a folder, the
    project root at or above it)."""
    package_root, module = package_of(path, memo)
    top = module.split(".")[0] if module else ""
    is_package = os.path.basename(path).startswith("__init__.")
    roots = []
    nested = module.count(".") > 0 or is_package
    if nested:
        roots.append((package_root, frozenset({top})))  # a package follows only itself
    elif os.path.basename(package_root) not in THIRD_PARTY_DIRS:
        roots.append((package_root, None))  # a top-level module: its siblings are on sys.path
    folder = os.path.dirname(os.path.abspath(path))
    if memo is None:
        root = nearest_project_root(folder)
    else:
        root = memo.get(("root", folder), False)
        if root is False:
            root = memo[("root", folder)] = nearest_project_root(folder)
    if root is not None:
        roots.append((root, None))
        if os.path.isdir(os.path.join(root, "src")):
            roots.append((os.path.join(root, "src"), None))
    roots.extend((os.path.abspath(r), None) for r in extra_roots)
    seen, unique = set(), []
    for r in roots:
        if r[0] not in seen:
            seen.add(r[0])
            unique.append(r)
    return Layout(tuple(unique), module, is_package)


def absolute(module: str, is_package: bool, level: int, name: str) -> str | None:
    """`from ..x import y` in module `a.b.c` -> `a.x`."""
    if not level:
        return name
    parts = module.split(".") if module else []
    if not is_package:
        parts = parts[:-1]
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([name] if name else [])) or None


# --- summaries from ast -----------------------------------------------------------------------

def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class _Module:
    """Name resolution inside one summarised module."""

    def __init__(self, tree: ast.Module, module: str, imports: dict):
        self.module = module
        self.imports = imports
        self.functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.aliases: dict = {}

    def resolve(self, dotted: str | None) -> str | None:
        if not dotted:
            return None
        head, _, rest = dotted.partition(".")
        base = self.imports.get(head) or self.aliases.get(head)
        if base is None:
            return None
        return canonical(f"{base}.{rest}" if rest else base)


def _bind_aliases(tree: ast.Module, names: _Module) -> None:
    """Module-level names bound to a rename or sync: `replace = retry(...)(os.replace)`,
    `move = functools.partial(os.rename)`, also inside if/try (the first that resolves wins)."""
    stack = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value, qual = node.value, None
            if isinstance(value, (ast.Name, ast.Attribute)):
                qual = names.resolve(_dotted(value))
            elif isinstance(value, ast.Call) and value.args and not isinstance(value.args[0], ast.Starred):
                qual = names.resolve(_dotted(value.args[0]))
            if qual in RENAMES or qual in FILE_SYNCS:
                names.aliases.setdefault(node.targets[0].id, qual)
        stack.extend(reversed([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]))


def _own_nodes(fn):
    """The nodes of a function's body, not those of functions or classes defined in it."""
    stack = list(reversed(fn.body))  # in source order: a name is bound before it is returned
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed([child for child in ast.iter_child_nodes(node)
                               if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                         ast.Lambda))]))


def _is_write_mode(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def _unbuffered(call: ast.Call) -> bool:
    value = call.args[2] if len(call.args) > 2 else next((k.value for k in call.keywords if k.arg == "buffering"), None)
    return isinstance(value, ast.Constant) and value.value == 0


@dataclass
class _Draft:
    """A function summary being built (locals the final record does not keep)."""
    summary: dict
    local_calls: set = field(default_factory=set)  # names of this module's functions it calls
    self_calls: set = field(default_factory=set)  # `self.m()` calls
    # `return helper(a, b)` of a function of this module: (helper, for each argument the position of
    # the parameter whose memory it views, or None): how a view made by a helper is handed on
    view_calls: list = field(default_factory=list)


def _function(fn, names: _Module, method: bool) -> _Draft:
    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)]
    if method and params:
        params = params[1:]
    out = {"name": fn.name, "params": tuple(params)}
    draft = _Draft(out)
    handles: dict = {}  # name -> (buffered, temp-made)
    fds: set = set()  # descriptors of mkstemp files
    temp_names: set = set()
    yields = []
    unlinks = set()
    links = []
    viewing = {p: i for i, p in enumerate(params)}  # name -> the parameter whose memory it views
    for node in _own_nodes(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            root = _ast_view_root(node.value)
            if root in viewing:
                viewing[node.targets[0].id] = viewing[root]
        elif isinstance(node, ast.Return) and node.value is not None:
            root = _ast_view_root(node.value)
            if root in viewing and not (isinstance(node.value, ast.Name) and node.value.id in params):
                out["views_param"] = viewing[root]  # (a parameter handed back as it came is no view)
            elif isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) \
                    and node.value.func.id in names.functions:
                draft.view_calls.append((node.value.func.id,
                                         tuple(viewing.get(_ast_view_root(a)) for a in node.value.args)))
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            yields.append(node)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if isinstance(item.context_expr, ast.Call) and isinstance(item.optional_vars, ast.Name):
                    _see_opener(item.context_expr, item.optional_vars.id, names, handles, fds)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and isinstance(value, ast.Call):
                _see_opener(value, target.id, names, handles, fds)
                # `result = cast(BinaryIO, f)`: the same file under another name
                for arg in value.args:
                    if isinstance(arg, ast.Name) and arg.id in handles:
                        handles.setdefault(target.id, handles[arg.id])
            elif isinstance(target, ast.Name) and isinstance(value, ast.Name) and value.id in handles:
                handles[target.id] = handles[value.id]
            elif isinstance(target, ast.Name) and isinstance(value, ast.Attribute) and value.attr == "name" \
                    and isinstance(value.value, ast.Name) and value.value.id in handles:
                temp_names.add(target.id)
            elif isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(value, ast.Call) \
                    and names.resolve(_dotted(value.func)) == "tempfile.mkstemp" \
                    and all(isinstance(e, ast.Name) for e in target.elts):
                fds.add(target.elts[0].id)
                temp_names.add(target.elts[1].id)
                out.setdefault("_fd_pair", (target.elts[0].id, target.elts[1].id))
        elif isinstance(node, ast.Return) and node.value is not None:
            _see_return(node.value, names, handles, temp_names, out)
        elif isinstance(node, ast.Call):
            func = node.func
            qual = names.resolve(_dotted(func))
            args = [a.id if isinstance(a, ast.Name) else None for a in node.args]
            if qual in RENAMES and len(params) >= 2 and args[:2] == params[:2]:
                out["publishes"] = qual
            elif qual == "os.link" and len(params) >= 2 and args[:2] == params[:2]:
                links.append(qual)
            elif qual in ("os.unlink", "os.remove") and args[:1] == params[:1] and params:
                unlinks.add(args[0])
            elif qual in FILE_SYNCS:
                out["syncs"] = qual
            elif qual in THREAD_STARTERS:
                out["spawns"] = "thread"
            elif qual in FORKERS:
                out["spawns"] = out.get("spawns") or "process"
            elif qual in DUMPERS:
                for i, p in enumerate(params):
                    if p in args:
                        out.setdefault("writes_params", set()).add(i)
            if isinstance(func, ast.Attribute):
                receiver = func.value
                if func.attr == "accept" and not node.args:
                    out["accepts"] = True
                elif func.attr in ("write", "writelines") and isinstance(receiver, ast.Name) and receiver.id in params:
                    out.setdefault("writes_params", set()).add(params.index(receiver.id))
                elif isinstance(receiver, ast.Name) and receiver.id == "self" and method:
                    draft.self_calls.add(func.attr)
            elif isinstance(func, ast.Name) and func.id in names.functions and qual is None:
                draft.local_calls.add(func.id)
    if links and params and params[0] in unlinks:
        out["publishes"] = "os.replace"  # os.link + os.unlink of the source is a rename
    if any(_tail(d) in CONTEXT_MANAGERS for d in fn.decorator_list) and len(yields) == 1:
        value = yields[0].value
        state = handles.get(value.id) if isinstance(value, ast.Name) else None
        if state is not None and state[1]:
            line = yields[0].lineno
            syncs = any(isinstance(n, ast.Call) and names.resolve(_dotted(n.func)) in FILE_SYNCS and n.lineno > line
                        for n in _own_nodes(fn))
            out["manager"] = TempManager(buffered=state[0], syncs_on_exit=syncs)
            out.pop("temp", None)
    out.pop("_fd_pair", None)
    if "writes_params" in out:
        out["writes_params"] = tuple(sorted(out["writes_params"]))
    return draft


def _tail(decorator) -> str | None:
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None


def _see_opener(call: ast.Call, target: str, names: _Module, handles: dict, fds: set) -> None:
    qual = names.resolve(_dotted(call.func)) or ("builtins.open" if _dotted(call.func) == "open" else None)
    if qual == "tempfile.NamedTemporaryFile":
        handles[target] = (not _unbuffered(call), True)
    elif qual == "os.fdopen":
        fd = call.args[0] if call.args else None
        temp = isinstance(fd, ast.Name) and fd.id in fds
        if temp or _is_write_mode(call):
            handles[target] = (not _unbuffered(call), temp)
    elif qual in ("builtins.open", "io.open") and _is_write_mode(call):
        name = ast.unparse(call.args[0]).lower() if call.args else ""
        handles[target] = (not _unbuffered(call), any(h in name for h in TEMP_HINTS))


def _see_return(value, names: _Module, handles: dict, temp_names: set, out: dict) -> None:
    if isinstance(value, ast.Call):
        qual = names.resolve(_dotted(value.func))
        if qual == "tempfile.NamedTemporaryFile":
            out["temp"] = "handle"
        elif qual == "tempfile.mkstemp":
            out["temp"] = "fd_name"
    elif isinstance(value, ast.Name):
        if value.id in handles and handles[value.id][1]:
            out["temp"] = "handle"
        elif value.id in temp_names:
            out["temp"] = "name"
    elif isinstance(value, ast.Tuple) and len(value.elts) == 2 and "_fd_pair" in out:
        if tuple(getattr(e, "id", None) for e in value.elts) == out["_fd_pair"]:
            out["temp"] = "fd_name"


def _calls_super(fn) -> bool:
    """`super().name(...)` in method `fn`: the inherited behaviour still runs (connections'
    `_delegates_up`)."""
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == fn.name
               and isinstance(n.func.value, ast.Call) and _dotted(n.func.value.func) == "super"
               for n in _own_nodes(fn))


def _ast_view_root(value) -> str | None:
    """The name whose memory `value` views without a copy (`np.ndarray(..., buffer=shm.buf)`,
    `np.frombuffer(shm.buf)`, `memoryview(x)`, `x.cast(...)`, `x[a:b]`; `.buf` dropped), or the
    name itself; None otherwise (ordering.py's `_view_root`, over `ast`)."""
    for _ in range(8):
        inner = None
        if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Slice):
            inner = value.value
        elif isinstance(value, ast.Call):
            func = _dotted(value.func) or ""
            tail = value.func.attr if isinstance(value.func, ast.Attribute) else func
            positional = [a for a in value.args if not isinstance(a, ast.Starred)]
            if func == "memoryview" and len(positional) == 1:
                inner = positional[0]
            elif isinstance(value.func, ast.Attribute) and tail in ("cast", "toreadonly"):
                inner = value.func.value
            elif tail == "frombuffer" and positional:
                inner = positional[0]
            elif tail == "ndarray":
                keyword = next((k.value for k in value.keywords if k.arg == "buffer"), None)
                inner = keyword if keyword is not None else positional[2] if len(positional) > 2 else None
        if inner is None:
            break
        value = inner
    name = _dotted(value) if isinstance(value, (ast.Name, ast.Attribute)) else None
    if name is not None and name.endswith(".buf"):
        name = name[: -len(".buf")]
    return name


def _finish(draft: _Draft) -> FunctionSummary:
    data = dict(draft.summary)
    return FunctionSummary(**data)


def _propagate(drafts: dict, link) -> None:
    """A function calling a function of the same module (or class) that spawns or syncs does too."""
    for _ in range(MAX_DEPTH):
        changed = False
        for draft in drafts.values():
            for callee in link(draft):
                other = drafts.get(callee)
                if other is None or other is draft:
                    continue
                for key in ("spawns", "syncs"):
                    if other.summary.get(key) and not draft.summary.get(key):
                        draft.summary[key] = other.summary[key]
                        changed = True
            for callee, passed in draft.view_calls:  # `return header(shm)`: a view of what it passes
                other = drafts.get(callee)
                index = other.summary.get("views_param", -1) if other is not None else -1
                if "views_param" not in draft.summary and 0 <= index < len(passed) and passed[index] is not None:
                    draft.summary["views_param"] = passed[index]
                    changed = True
        if not changed:
            return


def module_imports(text: str, module: str, is_package: bool) -> dict:
    """local name -> qualified name for every import in the text (also those inside functions:
    looser, never wrong for what a module's own functions call)."""
    out: dict = {}
    for level, source, names in _imports_in(text):
        base = absolute(module, is_package, level, source)
        if base is None:
            continue
        if names is None or isinstance(names, str):
            if names:
                out[names] = base
            else:
                out[base.split(".")[0]] = base.split(".")[0]
            continue
        for name, local in names:
            out[local] = f"{base}.{name}" if base else name
    return out


def _resolve_base(dotted: str, imports: dict, module: str, local_classes) -> str:
    if dotted in local_classes:
        return f"{module}.{dotted}"
    head, _, rest = dotted.partition(".")
    base = imports.get(head)
    return canonical(f"{base}.{rest}" if rest else base) if base else dotted


def summarise(path: str, module: str, is_package: bool, data: bytes, digest: str) -> ModuleSummary:
    """The summary of one module's bytes (never raises: a module we cannot read has an empty one)."""
    from syscall_lint.python.analyzer import BadInput, decode

    try:
        text = decode(data)
    except BadInput as exc:
        return ModuleSummary(module, path, digest, error=str(exc))
    imports = module_imports(text, module, is_package) if "import" in text else {}
    summary = _summarise_text(text, path, module, imports, digest)
    summary.bindings = _bindings(text, imports)
    return summary


# searched in "\n" + text: a leading "\n" instead of `^` (see _CLASS_LINE); `$` stays line-anchored
_BINDING_LINE = re.compile(r"\n([A-Za-z_]\w*)[ \t]*=[ \t]*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)[ \t]*(?:#.*)?$", re.M)


def _bindings(text: str, imports: dict) -> dict:
    """Module-level `name = imported.attr` lines (at column 0), qualified through the imports."""
    out: dict = {}
    if "=" not in text:
        return out
    for match in _BINDING_LINE.finditer("\n" + text):
        name, dotted = match.groups()
        head, _, rest = dotted.partition(".")
        if head in imports and name not in out:
            out[name] = canonical(f"{imports[head]}.{rest}")
    return out


def _summarise_text(text, path, module, imports, digest) -> ModuleSummary:
    if not _worth_parsing(text):
        # nothing here renames, syncs or spawns: its class bases still matter (a subclass of a
        # server class imported from elsewhere serves as its base does)
        found = {m.group(1): m.group(2) for m in _CLASS_LINE.finditer("\n" + text)}
        classes = {}
        for name, bases in found.items():
            dotted = [b.strip() for b in bases.split(",") if b.strip() and "=" not in b]
            quals = tuple(_resolve_base(d, imports, module, found) for d in dotted if _dotted_text(d))
            if quals:
                classes[name] = ClassSummary(name, quals)
        return ModuleSummary(module, path, digest, classes=classes, imports=imports)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return ModuleSummary(module, path, digest, imports=imports, error=f"cannot parse: {type(exc).__name__}")
    try:
        return _summarise_tree(tree, text, path, module, imports, digest)
    except RecursionError:
        return ModuleSummary(module, path, digest, imports=imports, error="too deeply nested")


def _dotted_text(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _drafts(nodes: dict, lines: list, names: _Module, method: bool, link, outside=None) -> dict:
    """Drafts of the functions whose text can have an effect, and of those that call them
    (followed through calls in the same module or class; `outside`: the module's functions, by
    name, when `nodes` are a class's methods)."""
    outside = outside or {}
    def segment(fn):
        first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
        return "\n".join(lines[first - 1:fn.end_lineno])

    texts = {name: segment(fn) for name, fn in nodes.items()}
    drafts = {name: _function(fn, names, method) for name, fn in nodes.items()
              if _worth_parsing(texts[name])}
    outer = [name for name, f in outside.items() if f.spawns or f.syncs]
    for _ in range(MAX_DEPTH):
        spreading = outer + [name for name, d in drafts.items() if d.summary.get("spawns") or d.summary.get("syncs")
                             or (not method and "views_param" in d.summary)]
        if not spreading:
            break
        pattern = re.compile(r"\b(?:%s)\s*\(" % "|".join(map(re.escape, spreading)))
        more = {name: _function(fn, names, method) for name, fn in nodes.items()
                if name not in drafts and pattern.search(texts[name])}
        if not more:
            break
        drafts.update(more)
        outer = []
    for draft in drafts.values():  # a method calling a module function that spawns or syncs
        for callee in draft.local_calls:
            found = outside.get(callee)
            for key in ("spawns", "syncs"):
                if found is not None and getattr(found, key) and not draft.summary.get(key):
                    draft.summary[key] = getattr(found, key)
    _propagate(drafts, link)
    return drafts


def _summarise_tree(tree, text, path, module, imports, digest) -> ModuleSummary:
    from syscall_lint.python.lines import source_lines

    lines = source_lines(text)
    names = _Module(tree, module, imports)
    _bind_aliases(tree, names)
    drafts = _drafts(names.functions, lines, names, False, lambda d: d.local_calls)
    functions = {}
    for name, draft in drafts.items():
        summary = _finish(draft)
        if summary.has_effect():
            functions[name] = summary
    classes = {}
    for name, node in names.classes.items():
        bases = []
        for base in node.bases:
            dotted = _dotted(base)
            if dotted in names.classes and dotted != name:
                bases.append(f"{module}.{dotted}")
            elif dotted:
                bases.append(names.resolve(dotted) or dotted)
        members = {m.name: m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
        methods = _drafts(members, lines, names, True, lambda d: d.self_calls, functions)
        summaries = {m: _finish(d) for m, d in methods.items()}
        server, overrides = "", False
        dispatch = summaries.get("process_request")
        if "process_request" in members and not _calls_super(members["process_request"]):
            server = {"thread": "SCL301", "process": "SCL302"}.get(dispatch.spawns if dispatch else "", "")
            overrides = not server
        else:
            for base in bases:
                if base in THREADING_SERVERS or base in FORKING_SERVERS:
                    server = "SCL301" if base in THREADING_SERVERS else "SCL302"
                    break
                local = classes.get(base[len(module) + 1:]) if base.startswith(module + ".") else None
                if local is not None and (local.server or local.overrides_dispatch):
                    server = local.server
                    break
        classes[name] = ClassSummary(name, tuple(bases), server, overrides,
                                     {m: s for m, s in summaries.items() if s.has_effect()},
                                     _class_attributes(node, names))
    instances = {}
    for node in tree.body:  # `context = ContextType()`: its class attributes are read through it
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id in classes and classes[node.value.func.id].attributes):
            instances[node.targets[0].id] = f"{module}.{node.value.func.id}"
    return ModuleSummary(module, path, digest, functions, classes, dict(names.aliases), dict(imports),
                         instances=instances)


def _class_attributes(node: ast.ClassDef, names: _Module) -> dict:
    """Class-level `Worker = Session` where the value is a class of this module or an imported
    name, qualified (what `Settings.Worker(...)` makes, when that is a Thread subclass)."""
    out = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            dotted = _dotted(stmt.value)
            if dotted in names.classes:
                out[stmt.targets[0].id] = f"{names.module}.{dotted}"
            elif dotted and names.resolve(dotted):
                out[stmt.targets[0].id] = names.resolve(dotted)
    return out


# --- the per-process index --------------------------------------------------------------------

class Index:
    """Summaries by content digest (`known` from the cache file, `fresh` computed by this process),
    module files by (root, module), and file stats: one per process, shared by all files it analyses."""

    def __init__(self, known: dict | None = None, keep: bool = True):
        self.known = known if known is not None else {}
        self.keep = keep  # record computed summaries (as JSON) for the cache file
        self.fresh: dict = {}
        self.by_path: dict = {}  # path -> (ModuleSummary, (size, mtime_ns)) for this run
        self.files: dict = {}
        self.layouts: dict = {}
        self.folders: dict = {}  # per-folder facts for layout_for
        self.bound_modules: dict = {}  # (local, module) -> the ProjectView that binding adds

    def layout(self, path: str, extra_roots=()) -> Layout:
        key = (os.path.dirname(os.path.abspath(path)), os.path.basename(path).startswith("__init__."),
               os.path.basename(path), tuple(extra_roots))
        hit = self.layouts.get(key)
        if hit is None:
            hit = self.layouts[key] = layout_for(path, extra_roots, self.folders)
        return hit

    def find(self, dotted: str, roots: tuple) -> str | None:
        parts = dotted.split(".")
        for root, allowed in roots:
            if allowed is not None and parts[0] not in allowed:
                continue
            key = (root, dotted)  # memoised per root: files in many folders share the project's roots
            found = self.files.get(key, False)
            if found is False:
                found = None
                if all(p.isidentifier() for p in parts):
                    base = os.path.join(root, *parts)
                    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
                        if os.path.isfile(candidate):
                            found = candidate
                            break
                if len(self.files) < MAX_MODULES * 4:
                    self.files[key] = found
            if found:
                return found
        return None

    def summary(self, path: str, module: str) -> ModuleSummary | None:
        hit = self.by_path.get(path)
        if hit is not None:
            return hit[0]
        if len(self.by_path) >= MAX_MODULES:
            return None
        try:
            st = os.stat(path)
            data = read_regular(path, MAX_SUMMARY_BYTES)
        except (InputRefused, OSError):
            return None
        digest = hashlib.sha256(data).hexdigest()
        cache_key = f"{SUMMARY_FORMAT}:{digest}:{module}"
        cached = self.known.get(cache_key) or self.fresh.get(cache_key)
        if cached is not None:
            summary = ModuleSummary.from_json(cached)
            summary.path = path
        else:
            summary = summarise(path, module, os.path.basename(path).startswith("__init__."), data, digest)
            if self.keep:
                self.fresh[cache_key] = summary.to_json()
        self.by_path[path] = (summary, (st.st_size, st.st_mtime_ns))
        return summary


_index: Index | None = None


def index() -> Index:
    global _index
    if _index is None:
        _index = Index()
    return _index


def reset(known: dict | None = None, keep: bool = True) -> Index:
    """A fresh per-process index (a new run; `known` are cached summaries; `keep`: a cache file
    will store what is computed)."""
    global _index
    _index = Index(known, keep)
    return _index


# --- what one analysed file sees --------------------------------------------------------------

@dataclass
class ProjectView:
    operations: dict = field(default_factory=dict)  # dotted as written -> qualified operation
    managers: dict = field(default_factory=dict)  # dotted -> TempManager
    servers: dict = field(default_factory=dict)  # dotted (a base class as written) -> SCL301 | SCL302
    consumed: dict = field(default_factory=dict)  # path -> (digest, size, mtime_ns)
    views: dict = field(default_factory=dict)  # dotted -> position of the parameter its result views
    modules: dict = field(default_factory=dict)  # dotted (`util.socketserver`) -> the module it is

    def __bool__(self) -> bool:
        return bool(self.operations or self.managers or self.servers or self.views or self.modules)

    def merge(self, other: "ProjectView") -> None:
        """Add what `other` binds (and the summaries it consumed), as binding it here would."""
        for mine, theirs in ((self.operations, other.operations), (self.managers, other.managers),
                             (self.servers, other.servers), (self.consumed, other.consumed),
                             (self.views, other.views), (self.modules, other.modules)):
            mine.update(theirs)

    def key(self) -> str:
        """What the result cache adds to a file's key: the digests of the summaries it used."""
        return ",".join(f"{digest}" for _, (digest, _, _) in sorted(self.consumed.items()))

    def families(self) -> set:
        out = set()
        if self.managers or any(q in DURABILITY_OPERATIONS for q in self.operations.values()):
            out.add("durability")
        if self.servers or any(q in THREAD_STARTERS or q in FORKERS for q in self.operations.values()):
            out.add("connections")
        return out

    def gate_tails(self) -> dict:
        """last name component -> the tails the `ast` gate must judge a call or base of it as."""
        out: dict = {}
        for dotted, qual in self.operations.items():
            out.setdefault(dotted.rsplit(".", 1)[-1], set()).add(OPERATION_TAILS.get(qual, qual.rsplit(".", 1)[-1]))
        for dotted in self.managers:
            out.setdefault(dotted.rsplit(".", 1)[-1], set()).add("NamedTemporaryFile")
        for dotted, kind in self.servers.items():
            out.setdefault(dotted.rsplit(".", 1)[-1], set()).add("ThreadingMixIn" if kind == "SCL301" else "ForkingMixIn")
        return out


EMPTY = ProjectView()


def operation_of(summary: FunctionSummary) -> str | None:
    """What a call of this function is, at its call site, for the rules."""
    if summary.publishes:
        return summary.publishes
    if summary.spawns:
        return "threading.Thread" if summary.spawns == "thread" else "multiprocessing.Process"
    if summary.temp == "handle":
        return "tempfile.NamedTemporaryFile"
    if summary.temp == "fd_name":
        return "tempfile.mkstemp"
    if summary.syncs:
        return summary.syncs
    return None


def _imports_in(text: str) -> list:
    """(level, module, [(name, local)]) for `from` imports and (0, module, local) for plain ones,
    from the text (cheap: no parse; also sees imports inside functions and strings, which only
    makes the view looser)."""
    out = []
    for source, names, plain in _import_lines(text):
        if plain is not None:
            for item in plain.rstrip("\\ \t").split(","):
                words = item.split()
                if len(words) == 1:
                    out.append((0, words[0], None))
                elif len(words) == 3 and words[1] == "as":
                    out.append((0, words[0], words[2]))
            continue
        level = len(source) - len(source.lstrip("."))
        pairs = []
        for item in names.strip().strip("()").rstrip("\\ \t").replace("\n", " ").split(","):
            words = item.split()
            if len(words) == 1 and words[0] != "*":
                pairs.append((words[0], words[0]))
            elif len(words) == 3 and words[1] == "as":
                pairs.append((words[0], words[2]))
        out.append((level, source[level:], pairs))
    return out


class _Resolver:
    """Resolves one file's imports through the index, recording what it consumes."""

    def __init__(self, idx: Index, view: ProjectView, roots: tuple):
        self.idx, self.view, self.roots = idx, view, roots

    def module(self, dotted: str) -> ModuleSummary | None:
        path = self.idx.find(dotted, self.roots)
        if path is None:
            return None
        summary = self.idx.summary(path, dotted)
        if summary is not None:
            size, mtime = self.idx.by_path[path][1]
            self.view.consumed[path] = (summary.digest, size, mtime)
        return summary

    def name(self, module: str, name: str, depth: int = 0):
        """What `module.name` is: a FunctionSummary, a ClassSummary, an operation string, or None."""
        if depth > MAX_DEPTH:
            return None
        summary = self.module(module)
        if summary is None:
            return None
        found = summary.functions.get(name) or summary.classes.get(name) or summary.aliases.get(name)
        if found is not None:
            return found
        qual = summary.imports.get(name)
        if qual and "." in qual:
            owner, _, attr = qual.rpartition(".")
            return self.name(owner, attr, depth + 1)
        return None

    def rule_module(self, qual: str, depth: int = 0) -> str | None:
        """The module a re-exported name is (`mercurial.pycompat.socketserver` -> `socketserver`):
        an import or a `name = imported.attr` binding of the project module that owns it."""
        if qual in RULE_MODULES:
            return qual
        if depth > MAX_DEPTH or "." not in qual:
            return None
        owner, _, attr = qual.rpartition(".")
        summary = self.module(owner)
        if summary is None:
            return None
        imported = summary.imports.get(attr)
        if imported in RULE_MODULES:
            return imported
        bound = summary.bindings.get(attr)
        return self.rule_module(bound, depth + 1) if bound else None

    def server(self, cls: ClassSummary, module: str, depth: int = 0) -> str:
        if cls.server or cls.overrides_dispatch or depth > MAX_DEPTH:
            return cls.server
        for base in cls.bases:
            if base in THREADING_SERVERS:
                return "SCL301"
            if base in FORKING_SERVERS:
                return "SCL302"
            if "." not in base:
                continue
            owner, _, attr = base.rpartition(".")
            found = self.name(owner, attr, depth + 1)
            if isinstance(found, ClassSummary):
                kind = self.server(found, owner, depth + 1)
                if kind:
                    return kind
        return ""

    def spawner(self, cls: ClassSummary, depth: int = 0) -> str:
        """`threading.Thread` / `multiprocessing.Process` when the class is a subclass of one
        (its bases resolved across modules), else ""."""
        for base in cls.bases:
            if base in THREAD_CLASSES:
                return "threading.Thread"
            if base in PROCESS_CLASSES:
                return "multiprocessing.Process"
        if depth >= MAX_DEPTH:
            return ""
        for base in cls.bases:
            found = self.qualified(base, depth + 1)
            if isinstance(found, ClassSummary):
                made = self.spawner(found, depth + 1)
                if made:
                    return made
        return ""

    def qualified(self, qual: str, depth: int = 0):
        """What a qualified name of the project is (as `name`)."""
        if "." not in qual:
            return None
        owner, _, attr = qual.rpartition(".")
        return self.name(owner, attr, depth)

    def bind_attributes(self, dotted: str, cls: ClassSummary) -> None:
        """`dotted.Worker` for each class attribute bound to a Thread/Process subclass."""
        for attr, qual in cls.attributes.items():
            if qual in THREAD_CLASSES or qual in PROCESS_CLASSES:
                made = "threading.Thread" if qual in THREAD_CLASSES else "multiprocessing.Process"
            else:
                found = self.qualified(qual, 1)
                made = self.spawner(found, 1) if isinstance(found, ClassSummary) else ""
            if made:
                self.view.operations[f"{dotted}.{attr}"] = made

    def bind_instance(self, dotted: str, module: str, name: str) -> None:
        """A module-level instance (`context = ContextType()`) imported as `dotted`."""
        summary = self.module(module)
        qual = summary.instances.get(name) if summary is not None else None
        found = self.qualified(qual, 1) if qual else None
        if isinstance(found, ClassSummary):
            self.bind_attributes(dotted, found)

    def bind(self, dotted: str, found, module: str) -> None:
        view = self.view
        if isinstance(found, str):
            view.operations[dotted] = found
        elif isinstance(found, FunctionSummary):
            if found.views_param >= 0:
                view.views[dotted] = found.views_param
            if found.manager is not None:
                view.managers[dotted] = found.manager
            else:
                op = operation_of(found)
                if op:
                    view.operations[dotted] = op
        elif isinstance(found, ClassSummary):
            kind = self.server(found, module)
            if kind:
                view.servers[dotted] = kind
            made = self.spawner(found)
            if made:  # a call of a Thread/Process subclass starts one
                view.operations[dotted] = made
            if found.attributes:
                self.bind_attributes(dotted, found)

    def bind_module(self, local: str, module: str) -> None:
        """Every name of `module` as `local.name`. What binding adds depends only on the two names
        and the run's summaries, so it is worked out once per process and merged into each view
        that asks (`from django.db import models` binds ~300 names, in a thousand files)."""
        key = (local, module)
        made = self.idx.bound_modules.get(key)
        if made is None:
            view, self.view = self.view, ProjectView()
            try:
                self._bind_module(local, module)
                made = self.view
            finally:
                self.view = view
            if len(self.idx.bound_modules) < MAX_MODULES * 4:
                self.idx.bound_modules[key] = made
        self.view.merge(made)

    def _bind_module(self, local: str, module: str) -> None:
        summary = self.module(module)
        if summary is None:
            return
        for name in (*summary.functions, *summary.classes, *summary.aliases):
            self.bind(f"{local}.{name}", self.name(module, name), module)
        for name in summary.instances:
            self.bind_instance(f"{local}.{name}", module, name)
        for name, qual in summary.bindings.items():  # `util.socketserver`: a module re-exported
            found = self.rule_module(qual)
            if found:
                self.view.modules[f"{local}.{name}"] = found


def view_for(path: str, text: str, extra_roots=()) -> ProjectView:
    """The project names `text` (the file at `path`) can call or subclass, resolved and summarised."""
    if "import" not in text:
        return EMPTY
    idx = index()
    layout = idx.layout(path, extra_roots)
    if not layout.roots:
        return EMPTY
    view = ProjectView()
    resolver = _Resolver(idx, view, layout.roots)
    modules = 0
    for level, source, names in _imports_in(text):
        if modules >= MAX_IMPORTS_PER_FILE:
            break
        base = absolute(layout.module, layout.is_package, level, source)
        if base is None or base == layout.module:
            continue
        if names is None or isinstance(names, str):  # import a.b [as c]
            if idx.find(base, layout.roots) is None:
                continue
            modules += 1
            local = names or base
            resolver.bind_module(local, base)
            continue
        for name, local in names:
            if modules >= MAX_IMPORTS_PER_FILE:
                break
            submodule = f"{base}.{name}" if base else name
            if idx.find(submodule, layout.roots) is not None:  # from pkg import module
                modules += 1
                resolver.bind_module(local, submodule)
            elif base and idx.find(base, layout.roots) is not None:
                modules += 1
                found = resolver.name(base, name)
                if found is not None:
                    resolver.bind(local, found, base)
                else:
                    resolver.bind_instance(local, base, name)
    return view if view.consumed else EMPTY
