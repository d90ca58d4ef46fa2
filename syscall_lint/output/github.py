"""GitHub Actions workflow commands (`::error file=…::message`), escaped as the runner expects."""

from __future__ import annotations

LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(report) -> str:
    out = []
    for f in report.findings:
        props = [f"file={escape_property(f.path)}"]
        if f.line is not None:
            props.append(f"line={f.line}")
            if f.end_line is not None:
                props.append(f"endLine={f.end_line}")
            if f.column is not None:
                props.append(f"col={f.column}")
            if f.end_column is not None and f.end_line == f.line:
                props.append(f"endColumn={f.end_column}")
        props.append(f"title={escape_property(f'{f.code} {f.name}')}")
        out.append(f"::{LEVELS[f.severity]} {','.join(props)}::{escape_data(f'{f.message} — fix: {f.fix}')}")
    for e in report.errors:
        out.append(f"::error file={escape_property(e.path)},title=syscall-lint%3A input error::{escape_data(e.message)}")
    return "\n".join(out) + ("\n" if out else "")
