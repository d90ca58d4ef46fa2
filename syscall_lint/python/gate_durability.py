"""Which functions and classes the durability rules need, when a file is made in one function or
method and published in another (an `ast` pre-decision, as prescreen's for connections and SCL501).

The rules model each function that renames or syncs, with the helpers it calls that return a file
they opened (`f = self._tmp()`) and the context managers it enters (`with temp(p) as f:`); and each
class with a method that renames, over all the methods of the class and its local bases (a temp
file opened in `__init__` and renamed in `close()`). So libcst needs those scopes, not the file:

- every function that renames or syncs and can reach an open (itself, or through what it calls),
  with everything it can call, by name (bare names, `self.`/`cls.` methods), transitively;
- every class with a method that renames, whole with its local bases, when any of their methods
  can reach an open;
- the header of every class whose method is kept, and of its bases (`self.m()` resolves through them).

Looser than the rules everywhere: functions are known by name alone (every function or method of
that name), a function reaches an open when it mentions an opener's name, and every name a function
mentions counts as a call. Module-level code that renames or syncs and reaches an open makes the
answer None: its scope is the whole module, which the caller then hands to libcst whole.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from syscall_lint.python.prescreen import _tail
from syscall_lint.python.vocabulary import DELEGATORS, FILE_SYNC_TAILS, OPEN_TAILS, RENAME_TAILS

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCKS = (ast.stmt, ast.excepthandler, ast.match_case)
_DELEGATOR_TAILS = frozenset(name.rsplit(".", 1)[-1] for name in DELEGATORS)
_PUBLISH_TAILS = RENAME_TAILS | FILE_SYNC_TAILS


@dataclass(eq=False)
class _Def:
    """A function or class anywhere in the file, and where it sits: its top-level statement, the
    member of that statement's class body it is in (when the statement is a class), and the class
    whose method it is (None for module-level and nested functions)."""
    node: ast.AST
    top: int
    member: ast.AST | None
    owner: ast.ClassDef | None
    mentions: set = field(default_factory=set)
    callees: set = field(default_factory=set)
    renames: bool = False
    syncs: bool = False


@dataclass
class Needs:
    """What libcst must see: top-level statements whole (by index), members of top-level classes
    (the statement's index -> member nodes), and top-level classes whose header alone is needed."""
    whole: set = field(default_factory=set)
    members: dict = field(default_factory=dict)
    headers: set = field(default_factory=set)


def _definitions(tree: ast.Module) -> tuple:
    functions, classes = [], []
    for index, top in enumerate(tree.body):
        todo = [(top, None, None)]
        while todo:
            node, member, owner = todo.pop()
            kind = type(node)
            if kind in _FUNCTIONS:
                functions.append(_Def(node, index, member, owner))
                owner = None  # what is defined inside a function belongs to no class
            elif kind is ast.ClassDef:
                classes.append(_Def(node, index, member, owner))
                owner = node
            for child in ast.iter_child_nodes(node):
                if isinstance(child, _BLOCKS):
                    todo.append((child, child if node is top and kind is ast.ClassDef else member, owner))
    return functions, classes


def _look(unit, nodes, names, rename_candidate) -> None:
    """Fill in what `nodes` (a function's subtree, or module-level code) mention, call and do."""
    aliases, bound, roots = names.aliases, names.bound, names.roots
    mentions, callees = unit.mentions, unit.callees
    for sub in nodes:
        kind = type(sub)
        if kind is ast.Name:
            word = sub.id
            callees.add(word)
        elif kind is ast.Attribute:
            word = sub.attr
            if type(sub.value) is ast.Name and sub.value.id in ("self", "cls"):
                callees.add(word)
        elif kind is ast.Call:
            raw = _tail(sub.func)
            name = aliases.get(raw, raw)
            said = {name} | bound.get(raw, set())
            if name in _DELEGATOR_TAILS:  # to_thread(os.replace, a, b)
                said |= {aliases.get(t, t) for t in map(_tail, sub.args) if t}
            if said & FILE_SYNC_TAILS:
                unit.syncs = True
            if said & RENAME_TAILS and (said - {raw} or rename_candidate(sub, roots)):
                unit.renames = True
            continue
        else:
            continue
        mentions.add(word)
        mentions.add(aliases.get(word, word))
        mentions.update(bound.get(word, ()))


def _module_code(tree: ast.Module):
    """Every node outside function bodies (class bodies included: the rules' module scope)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if type(node) in _FUNCTIONS:
            todo.extend(node.decorator_list)
            continue
        todo.extend(ast.iter_child_nodes(node))


def durability_needs(tree: ast.Module, names, rename_candidate) -> Needs | None:
    """The parts of the file the durability rules can report from or need to see (see the module
    docstring), or None when module-level code needs the whole module."""
    from syscall_lint.python.prescreen import walk_nodes

    functions, classes = _definitions(tree)
    for unit in functions:
        _look(unit, walk_nodes(unit.node), names, rename_candidate)
    module = _Def(tree, -1, None, None)
    _look(module, _module_code(tree), names, rename_candidate)

    by_name: dict = {}
    for unit in functions:
        by_name.setdefault(unit.node.name, []).append(unit)
    # which names can reach an open: their function mentions an opener, or calls one that can
    opening = {u.node.name for u in functions if u.mentions & OPEN_TAILS}
    while True:
        grown = {u.node.name for u in functions if u.node.name not in opening and u.callees & opening}
        if not grown:
            break
        opening |= grown

    def opens(unit) -> bool:
        return bool(unit.mentions & OPEN_TAILS or unit.callees & opening)

    if (module.renames or module.syncs) and opens(module):
        return None

    classes_by_name: dict = {}
    for cls in classes:
        classes_by_name.setdefault(cls.node.name, []).append(cls)
    methods: dict = {}
    for unit in functions:
        if unit.owner is not None:
            methods.setdefault(id(unit.owner), []).append(unit)

    def mro(cls) -> list:
        """The class and its local bases, transitively, each base name standing for every class of
        that name (the rules take the last one defined; either may be it)."""
        out, seen, todo = [], set(), [cls]
        while todo:
            current = todo.pop()
            if id(current.node) in seen:
                continue
            seen.add(id(current.node))
            out.append(current)
            for base in current.node.bases:
                todo.extend(classes_by_name.get(_tail(base), ()))
        return out

    whole_classes: dict = {}  # id -> _Def
    for cls in classes:
        if any(m.renames for m in methods.get(id(cls.node), ())):
            chain = mro(cls)
            if any(opens(m) for c in chain for m in methods.get(id(c.node), ())):
                whole_classes.update((id(c.node), c) for c in chain)

    needed: dict = {}  # id -> _Def
    todo = [u for u in functions if (u.renames or u.syncs) and opens(u)]
    todo += [m for c in whole_classes.values() for m in methods.get(id(c.node), ())]
    while todo:
        unit = todo.pop()
        if id(unit.node) in needed:
            continue
        needed[id(unit.node)] = unit
        for name in unit.callees:
            todo.extend(by_name.get(name, ()))

    header_classes: dict = {}
    owners = {id(c.node): c for c in classes}
    for unit in needed.values():
        if unit.owner is not None:
            header_classes.update((id(c.node), c) for c in mro(owners[id(unit.owner)]))

    needs = Needs()
    for unit in [*needed.values(), *whole_classes.values()]:
        _keep(needs, unit)
    for cls in header_classes.values():
        if cls.member is None and tree.body[cls.top] is cls.node:
            needs.headers.add(cls.top)
        else:
            _keep(needs, cls)
    return needs


def _keep(needs: Needs, unit: _Def) -> None:
    """A function or class is kept with the member of a top-level class it is in, else with its
    whole top-level statement."""
    if unit.member is not None:
        needs.members.setdefault(unit.top, set()).add(unit.member)
    else:
        needs.whole.add(unit.top)
