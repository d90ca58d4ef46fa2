"""One line model for Python source, the one `ast`, libcst and the tokenizer use: lines end at
`\\n`, `\\r\\n` or `\\r` only. (`str.splitlines` also splits on `\\f`, `\\v`, `\\x1c`-`\\x1e`, `\\x85`,
`\\u2028` and `\\u2029`, which would shift every line after one of them.)"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n?|\n")


def source_lines(text: str) -> list:
    """The file's lines, without their line breaks; `source_lines(t)[n - 1]` is line n."""
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "" and text:
        lines.pop()  # the break ending the last line does not start another
    return lines
