"""`syscall-lint lsp`: a language server on stdio (pygls; `pip install "syscall-lint[lsp]"`).

Diagnostics on open, change (debounced) and save; hover over a diagnostic shows the rule's page;
code actions offer the fix where one exists and `# noqa: SCLxxx`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

DEBOUNCE = 0.3  # seconds after the last change before re-linting


def _utf16(line: str, column: int) -> int:
    """1-based code-point column → 0-based UTF-16 offset, as LSP positions count."""
    return len(line[: max(column - 1, 0)].encode("utf-16-le")) // 2


def _path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def serve() -> int:
    try:
        from lsprotocol import types
        from pygls.lsp.server import LanguageServer
    except ImportError:
        print("syscall-lint: the language server needs pygls: pip install \"syscall-lint[lsp]\"", file=sys.stderr)
        return 2

    from syscall_lint import __version__, catalog
    from syscall_lint.config import ConfigError, Resolver, parse_table
    from syscall_lint.python.analyzer import BadInput, analyze
    from syscall_lint.rule_docs import page

    server = LanguageServer("syscall-lint", __version__)
    resolver = Resolver()
    pending: dict = {}
    results: dict = {}  # uri -> findings

    def settings_for(path: str):
        try:
            return resolver.for_path(Path(path).absolute())
        except ConfigError:
            return parse_table({}, "<defaults>", Path("."))

    def lint(uri: str) -> None:
        doc = server.workspace.get_text_document(uri)
        path = _path(uri)
        lines = doc.source.splitlines()
        try:
            found = analyze(doc.source, path, settings_for(path))
        except BadInput:
            found = []  # the editor's own Python support reports syntax errors
        results[uri] = found
        diagnostics = []
        for f in found:
            start_line = (f.line or 1) - 1
            end_line = (f.end_line or f.line or 1) - 1
            text_start = lines[start_line] if start_line < len(lines) else ""
            text_end = lines[end_line] if end_line < len(lines) else ""
            severity = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning,
                        "info": types.DiagnosticSeverity.Information}[f.severity]
            tree = f.decision_tree
            diagnostics.append(types.Diagnostic(
                range=types.Range(start=types.Position(start_line, _utf16(text_start, f.column or 1)),
                                  end=types.Position(end_line, _utf16(text_end, f.end_column or 1))),
                message=f"{f.message}\nDecision tree: {tree['id']} → {tree['answer']}\nFix: {f.fix}",
                severity=severity, code=f.code, source="syscall-lint",
                code_description=types.CodeDescription(href=f.url),
                data={"code": f.code, "line": f.line}))
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    async def debounced(uri: str) -> None:
        await asyncio.sleep(DEBOUNCE)
        pending.pop(uri, None)
        lint(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: types.DidOpenTextDocumentParams):
        lint(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls, params: types.DidSaveTextDocumentParams):
        lint(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: types.DidChangeTextDocumentParams):
        uri = params.text_document.uri
        task = pending.pop(uri, None)
        if task is not None:
            task.cancel()
        pending[uri] = asyncio.ensure_future(debounced(uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: types.DidCloseTextDocumentParams):
        results.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                                diagnostics=[]))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: types.HoverParams):
        line = params.position.line + 1
        for f in results.get(params.text_document.uri, []):
            if (f.line or 0) <= line <= (f.end_line or f.line or 0):
                rule = catalog.load().rules[f.code]
                return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=page(rule)))
        return None

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls, params: types.CodeActionParams):
        from syscall_lint.fix import fix_source

        uri = params.text_document.uri
        doc = server.workspace.get_text_document(uri)
        lines = doc.source.splitlines()
        actions = []
        for diag in params.context.diagnostics:
            if diag.source != "syscall-lint" or not diag.code:
                continue
            code = str(diag.code)
            rule = catalog.load().rules.get(code)
            if rule is not None and rule.fix_safety:
                settings = parse_table({"select": [code]}, "<lsp>", Path("."))
                try:
                    fixed, count = fix_source(doc.source, _path(uri), settings, unsafe=True)
                except BadInput:
                    count = 0
                if count:
                    whole = types.Range(start=types.Position(0, 0), end=types.Position(len(lines) + 1, 0))
                    title = f"Fix {code}: {rule.fix.split(':')[0]}" + (" (unsafe: adds run-time cost)" if
                                                                      rule.fix_safety == "unsafe" else "")
                    actions.append(types.CodeAction(
                        title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diag],
                        is_preferred=rule.fix_safety == "safe",
                        edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(range=whole, new_text=fixed)]})))
            row = diag.range.start.line
            text = lines[row] if row < len(lines) else ""
            end = types.Position(row, len(text.encode("utf-16-le")) // 2)
            suffix = f", {code}" if "# noqa:" in text else f"  # noqa: {code}"
            if "# noqa" in text and "# noqa:" not in text:
                continue  # a bare noqa already silences everything
            actions.append(types.CodeAction(
                title=f"Add `# noqa: {code}` to this line", kind=types.CodeActionKind.QuickFix, diagnostics=[diag],
                edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(range=types.Range(start=end, end=end),
                                                                         new_text=suffix)]})))
        return actions

    server.start_io()
    return 0
