"""flake8 plugin: the same rules, messages and `# noqa` handling, under flake8's SCL prefix."""

from __future__ import annotations

from pathlib import Path

from syscall_lint import __version__

_resolver = None


def _settings(filename: str):
    from syscall_lint.config import ConfigError, Resolver, parse_table

    global _resolver
    if _resolver is None:
        _resolver = Resolver()
    try:
        return _resolver.for_path(Path(filename if filename not in ("stdin", "-") else ".").absolute())
    except ConfigError:
        return parse_table({}, "<defaults>", Path("."))


class SyscallLintPlugin:
    name = "syscall-lint"
    version = __version__

    def __init__(self, tree, lines, filename="stdin"):
        # flake8 hands over an `ast` tree; the rules read libcst, so re-parse from the lines
        self.lines = lines
        self.filename = filename

    def run(self):
        from syscall_lint.python.analyzer import BadInput, analyze

        text = "".join(self.lines)
        try:
            found = analyze(text, self.filename, _settings(self.filename))
        except BadInput:
            return  # flake8 reports syntax errors itself (E999)
        for f in found:
            yield f.line, (f.column or 1) - 1, f"{f.code} {f.message}", type(self)
