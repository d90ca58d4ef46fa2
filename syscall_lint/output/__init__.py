"""Output formats. Each reads a Report and returns text."""

from __future__ import annotations

FORMATS = ("text", "json", "sarif", "github", "gitlab", "junit")


def render(fmt: str, report, *, explain: bool = False, statistics: bool = False) -> str:
    if fmt == "text":
        from syscall_lint.output.text import render as r
        return r(report, explain=explain, statistics=statistics)
    if fmt == "json":
        from syscall_lint.output.json_out import render as r
    elif fmt == "sarif":
        from syscall_lint.output.sarif import render as r
    elif fmt == "github":
        from syscall_lint.output.github import render as r
    elif fmt == "gitlab":
        from syscall_lint.output.gitlab import render as r
    elif fmt == "junit":
        from syscall_lint.output.junit import render as r
    else:
        raise ValueError(fmt)
    return r(report)
