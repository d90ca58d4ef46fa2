"""`# noqa` comments, with flake8's syntax so the flake8 plugin and the CLI agree."""

from __future__ import annotations

import re

from syscall_lint.python.lines import source_lines

# flake8's own pattern (flake8/defaults.py): "# noqa", optionally ":" and a list of codes.
NOQA_INLINE = re.compile(r"# noqa(?::[\s]?(?P<codes>([A-Z]+[0-9]+(?:[,\s]+)?)+))?", re.IGNORECASE)
CODE = re.compile(r"[A-Z]+[0-9]+", re.IGNORECASE)


class Suppressions:
    """Which codes each line suppresses; remembers which suppressions were used."""

    def __init__(self, text: str):
        self.by_line: dict[int, tuple | None] = {}  # None = bare noqa (everything)
        self.used: dict[int, set] = {}
        if "noqa" not in text.lower():
            return
        for lineno, line in enumerate(source_lines(text), 1):
            if "#" not in line:
                continue
            match = NOQA_INLINE.search(line)
            if not match:
                continue
            codes = match.group("codes")
            self.by_line[lineno] = tuple(c.upper() for c in CODE.findall(codes)) if codes else None

    def suppresses(self, line: int | None, code: str) -> bool:
        if line is None or line not in self.by_line:
            return False
        codes = self.by_line[line]
        hit = codes is None or any(code.startswith(c) for c in codes)
        if hit:
            self.used.setdefault(line, set()).add(code)
        return hit

    def unused(self):
        """Yield (line, unused SCL codes) for suppressions that matched nothing."""
        for line, codes in self.by_line.items():
            if codes is None:
                continue
            used = self.used.get(line, set())
            stale = [c for c in codes if c.startswith("SCL") and not any(u.startswith(c) for u in used)]
            if stale:
                yield line, stale
