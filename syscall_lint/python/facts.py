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
    def __init__(self, module: cst.Module, positions, line_map=None, options=None):
        self.module = module
        self.options = options  # code -> {option: value}; None means the catalog's defaults
        self.positions = positions
        self.line_map = line_map  # snippet line -> file line, when libcst saw only parts of the file
        self.imports: dict[str, str] = {}
        self.calls: list[CallSite] = []
        self.scopes: list[Scope] = []
        self.classes: list[ClassInfo] = []
        self._code_cache: dict[int, str] = {}

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
        if head in self.imports:
            base = self.imports[head]
            return f"{base}.{rest}" if rest else base
        if head in BUILTINS and head not in self._local_names:
            return f"builtins.{dotted}"
        return None

    def finish(self):
        self._local_names = {
            t for scope in self.scopes for _, targets, _ in scope.assigns for t in targets
        } | {p for scope in self.scopes for p in scope.params}
        for call in self.calls:
            call.qual = self.resolve(call.dotted)
        for cls in self.classes:
            cls.quals = [self.resolve(b) or b for b in cls.bases]


class _Collector(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

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

    # scopes ----------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        info = ClassInfo(node, node.name.value, [dotted_name(b.value) for b in node.bases if dotted_name(b.value)])
        self.facts.classes.append(info)
        self.classes.append(info)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
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
        self._push_loop(node, "for")

    def leave_For(self, node):
        self.loops.pop()

    def visit_While(self, node):
        self._push_loop(node, "while")

    def leave_While(self, node):
        self.loops.pop()

    def visit_CompFor(self, node):
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


def collect(module: cst.Module, line_map=None, options=None) -> Facts:
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    facts = Facts(module, positions, line_map, options)
    wrapper.visit(_Collector(facts))
    facts.finish()
    return facts
