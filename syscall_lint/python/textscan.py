"""Fast, exact text searches for the rules' screens.

`re` scans quickly for a pattern that starts with literal text (it looks for the literal first), but
a leading `\\b`, `^` or an alternation of different words makes it try the whole pattern at every
position: a ~1 ms-per-100-KiB cost per pattern, paid for every file of a run. These helpers keep the
literal first and check the leading anchor on each match instead, which finds the same matches.

Exact when no match of `pattern` can begin inside another match of it, which holds for the patterns
the screens use (a word, then spaces and punctuation)."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w")


def search_word(pattern: re.Pattern, text: str) -> bool:
    """`re.search(r"\\b" + pattern, text)` for a pattern that starts with a word character."""
    for match in pattern.finditer(text):
        at = match.start()
        if at == 0 or not _WORD.match(text, at - 1):
            return True
    return False


def search_line_start(pattern: re.Pattern, text: str) -> bool:
    """`re.search(r"^[ \\t]*" + pattern, text, re.M)`: only spaces and tabs before it on its line."""
    for match in pattern.finditer(text):
        at = match.start()
        line = text.rfind("\n", 0, at) + 1
        if not text[line:at].strip(" \t"):
            return True
    return False
