"""What one module of the project offers to the modules that import it, as the rules need it.

A summary is computed from `ast` alone (never libcst), once per module content, and cached by the
module's content hash (project.py). Summaries are records of facts about names a module *defines*
or *re-exports*; they never hold findings (findings are only reported for the files asked for).

Interface (what the rules and facts.py read, through `facts.project`, a `project.ProjectView`):

- `FunctionSummary` — a module-level function (or a method, under `ClassSummary.methods`):
  `publishes`: the rename it performs on its first two parameters (`os.replace` for
  `def atomic_rename(src, dst): os.rename(src, dst)`), `syncs`: the sync it performs
  (`os.fsync`/`os.fdatasync`, of a parameter or of anything), `writes_params`: positions of
  parameters it writes to (`f.write(...)`, `json.dump(x, f)`; recorded for functions that also
  have another effect: the rules already take a handle passed to any helper as written), `temp`: what it returns —
  `"handle"` (a writable temp file object), `"name"` (a temp path), `"fd_name"` (`(fd, name)` as
  mkstemp) or "" —, `manager`: for a `@contextmanager` that yields a temp file, a `TempManager`,
  `spawns`: `"thread"` / `"process"` when calling it starts one (directly or through a function of
  the same module), `accepts`: it calls `accept()`, `views_param`: the position of the parameter
  whose memory its return value views without copying (`return np.ndarray(..., buffer=shm.buf)`,
  `return shm.buf[0:8]`, also through a local or another such function of the module), or -1.
- `TempManager` — `buffered` (the yielded file object buffers writes) and `syncs_on_exit` (it is
  flushed and fsynced after the `yield`, i.e. when the caller's `with` block ends).
- `ClassSummary` — `bases`: the base classes as qualified names (`socketserver.ForkingMixIn`, or
  `pkg.mod.Class` for a project class), `server`: `"SCL301"`/`"SCL302"` when the class (through
  its bases, resolved across modules, or an own `process_request` that spawns) serves each
  connection in a new thread/process, `overrides_dispatch`: it defines `process_request` without
  spawning (what a base would spawn no longer happens), `methods`: the summaries of its methods that have an effect,
  `attributes`: class-level names bound to a class (`Thread = Thread`, qualified): how a Thread
  subclass is reached as an attribute of a settings class or of its module-level instance.
- `ModuleSummary` — `module` (dotted name), `digest` (sha256 of the module's bytes; the result
  cache keys a file on the digests of the summaries it consumed), `functions`, `classes`,
  `aliases` (module-level names bound to a known operation: `replace = retry(...)(os.replace)` →
  `os.replace`, `partial(os.rename, ...)` → `os.rename`), `imports` (local name → qualified name,
  how re-exports such as a package `__init__` that does `from .threaded import start` resolve),
  `bindings` (module-level `name = imported.attr` lines, qualified: how a compat module re-exports
  a module, `socketserver = pycompat.socketserver`), `instances` (module-level `name = Class()` of a class
  with `attributes`, the class qualified), `error` (why the module could not be summarised, or "").

All records are plain dataclasses that round-trip through JSON (`to_json` / `from_json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SUMMARY_FORMAT = 3  # bumped when the records change shape (the summary cache is keyed on it)


@dataclass(frozen=True)
class TempManager:
    """A `@contextmanager` that yields a temp file it made for writing."""
    buffered: bool = True
    syncs_on_exit: bool = False


@dataclass(frozen=True)
class FunctionSummary:
    name: str
    params: tuple = ()
    publishes: str = ""  # "os.replace" etc. when it renames its first two parameters
    syncs: str = ""  # "os.fsync" / "os.fdatasync" when it syncs
    writes_params: tuple = ()  # positions of parameters it writes to
    temp: str = ""  # "handle" | "name" | "fd_name" | ""
    manager: TempManager | None = None
    spawns: str = ""  # "thread" | "process" | ""
    accepts: bool = False
    views_param: int = -1  # its return value views the memory of this parameter (a numpy header over shm.buf)

    def has_effect(self) -> bool:
        return bool(self.publishes or self.syncs or self.writes_params or self.temp or self.manager
                    or self.spawns or self.accepts or self.views_param >= 0)


@dataclass(frozen=True)
class ClassSummary:
    name: str
    bases: tuple = ()
    server: str = ""  # "SCL301" | "SCL302" | ""
    overrides_dispatch: bool = False  # defines process_request without spawning: bases' spawn is replaced
    methods: dict = field(default_factory=dict)  # name -> FunctionSummary (only those with an effect)
    attributes: dict = field(default_factory=dict)  # class-level `Worker = Session` -> qualified name


@dataclass
class ModuleSummary:
    module: str
    path: str
    digest: str
    functions: dict = field(default_factory=dict)  # name -> FunctionSummary (only those with an effect)
    classes: dict = field(default_factory=dict)  # name -> ClassSummary
    aliases: dict = field(default_factory=dict)  # name -> qualified operation
    imports: dict = field(default_factory=dict)  # local name -> qualified name (re-exports)
    error: str = ""
    bindings: dict = field(default_factory=dict)  # `socketserver = pycompat.socketserver` -> qualified name
    instances: dict = field(default_factory=dict)  # module-level `context = ContextType()` -> the class, qualified

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ModuleSummary":
        def function(d):
            d = dict(d)
            d["params"] = tuple(d.get("params", ()))
            d["writes_params"] = tuple(d.get("writes_params", ()))
            if d.get("manager") is not None:
                d["manager"] = TempManager(**d["manager"])
            return FunctionSummary(**d)

        classes = {name: ClassSummary(c["name"], tuple(c["bases"]), c["server"], c.get("overrides_dispatch", False),
                                      {m: function(f) for m, f in c["methods"].items()}, dict(c.get("attributes", {})))
                   for name, c in data["classes"].items()}
        return cls(data["module"], data["path"], data["digest"],
                   {name: function(f) for name, f in data["functions"].items()}, classes,
                   dict(data["aliases"]), dict(data["imports"]), data.get("error", ""),
                   dict(data.get("bindings", {})), dict(data.get("instances", {})))
