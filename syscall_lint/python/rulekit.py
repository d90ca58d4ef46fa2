"""What a Python rule is, how rules register, what a rule returns, and small shared helpers.

A rule (or a family of rules sharing one analysis) is one module in `syscall_lint/python/rules/`
with one `Rule` subclass: its codes, its vocabulary (the words its calls need, for the text screen)
and its `check(facts)`. Defining the class registers it; the analyser, the gates and `--select` all
read the registry, so adding a rule is that module plus its `rules/<code>.toml`.

This module and the rules' contracts import without libcst: the gates decide most files without it,
and importing it costs more than screening a small project. Rules import libcst inside `check`.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

PATH_WRAPPERS = frozenset({"Path", "pathlib.Path", "PurePath", "pathlib.PurePath", "str", "os.fspath", "os.fsencode"})


class Rule:
    """One rule family. Subclasses set `name`, `codes`, `words` and write `check`.

    `words`: substrings one of which a file must contain for the rule to have anything to report
    (the text screen; `screen` may be overridden for a sharper test). `gated`: the `ast` gate in
    prescreen.py has a structural test for this family and may narrow it to some functions; a rule
    without one is parsed over the whole file whenever its screen passes (exact, never lossy)."""

    name: ClassVar[str]
    codes: ClassVar[frozenset]
    words: ClassVar[tuple] = ()
    gated: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "codes" in cls.__dict__:
            _REGISTERED[cls.name] = cls

    @classmethod
    def screen(cls, text: str) -> bool:
        return any(word in text for word in cls.words)

    def check(self, facts):  # pragma: no cover - every rule defines it
        raise NotImplementedError


_REGISTERED: dict = {}
_loaded = False
_lock = threading.Lock()


def registry() -> dict:
    """name -> Rule subclass, for every module in the `rules` package (imported once)."""
    global _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                from syscall_lint.python import rules

                for info in sorted(pkgutil.iter_modules(rules.__path__), key=lambda m: m.name):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{rules.__name__}.{info.name}")
                _loaded = True
    return _REGISTERED


def reload_registry() -> dict:
    """Import the rules package again (a test that adds a folder to `rules.__path__`)."""
    global _loaded
    _loaded = False
    return registry()


def module_codes() -> dict:
    """family name -> the codes it can report."""
    return {name: set(rule.codes) for name, rule in registry().items()}



class _LazyLibcst:
    """libcst, imported on first use and each attribute cached on the instance: rule contracts load
    without it (the import costs ~0.35 s, more than screening a small project)."""

    def __getattr__(self, name: str):
        import libcst

        value = getattr(libcst, name)
        setattr(self, name, value)
        return value


cst = _LazyLibcst()

@dataclass
class Hit:
    """One finding before it meets the catalog: `fields` fill the message template named by
    `variant` (`[message] python-<variant>` in rules/<code>.toml; "" is plain `python`)."""
    code: str
    node: Any  # the libcst node the finding points at
    fields: dict
    evidence: dict = field(default_factory=dict)
    variant: str = ""
    autofix: Optional[dict] = None  # the edit plan for `check --fix`; never shown to users


def ident(facts, node) -> Optional[str]:
    """A comparable name for a path or handle expression: Path(x), str(x) and x are the same file."""
    import libcst as cst

    from syscall_lint.python.facts import dotted_name

    if node is None:
        return None
    while isinstance(node, cst.Call) and len(node.args) == 1 and node.args[0].keyword is None:
        if dotted_name(node.func) in PATH_WRAPPERS:
            node = node.args[0].value
        else:
            break
    return facts.key(node)


def string_value(node) -> Optional[str]:
    import libcst as cst

    if isinstance(node, cst.SimpleString):
        try:
            return node.evaluated_value if isinstance(node.evaluated_value, str) else None
        except Exception:
            return None
    return None


def call_label(call) -> str:
    return call.dotted or call.tail or "call"



def delegated(facts, call):
    """The call a delegating call makes: `asyncio.to_thread(os.replace, a, b)`,
    `loop.run_in_executor(None, os.fsync, fd)` and `pool.submit(os.rename, a, b)` run
    `os.replace(a, b)` and so on. A view of the same call site (its line, scope and order) with the
    callable's names and only the arguments after it; None when `call` delegates nothing."""
    from syscall_lint.python.facts import dotted_name
    from syscall_lint.python.vocabulary import DELEGATORS

    index = DELEGATORS.get(call.qual or "")
    if index is None and call.receiver is not None and call.qual is None:
        index = DELEGATORS.get(call.tail)
    pos = call.positional
    if index is None or len(pos) <= index:
        return None
    func = pos[index].value
    dotted = dotted_name(func)
    if dotted is None:
        return None
    receiver = func.value if isinstance(func, cst.Attribute) else None
    view = _delegated_class()(call.node, dotted, dotted.rsplit(".", 1)[-1], receiver, call.scope, call.loop,
                              call.order, call.targets, facts.resolve(dotted), call.with_node)
    view.delegated_args = tuple(pos[index + 1:])
    return view


_DELEGATED = None


def _delegated_class():
    global _DELEGATED
    if _DELEGATED is None:
        from syscall_lint.python.facts import CallSite

        class DelegatedCallSite(CallSite):
            """A call site seen as the call it delegates: only the arguments after the callable."""
            delegated_args: tuple = ()

            @property
            def positional(self):
                return list(self.delegated_args)

            def keyword(self, name: str):
                return None

        _DELEGATED = DelegatedCallSite
    return _DELEGATED
