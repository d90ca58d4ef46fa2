"""`syscall-lint lsp`: a language server on stdio (pygls; `pip install "syscall-lint[lsp]"`).

Diagnostics on open, change (debounced) and save; hover over a diagnostic shows the rule's page;
code actions offer the fix where one exists and `# noqa: SCLxxx`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional
from urllib.parse import unquote, urlparse

DEBOUNCE = 0.3  # seconds after the last change before re-linting
# Analysis costs ~16 µs a character (a 165 KB module takes 2.6 s): a larger document gets one
# diagnostic saying so instead of minutes of work while the editor waits.
MAX_DOCUMENT = 256 << 10
# A message body larger than this is skipped unread; it is well above the largest document
# we analyse, written as JSON-escaped UTF-8.
MAX_MESSAGE = 16 << 20
MAX_HEADER_LINE = 8192
_MARK = b"content-length:"


def _log(message: str) -> None:
    print(f"syscall-lint lsp: {message}", file=sys.stderr, flush=True)


class FramedReader:
    """The client's byte stream as pygls' reader expects it, whatever the client sent.

    pygls trusts the framing: a Content-Length too large to allocate kills it, and a non-numeric,
    negative or wrong one leaves it reading bodies as headers for good. This reader parses each
    header block itself (lines bounded by MAX_HEADER_LINE), skips a message whose length is not a
    number in 0..MAX_MESSAGE, resynchronises on the next `Content-Length:` wherever it appears, and
    re-emits every good message in canonical framing: pygls sees only well-formed messages.
    """

    def __init__(self, raw: BinaryIO, limit: int = MAX_MESSAGE):
        self.raw = raw
        self.limit = limit
        self._pushback = b""  # bytes read past what we consumed (a resynchronised header)
        self._queued: list = []  # the canonical header, blank line and body of the next message

    # pygls' Reader protocol: readline() for headers, read(n) for the body it was told the length of
    def readline(self) -> bytes:
        if not self._queued and not self._next_message():
            return b""
        return self._queued.pop(0)

    def read(self, n: int) -> bytes:
        if not self._queued:
            return b""
        return self._queued.pop(0)

    def _next_message(self) -> bool:
        """Queue the next good message; False at the end of the stream."""
        while True:
            body = self._next_body()
            if body is None:
                return False
            problem = _not_a_message(body)
            if problem is None:
                self._queued = [b"Content-Length: %d\r\n" % len(body), b"\r\n", body]
                return True
            # pygls would log a traceback for it (or, for an empty body, take it as the end of the stream)
            _log(f"skipped a message of {len(body)} bytes: {problem}")

    def _next_body(self) -> Optional[bytes]:
        length: Optional[int] = None
        skipping = False  # a bad header: discard everything up to the next Content-Length
        while True:
            line = self._line()
            if not line:
                return None
            at = line.lower().find(_MARK)
            if at > 0:
                _log(f"skipped {at} bytes between messages")
                line = line[at:]
            if at >= 0:
                length = self._length(line[len(_MARK):])
                skipping = length is None
                continue
            if line.strip():
                continue  # another header (Content-Type) or stray bytes
            if length is not None and not skipping:
                break
        body = self._exactly(length)
        if len(body) < length:
            return None  # the stream ended inside a body
        return self._resync(body)

    def _length(self, value: bytes) -> Optional[int]:
        text = value.strip()
        if not text.isdigit() or len(text) > 12 or int(text) > self.limit:
            _log(f"ignored a message with Content-Length {text[:40]!r} (not a number up to {self.limit})")
            return None
        return int(text)

    def _resync(self, body: bytes) -> bytes:
        """A Content-Length longer than its body swallows the start of the next message: give it back,
        whether the whole `Content-Length:` header was swallowed or only its first letters."""
        lowered = body.lower()
        at = lowered.find(_MARK)
        if at >= 0:
            try:
                json.loads(body)
                return body  # the text merely mentions the header (a document about LSP)
            except ValueError:
                pass
        elif not body.rstrip().endswith((b"}", b"]")):  # not the end of a JSON message
            at = next((len(body) - k for k in range(len(_MARK) - 1, 0, -1) if lowered.endswith(_MARK[:k])), -1)
        if at < 0:
            return body
        self._pushback = body[at:] + self._pushback
        # what came before is a message with a wrong length: dropped like any other badly framed one
        _log(f"dropped a message whose Content-Length ran {len(body) - at} bytes into the next one")
        return b""

    def _line(self) -> bytes:
        if self._pushback:
            end = self._pushback.find(b"\n", 0, MAX_HEADER_LINE)
            if end >= 0 or len(self._pushback) >= MAX_HEADER_LINE:
                cut = end + 1 if end >= 0 else MAX_HEADER_LINE
                line, self._pushback = self._pushback[:cut], self._pushback[cut:]
                return line
            line, self._pushback = self._pushback, b""
            return line + self.raw.readline(MAX_HEADER_LINE - len(line))
        return self.raw.readline(MAX_HEADER_LINE)

    def _exactly(self, n: int) -> bytes:
        head, self._pushback = self._pushback[:n], self._pushback[n:]
        if len(head) == n:
            return head
        chunks, need = [head], n - len(head)
        while need:
            chunk = self.raw.read(need)
            if not chunk:
                break
            chunks.append(chunk)
            need -= len(chunk)
        return b"".join(chunks)


def _not_a_message(body: bytes) -> Optional[str]:
    """Why `body` cannot be a JSON-RPC message (None when it can)."""
    if not body:
        return "empty"
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return f"not JSON ({str(exc)[:80]})"
    if not isinstance(message, dict):
        return f"a JSON {type(message).__name__}, not an object"
    # the JSON-RPC 2.0 envelope: pygls assumes it (a dict without it, or an id that is an object, raise)
    if message.get("jsonrpc") != "2.0":
        return "not JSON-RPC 2.0"
    if "method" in message and not isinstance(message["method"], str):
        return "its method is not a string"
    if "id" in message and not (message["id"] is None or isinstance(message["id"], (int, str))) \
            or isinstance(message.get("id"), bool):
        return "its id is neither a number nor a string"
    if "method" not in message and "id" not in message:
        return "neither a request, a notification nor a response"
    return None


class _OneLineUnlessOurs(logging.Formatter):
    """pygls logs a traceback for every message it cannot structure (a client's mistake): one line is
    enough for those. A traceback through syscall-lint's own code is a bug of ours and is kept whole."""

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info
        ours = False
        if exc and exc[2] is not None:
            frames = traceback.extract_tb(exc[2])
            ours = any("syscall_lint" in frame.filename for frame in frames)
        if ours:
            return super().format(record)
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record).splitlines()[0][:300]
        finally:
            record.exc_info = exc


def _quiet_pygls_logs() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineUnlessOurs("syscall-lint lsp: %(levelname)s: %(message)s"))
    logger = logging.getLogger("pygls")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


@dataclass
class Published:
    """A finding and the diagnostic we sent for it: code actions are computed from these."""

    finding: object
    diagnostic: object


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
    results: dict = {}  # uri -> [Published], the latest diagnostics we sent

    def settings_for(path: str):
        try:
            return resolver.for_path(Path(path).absolute())
        except ConfigError:
            return parse_table({}, "<defaults>", Path("."))

    def open_document(uri: str):
        """The document if the client opened it, else None: pygls would read an unopened URI from
        disk, and a path there may be a FIFO (blocks) or /dev/zero (never ends)."""
        return server.workspace.text_documents.get(unquote(uri))

    def publish(uri: str, diagnostics: list) -> None:
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    def lint(uri: str) -> None:
        doc = open_document(uri)
        if doc is None:
            return
        source = doc.source
        if len(source) > MAX_DOCUMENT:
            results[uri] = []
            publish(uri, [types.Diagnostic(
                range=types.Range(start=types.Position(0, 0), end=types.Position(0, 0)),
                message=f"syscall-lint: not analysed: the document has {len(source)} characters, more than the "
                        f"{MAX_DOCUMENT} the language server analyses (run `syscall-lint check` on it instead)",
                severity=types.DiagnosticSeverity.Information, source="syscall-lint")])
            return
        path = _path(uri)
        lines = source.splitlines()
        try:
            found = analyze(source, path, settings_for(path))
        except BadInput:
            found = []  # the editor's own Python support reports syntax errors
        found = with_recorded_run(found, path)
        published = []
        for f in found:
            start_line = (f.line or 1) - 1
            end_line = (f.end_line or f.line or 1) - 1
            text_start = lines[start_line] if start_line < len(lines) else ""
            text_end = lines[end_line] if end_line < len(lines) else ""
            severity = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning,
                        "info": types.DiagnosticSeverity.Information}[f.severity]
            tree = f.decision_tree
            published.append(Published(f, types.Diagnostic(
                range=types.Range(start=types.Position(start_line, _utf16(text_start, f.column or 1)),
                                  end=types.Position(end_line, _utf16(text_end, f.end_column or 1))),
                message=f"{f.message}\nDecision tree: {tree['id']} → {tree['answer']}\nFix: {f.fix}",
                severity=severity, code=f.code, source="syscall-lint",
                code_description=types.CodeDescription(href=f.url),
                data={"code": f.code, "line": f.line})))
        results[uri] = published
        publish(uri, [item.diagnostic for item in published])

    last_run = {"stamp": None, "by_path": {}}

    def with_recorded_run(found: list, path: str) -> list:
        """Mark what the last `record --check` confirmed, and add what it saw that the static rules
        missed (as diagnostics on those lines, from the run's evidence)."""
        from syscall_lint.findings import Finding
        from syscall_lint.sourcemap import runstore

        store = os.path.join(server.workspace.root_path or os.getcwd(), runstore.default_dir())
        try:
            stat = os.stat(os.path.join(store, runstore.FILE_NAME))
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            return found
        if stamp != last_run["stamp"]:
            last_run.update(stamp=stamp, by_path=runstore.load(store))
        recorded = last_run["by_path"].get(os.path.realpath(path), [])
        if not recorded:
            return found
        static = {(f.code, f.line): f for f in found}
        out = list(found)
        for item in recorded:
            twin = static.get((item.get("code"), item.get("line")))
            evidence = item.get("evidence") or {}
            if twin is not None and "confirmed" in evidence:
                twin.evidence["confirmed"] = evidence["confirmed"]
                twin.message += " [confirmed by a recorded run]"
            elif twin is None and evidence.get("static_miss"):
                try:
                    seen = Finding(**{k: item[k] for k in Finding.__dataclass_fields__ if k in item})
                except TypeError:
                    continue
                seen.path = path
                seen.message += " [seen in a recorded run; the static rules missed it]"
                out.append(seen)
        return out

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
        task = pending.pop(params.text_document.uri, None)
        if task is not None:
            task.cancel()
        results.pop(params.text_document.uri, None)
        publish(params.text_document.uri, [])

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: types.HoverParams):
        line = params.position.line + 1
        for item in results.get(params.text_document.uri, []):
            f = item.finding
            if (f.line or 0) <= line <= (f.end_line or f.line or 0):
                rule = catalog.load().rules[f.code]
                text = page(rule).replace(rule.fix, f.fix)  # this finding's names, not the template's {handle}
                return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))
        return None

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls, params: types.CodeActionParams):
        """Quick fixes for our own latest diagnostics that touch the range (clients need not echo them)."""
        from syscall_lint.fix import fix_source

        uri = params.text_document.uri
        doc = open_document(uri)
        if doc is None:
            return []
        lines = doc.source.splitlines()
        first, last = params.range.start.line, params.range.end.line
        actions, fixed_codes, noqa_rows = [], set(), set()
        for item in results.get(uri, []):
            f, diag = item.finding, item.diagnostic
            if diag.range.end.line < first or diag.range.start.line > last:
                continue
            code = f.code
            rule = catalog.load().rules.get(code)
            if rule is not None and rule.fix_safety and code not in fixed_codes:
                fixed_codes.add(code)
                settings = parse_table({"select": [code]}, "<lsp>", Path("."))
                try:
                    fixed, count = fix_source(doc.source, _path(uri), settings, unsafe=True)
                except BadInput:
                    count = 0
                if count:
                    whole = types.Range(start=types.Position(0, 0), end=types.Position(len(lines) + 1, 0))
                    # f.fix is the rule's fix with this finding's names filled in (the template has {handle})
                    title = f"Fix {code}: {f.fix.split(':')[0]}" + (" (unsafe: adds run-time cost)" if
                                                                   rule.fix_safety == "unsafe" else "")
                    actions.append(types.CodeAction(
                        title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diag],
                        is_preferred=rule.fix_safety == "safe",
                        edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(range=whole, new_text=fixed)]})))
            row = diag.range.start.line
            if (row, code) in noqa_rows:
                continue
            noqa_rows.add((row, code))
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

    _quiet_pygls_logs()
    server.start_io(FramedReader(sys.stdin.buffer))
    return 0
