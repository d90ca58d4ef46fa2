"""What a Python rule returns, and small helpers the rules share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from syscall_lint.python.facts import CallSite, Facts, dotted_name

PATH_WRAPPERS = frozenset({"Path", "pathlib.Path", "PurePath", "pathlib.PurePath", "str", "os.fspath", "os.fsencode"})


@dataclass
class Hit:
    """One finding before it meets the catalog: `fields` fill the message template named by
    `variant` (`[message] python-<variant>` in rules/<code>.toml; "" is plain `python`)."""
    code: str
    node: cst.CSTNode
    fields: dict
    evidence: dict = field(default_factory=dict)
    variant: str = ""


def ident(facts: Facts, node: Optional[cst.BaseExpression]) -> Optional[str]:
    """A comparable name for a path or handle expression: Path(x), str(x) and x are the same file."""
    if node is None:
        return None
    while isinstance(node, cst.Call) and len(node.args) == 1 and node.args[0].keyword is None:
        if dotted_name(node.func) in PATH_WRAPPERS:
            node = node.args[0].value
        else:
            break
    return facts.key(node)


def string_value(node) -> Optional[str]:
    if isinstance(node, cst.SimpleString):
        try:
            return node.evaluated_value if isinstance(node.evaluated_value, str) else None
        except Exception:
            return None
    return None


def call_label(call: CallSite) -> str:
    return call.dotted or call.tail or "call"
