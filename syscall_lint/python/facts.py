"""One pass over a libcst module that records what the rules ask about.

Rules never walk the tree themselves for the common questions (which calls, in which function, in
which loop, assigned to what); they read these facts. Names are resolved through the module's own
imports (a small alias resolver), which is what the rules need and costs a fraction of libcst's
ScopeProvider/QualifiedNameProvider.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst
from libcst.metadata import PositionProvider

from syscall_lint.python.qualnames import canonical

BUILTINS = frozenset(dir(builtins))


def dotted_name(node: cst.BaseExpression) -> Optional[str]:
    """`os.path.join` for Name/Attribute chains, None for anything else."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


@dataclass(eq=False)
class Loop:
    node: cst.CSTNode
    kind: str  # for | while | comprehension
    parent: Optional["Loop"]
    calls: list = field(default_factory=list)

    def chain(self):
        loop = self
        while loop is not None:
            yield loop
            loop = loop.parent


@dataclass(eq=False)
class Scope:
    node: cst.CSTNode
    name: str
    cls: Optional["ClassInfo"] = None
    params: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    loops: list = field(default_factory=list)
    assigns: list = field(default_factory=list)  # (order, [target names], value node)
    returns: list = field(default_factory=list)  # the values of its `return x` statements, in order


@dataclass(eq=False)
class CallSite:
    node: cst.Call
    dotted: Optional[str]
    tail: str
    receiver: Optional[cst.BaseExpression]
    scope: Scope
    loop: Optional[Loop]
    order: int
    targets: tuple = ()
    qual: Optional[str] = None
    with_node: Optional[cst.With] = None  # the `with` statement this call opens, if any

    @property
    def positional(self):
        return [a for a in self.node.args if a.keyword is None and a.star == ""]

    def keyword(self, name: str):
        for arg in self.node.args:
            if arg.keyword is not None and arg.keyword.value == name:
                return arg.value
        return None

    def arg(self, index: int, name: str | None = None):
        pos = self.positional
        if index < len(pos):
            return pos[index].value
        return self.keyword(name) if name else None


@dataclass(eq=False)
class ClassInfo:
    node: cst.ClassDef
    name: str
    bases: list  # dotted names (unresolved)
    quals: list = field(default_factory=list)


class Facts:
    def __init__(self, module: cst.Module, positions, line_map=None, options=None, project=None):
        from syscall_lint.python.project import EMPTY

        self.module = module
        # what the file's project imports offer (project.ProjectView): operations, temp-file
        # context managers and server classes, by the dotted name the file writes
        self.project = project if project is not None else EMPTY
        self.imported_managers: dict = {}  # dotted -> summaries.TempManager, for `with name(...) as f`
        self.imported_servers: dict = {}  # a base's qualified name (as in ClassInfo.quals) -> SCL301/SCL302
        self.options = options  # code -> {option: value}; None means the catalog's defaults
        self.positions = positions
        self.line_map = line_map  # snippet line -> file line, when libcst saw only parts of the file
        self.imports: dict[str, str] = {}
        self.calls: list[CallSite] = []
        self.scopes: list[Scope] = []
        self.classes: list[ClassInfo] = []
        self.aliases: dict[str, str] = {}  # module-level names bound to imported names
        self.bound_names: set = set()  # def/class names, loop, except and other binding targets
        self._code_cache: dict[int, str] = {}
        self._subtrees: dict[int, set] = {}  # id(node) -> the ids of every node below it

    def within(self, node: cst.CSTNode, outer: cst.CSTNode) -> bool:
        """Is `node` `outer` itself or inside it? Asked of outer's subtree (its node ids gathered
        once), not of positions: those are a codegen pass over the whole module, which only a
        finding to place needs (a 10,000-line test file took a second for one such question)."""
        ids = self._subtrees.get(id(outer))
        if ids is None:
            ids = self._subtrees[id(outer)] = _subtree_ids(outer)
        return id(node) in ids

    def code(self, node: cst.CSTNode) -> str:
        key = id(node)
        text = self._code_cache.get(key)
        if text is None:
            text = self.module.code_for_node(node).strip()
            self._code_cache[key] = text
        return text

    def key(self, node: cst.BaseExpression) -> str:
        """A name for an expression that is cheap for names and attribute chains."""
        return dotted_name(node) or self.code(node)

    def option(self, code: str, name: str):
        """A rule option in effect (the settings', else the catalog's default)."""
        if self.options is not None and name in self.options.get(code, {}):
            return self.options[code][name]
        from syscall_lint import catalog

        return catalog.load().rules[code].option_defaults()[name]

    def position(self, node: cst.CSTNode):
        rng = self.positions[node]
        start, end = rng.start.line, rng.end.line
        if self.line_map is not None:
            start, end = self.line_map[start], self.line_map[end]
        # libcst columns are 0-based; findings are 1-based with an exclusive end column + 1.
        return start, rng.start.column + 1, end, rng.end.column + 1

    def resolve(self, dotted: Optional[str]) -> Optional[str]:
        if not dotted:
            return None
        head, _, rest = dotted.partition(".")
        base = self.imports.get(head) or self.aliases.get(head)
        if base is not None:
            return canonical(f"{base}.{rest}" if rest else base)
        if head in BUILTINS and head not in self._local_names:
            return f"builtins.{dotted}"
        return None

    def finish(self):
        # every name the file binds (the gate's shadowing test, prescreen.ModuleNames, counts the same)
        self._local_names = {
            t for scope in self.scopes for _, targets, _ in scope.assigns for t in targets
        } | {p for scope in self.scopes for p in scope.params} | self.bound_names
        self.aliases = self._module_aliases()
        for call in self.calls:
            call.qual = self.resolve(call.dotted)
        for cls in self.classes:
            cls.quals = [self.resolve(b) or b for b in cls.bases]
        self._apply_summaries()
        if self.project:
            self._apply_project()
        self._apply_spawner_classes()

    def _apply_project(self) -> None:
        """Calls of imported project functions take the effect their summary gives them at the call
        site (a wrapper of os.replace is that rename, a spawn helper starts a thread); `with
        helper(...) as f` of an imported temp-file context manager is recorded for the rules; an
        imported base class that serves each connection in a thread/process is noted."""
        from syscall_lint.python.vocabulary import FILE_SYNCS, FORKERS, RENAMES, THREAD_STARTERS, TEMP_MAKERS

        known = RENAMES | FILE_SYNCS | FORKERS | THREAD_STARTERS | TEMP_MAKERS
        view = self.project
        for call in self.calls:
            if call.dotted is None or call.qual in known:
                continue
            operation = view.operations.get(call.dotted)
            if operation is not None:
                call.qual = operation
            elif call.with_node is not None and call.dotted in view.managers:
                self.imported_managers[call.dotted] = view.managers[call.dotted]
        for cls in self.classes:
            for base, qual in zip(cls.bases, cls.quals):
                if base in view.servers:
                    self.imported_servers[qual] = view.servers[base]

    def _apply_spawner_classes(self) -> None:
        """A call of a `threading.Thread` / `multiprocessing.Process` subclass makes that thread or
        process: a class of this module (also through local bases, or a base the project summaries
        say is one), a class attribute bound to one (`Worker = Session`), read through the class or
        a module-level instance of it (`settings = Settings()`, then `settings.Worker(conn)`)."""
        from syscall_lint.python.vocabulary import FORKERS, PROCESS_CLASSES, THREAD_CLASSES, THREAD_STARTERS

        spawns = THREAD_STARTERS | FORKERS
        operations = self.project.operations

        def made_by(dotted, qual):
            if qual in THREAD_CLASSES:
                return "threading.Thread"
            if qual in PROCESS_CLASSES:
                return "multiprocessing.Process"
            found = spawners.get(dotted) or operations.get(dotted)
            return found if found in spawns else None

        spawners: dict = {}  # dotted as written -> threading.Thread | multiprocessing.Process
        for _ in range(8):  # local bases: a subclass of a subclass (bounded, as the summaries are)
            before = len(spawners)
            for cls in self.classes:
                if cls.name not in spawners:
                    made = next(filter(None, (made_by(b, q) for b, q in zip(cls.bases, cls.quals))), None)
                    if made:
                        spawners[cls.name] = made
            if len(spawners) == before:
                break
        attributes: dict = {}  # class name -> {attribute: operation}
        for cls in self.classes:
            for stmt in cls.node.body.body if isinstance(cls.node.body, cst.IndentedBlock) else ():
                for small in getattr(stmt, "body", ()) if isinstance(stmt, cst.SimpleStatementLine) else ():
                    if (isinstance(small, cst.Assign) and len(small.targets) == 1
                            and isinstance(small.targets[0].target, cst.Name)):
                        dotted = dotted_name(small.value)
                        made = made_by(dotted, self.resolve(dotted)) if dotted else None
                        if made:
                            attributes.setdefault(cls.name, {})[small.targets[0].target.value] = made
        for name, attrs in attributes.items():
            spawners.update({f"{name}.{attr}": made for attr, made in attrs.items()})
        if attributes:
            for _, targets, value in self.scopes[0].assigns:  # module-level instances
                if len(targets) == 1 and isinstance(value, cst.Call) and dotted_name(value.func) in attributes:
                    spawners.update({f"{targets[0]}.{attr}": made
                                     for attr, made in attributes[dotted_name(value.func)].items()})
        if not spawners:
            return
        for call in self.calls:
            if call.dotted in spawners and call.qual not in spawns and call.dotted not in self.imports:
                call.qual = spawners[call.dotted]

    def _apply_summaries(self) -> None:
        """A call of a module-level function that publishes its two parameters
        (`def move_over(src, dst): os.rename(src, dst)`) is that rename at the call site; one that
        syncs (`def _flush_to_disk(f): ...; os.fsync(f.fileno())`) is a sync there."""
        from syscall_lint.python.vocabulary import FILE_SYNCS, RENAMES

        top = {id(stmt) for stmt in _module_level_functions(self.module)}
        effects: dict = {}
        for scope in self.scopes:
            if id(scope.node) not in top or scope.name in self.imports or scope.name in effects or any(
                    (dotted_name(d.decorator) or "").endswith("contextmanager") for d in scope.node.decorators):
                continue  # (a context manager's effects happen at its `with`, not at the call)
            for call in scope.calls:
                if call.qual in RENAMES and len(call.positional) >= 2 and scope.params[:2] == [
                        self.key(call.arg(0)), self.key(call.arg(1))]:
                    effects[scope.name] = call.qual
                elif call.qual in FILE_SYNCS and scope.name not in effects:
                    effects[scope.name] = call.qual
        if not effects:
            return
        for call in self.calls:
            if call.qual is None and call.dotted in effects and call.scope.name != call.dotted:
                call.qual = effects[call.dotted]

    def _module_aliases(self) -> dict:
        """Module-level names bound to an imported name (`Mixin = socketserver.ForkingMixIn`, also
        inside try/if): such a name stands for what it is bound to. Of several bindings, the first
        that resolves wins (a conditional binding is judged by what it can be)."""
        from syscall_lint.python.vocabulary import FILE_SYNCS, RENAMES, aliasable

        aliases: dict = {}
        self.aliases = aliases  # a binding resolves through the ones before it (`so = socketserver`, `M = so.X`)
        for _, targets, value in self.scopes[0].assigns:
            if len(targets) != 1 or "." in targets[0] or targets[0] in self.imports or targets[0] in aliases:
                continue
            if isinstance(value, (cst.Name, cst.Attribute)):
                qual = self.resolve(dotted_name(value)) or self.project.modules.get(dotted_name(value))
                if qual and not qual.startswith("builtins.") and aliasable(qual):
                    aliases[targets[0]] = qual
            elif isinstance(value, cst.Call) and value.args and value.args[0].keyword is None:
                # a wrapped or partial file operation: `replace = retry(...)(os.replace)`
                qual = self.resolve(dotted_name(value.args[0].value))
                if qual in RENAMES or qual in FILE_SYNCS:
                    aliases[targets[0]] = qual
        return aliases


def _module_level_functions(module: cst.Module) -> list:
    """Functions defined at module level, also inside `if`/`try`/`with` blocks (a wrapper defined
    one way per platform: `if WINDOWS: def atomic_rename(...)` ... `else: def atomic_rename(...)`)."""
    found, todo = [], list(module.body)
    while todo:
        stmt = todo.pop()
        if isinstance(stmt, cst.FunctionDef):
            found.append(stmt)
        elif isinstance(stmt, (cst.If, cst.Try, cst.With, cst.Else, cst.ExceptHandler, cst.Finally)):
            for block in (getattr(stmt, "body", None), getattr(stmt, "orelse", None),
                          getattr(stmt, "finalbody", None), *getattr(stmt, "handlers", ())):
                if isinstance(block, (cst.If, cst.Else, cst.ExceptHandler, cst.Finally)):
                    todo.append(block)
                elif isinstance(block, cst.IndentedBlock):
                    todo.extend(block.body)
    return found


class _Collector(cst.CSTVisitor):
    def __init__(self, facts: Facts):
        super().__init__()
        self.facts = facts
        module_scope = Scope(facts.module, "<module>")
        facts.scopes.append(module_scope)
        self.scopes = [module_scope]
        self.loops: list[Optional[Loop]] = [None]
        self.classes: list[Optional[ClassInfo]] = [None]
        self.order = 0
        self.pending_targets: dict[int, tuple] = {}
        self.pending_with: dict[int, cst.With] = {}

    # imports ---------------------------------------------------------------
    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted_name(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.facts.imports[alias.asname.name.value] = full
            else:
                head = full.split(".")[0]
                self.facts.imports[head] = head

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        base = dotted_name(node.module)
        for alias in node.names:
            name = dotted_name(alias.name)
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.facts.imports[local] = f"{base}.{name}"

    # names bound other than by assignment (shadowing a builtin: `def open`, `for open in ...`)
    def _bind_target(self, target) -> None:
        if isinstance(target, cst.Name):
            self.facts.bound_names.add(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._bind_target(element.value)
        elif isinstance(target, cst.StarredElement):
            self._bind_target(target.value)

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._bind_target(node.name.name)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind_target(node.target)

    # scopes ----------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.facts.bound_names.add(node.name.value)
        info = ClassInfo(node, node.name.value, [dotted_name(b.value) for b in node.bases if dotted_name(b.value)])
        self.facts.classes.append(info)
        self.classes.append(info)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.facts.bound_names.add(node.name.value)
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params)]
        scope = Scope(node, node.name.value, self.classes[-1], params)
        self.facts.scopes.append(scope)
        self.scopes.append(scope)
        self.loops.append(None)
        self.classes.append(None)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scopes.pop()
        self.loops.pop()
        self.classes.pop()

    # loops -----------------------------------------------------------------
    def _push_loop(self, node, kind):
        loop = Loop(node, kind, self.loops[-1])
        self.scopes[-1].loops.append(loop)
        self.loops.append(loop)

    def visit_For(self, node):
        self._bind_target(node.target)
        self._push_loop(node, "for")

    def leave_For(self, node):
        self.loops.pop()

    def visit_While(self, node):
        self._push_loop(node, "while")

    def leave_While(self, node):
        self.loops.pop()

    def visit_CompFor(self, node):
        self._bind_target(node.target)
        self._push_loop(node, "comprehension")

    def leave_CompFor(self, node):
        self.loops.pop()

    # assignments -----------------------------------------------------------
    def _record_assign(self, targets, value):
        names = []
        for target in targets:
            if isinstance(target, (cst.Tuple, cst.List)):
                names.extend(self.facts.key(e.value) for e in target.elements)
            else:
                names.append(self.facts.key(target))
        self.scopes[-1].assigns.append((self.order, names, value))
        if isinstance(value, cst.Await):  # sent = await sock.send(data)
            value = value.expression
        if isinstance(value, cst.Call):
            self.pending_targets[id(value)] = tuple(names)
        elif isinstance(value, cst.Tuple):
            # a, b = f(), g()
            for name, element in zip(names, value.elements):
                if isinstance(element.value, cst.Call):
                    self.pending_targets[id(element.value)] = (name,)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._record_assign([t.target for t in node.targets], node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._record_assign([node.target], node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._record_assign([node.target], node.value)

    def visit_With(self, node: cst.With) -> None:
        for item in node.items:
            if isinstance(item.item, cst.Call):
                self.pending_with[id(item.item)] = node

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._record_assign([node.asname.name], node.item)

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self.scopes[-1].returns.append(node.value)

    # calls -----------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        dotted = dotted_name(func)
        if isinstance(func, cst.Attribute):
            tail, receiver = func.attr.value, func.value
        elif isinstance(func, cst.Name):
            tail, receiver = func.value, None
        else:
            tail, receiver = "", None
        self.order += 1
        call = CallSite(node, dotted, tail, receiver, self.scopes[-1], self.loops[-1], self.order,
                        self.pending_targets.pop(id(node), ()), with_node=self.pending_with.pop(id(node), None))
        self.facts.calls.append(call)
        self.scopes[-1].calls.append(call)
        if self.loops[-1] is not None:
            self.loops[-1].calls.append(call)


class _SubtreeIds(cst.CSTVisitor):
    def __init__(self):
        self.ids = set()

    def on_visit(self, node) -> bool:
        self.ids.add(id(node))
        return True


def _subtree_ids(node: cst.CSTNode) -> set:
    collector = _SubtreeIds()
    node.visit(collector)
    return collector.ids


class LazyPositions:
    """libcst's positions, computed on first use: a codegen pass over the whole module that costs
    more than the collection itself, and most files that reach libcst have no finding to place."""

    def __init__(self, module: cst.Module):
        self._module = module
        self._map = None

    def resolve(self):
        if self._map is None:
            wrapper = cst.MetadataWrapper(self._module, unsafe_skip_copy=True)  # same nodes, no copy
            self._map = wrapper.resolve(PositionProvider)
        return self._map

    def __getitem__(self, node):
        return (self._map or self.resolve())[node]


def collect(module: cst.Module, line_map=None, options=None, project=None) -> Facts:
    facts = Facts(module, LazyPositions(module), line_map, options, project)
    module.visit(_Collector(facts))
    facts.finish()
    return facts
