"""`syscall-lint lsp`: a JSON-RPC session over stdio, hostile framing, hostile documents, and a real
editor (headless Neovim). Every read has a deadline: a server that stops answering fails the test
instead of hanging it."""

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

import pytest

from conftest import FIXTURES, ROOT, expected_marks

pytest.importorskip("pygls")

DEADLINE = 30.0  # seconds any one answer may take (analysis of a fixture takes well under one)
BAD_PY = FIXTURES / "python" / "config_writer_bad.py"


class LspClient:
    """A JSON-RPC client over the server's stdio: a reader thread frames stdout into messages, another
    drains stderr (pygls logs there), and every wait has a deadline."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "syscall_lint", "lsp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self.next_id = 0
        self.messages: "queue.Queue" = queue.Queue()
        self.held = []  # messages read while waiting for something else
        self.stderr = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stdout(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(EOFError("the server closed its output"))
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            self.messages.put(json.loads(out.read(length)))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace"))

    def send_raw(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, payload):
        body = json.dumps(payload).encode()
        self.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def next_message(self, deadline: float):
        remaining = deadline - time.monotonic()
        try:
            msg = self.messages.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            raise AssertionError(f"no answer from the server in time; stderr: {''.join(self.stderr)[-2000:]}")
        if isinstance(msg, Exception):
            raise AssertionError(f"{msg}; stderr: {''.join(self.stderr)[-2000:]}")
        return msg

    def request(self, method, params, timeout=DEADLINE):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.response(self.next_id, timeout)

    def response(self, msg_id, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next_message(deadline)
            if msg.get("id") == msg_id and "method" not in msg:
                return msg
            self.held.append(msg)

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_for(self, method, timeout=DEADLINE):
        for i, msg in enumerate(self.held):
            if msg.get("method") == method:
                return self.held.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next_message(deadline)
            if msg.get("method") == method:
                return msg
            self.held.append(msg)

    def initialize(self):
        init = self.request("initialize", {"processId": os.getpid(), "rootUri": ROOT.as_uri(), "capabilities": {}})
        self.notify("initialized", {})
        return init

    def open(self, uri, text):
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                              "text": text}})
        return self.wait_for("textDocument/publishDiagnostics")["params"]

    def shutdown_and_exit(self):
        assert self.request("shutdown", None)["result"] is None
        self.notify("exit", None)
        assert self.proc.wait(timeout=DEADLINE) == 0
        self._stderr_reader.join(timeout=DEADLINE)  # all of the log, for assertions on it

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)


@pytest.fixture
def client():
    c = LspClient()
    try:
        yield c
    finally:
        c.close()


def test_language_server_session_over_stdio(client):
    caps = client.initialize()["result"]["capabilities"]
    assert caps["codeActionProvider"] and caps["hoverProvider"]
    uri = BAD_PY.as_uri()
    diags = client.open(uri, BAD_PY.read_text())
    assert diags["uri"] == uri
    codes = sorted(d["code"] for d in diags["diagnostics"])
    assert codes == ["SCL101", "SCL101", "SCL102", "SCL106"]
    scl106 = next(d for d in diags["diagnostics"] if d["code"] == "SCL106")
    assert scl106["range"]["start"] == {"line": 22, "character": 12}
    assert scl106["codeDescription"]["href"].endswith("SCL106.md") and "Decision tree" in scl106["message"]
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": scl106["range"], "context": {"diagnostics": [scl106]}})["result"]
    titles = [a["title"] for a in actions]
    # the title names this finding's file object, not the catalog template's {handle}
    assert "Fix SCL106: call tmp.flush() before os.fsync(tmp.fileno())" in titles, titles
    assert "Add `# noqa: SCL106` to this line" in titles
    assert not any("{" in t for t in titles)
    fix = next(a for a in actions if a["title"].startswith("Fix SCL106"))
    new_text = fix["edit"]["changes"][uri][0]["newText"]
    assert "tmp.flush()\n            os.fsync(tmp.fileno())" in new_text
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": {"line": 22, "character": 14}})["result"]
    assert "## Why is this bad?" in hover["contents"]["value"] and "{handle}" not in hover["contents"]["value"]
    # a change that fixes the file clears the diagnostics (debounced)
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": "x = 1\n"}]})
    assert client.wait_for("textDocument/publishDiagnostics")["params"]["diagnostics"] == []
    client.shutdown_and_exit()


def test_code_actions_come_from_the_servers_own_diagnostics(client):
    """Clients need not echo the diagnostics back in the request's context."""
    client.initialize()
    uri = BAD_PY.as_uri()
    diags = client.open(uri, BAD_PY.read_text())["diagnostics"]
    scl106 = next(d for d in diags if d["code"] == "SCL106")
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": scl106["range"], "context": {"diagnostics": []}})["result"]
    assert sorted(a["title"] for a in actions) == [
        "Add `# noqa: SCL106` to this line", "Fix SCL106: call tmp.flush() before os.fsync(tmp.fileno())"]
    # a range with no finding on it gets no actions
    empty = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
        "context": {"diagnostics": []}})["result"]
    assert empty == []
    client.shutdown_and_exit()


def _frame(body: bytes, length=None) -> bytes:
    return b"Content-Length: %s\r\n\r\n" % (str(len(body) if length is None else length).encode()) + body


HOSTILE_FRAMES = {
    "overflowing-length": _frame(b'{"jsonrpc": "2.0", "method": "x"}', "99999999999999999999"),
    "non-numeric-length": _frame(b'{"jsonrpc": "2.0", "method": "x"}', "twelve"),
    "negative-length": _frame(b'{"jsonrpc": "2.0", "method": "x"}', "-5"),
    "short-length": _frame(b'{"jsonrpc": "2.0", "id": 900, "method": "shutdown"}', 10),
    "zero-length": _frame(b"", 0),
    "no-header": b'{"jsonrpc": "2.0", "id": 901, "method": "shutdown"}\r\n\r\n',
    "not-json": _frame(b"\xff\xfe{{{ not json"),
    "json-not-an-object": _frame(b"[1, 2, 3]"),
    "header-without-colon": b"Content-Length 12\r\n\r\n{\"a\": 1}\r\n",
    "endless-header-line": b"X-Junk: " + b"A" * 100_000 + b"\r\n\r\n",
    "not-json-rpc": _frame(b'{"id": 5, "method": "textDocument/hover"}'),
    "id-is-an-object": _frame(b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "textDocument/hover", "params": {}}'),
    "params-of-the-wrong-shape": _frame(b'{"jsonrpc": "2.0", "method": "textDocument/didChange", "params": [1]}'),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FRAMES))
def test_bad_framing_is_skipped_and_the_server_keeps_answering(client, name):
    client.initialize()
    client.send_raw(HOSTILE_FRAMES[name])
    hover = client.request("textDocument/hover", {"textDocument": {"uri": BAD_PY.as_uri()},
                                                  "position": {"line": 0, "character": 0}})
    assert hover["result"] is None  # answered (the document was never opened)
    client.shutdown_and_exit()
    assert "Traceback" not in "".join(client.stderr)  # a client's mistake is one log line, not a traceback


@pytest.mark.parametrize("overrun", [3, 20, 60])
def test_a_length_longer_than_its_body_gives_back_the_next_message(client, overrun):
    """The declared length runs `overrun` bytes into the next message: part of its header (3), all of
    it (20), or into its body (60)."""
    client.initialize()
    body = b'{"x": 1'
    client.next_id += 1
    following = json.dumps({"jsonrpc": "2.0", "id": client.next_id, "method": "textDocument/hover",
                            "params": {"textDocument": {"uri": BAD_PY.as_uri()},
                                       "position": {"line": 0, "character": 0}}}).encode()
    client.send_raw(_frame(body, len(body) + overrun) + _frame(following))
    assert client.response(client.next_id)["result"] is None
    client.shutdown_and_exit()


def test_unknown_methods_get_an_error_and_the_session_goes_on(client):
    client.initialize()
    answer = client.request("syscallLint/noSuchMethod", {"a": 1})
    assert answer["error"]["code"] == -32601  # MethodNotFound
    client.notify("$/noSuchNotification", {})
    client.shutdown_and_exit()


def test_unopened_uris_naming_a_fifo_never_block(client, tmp_path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    client.initialize()
    uri = fifo.as_uri()
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
        "context": {"diagnostics": []}})
    assert actions["result"] == []
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                 "position": {"line": 0, "character": 0}})["result"] is None
    client.shutdown_and_exit()


def test_a_document_over_the_limit_gets_one_diagnostic_not_minutes_of_work(client):
    from syscall_lint.lsp import MAX_DOCUMENT

    client.initialize()
    text = BAD_PY.read_text()
    huge = text * (MAX_DOCUMENT // len(text) + 1)
    assert len(huge) > MAX_DOCUMENT
    diags = client.open("file:///tmp/huge_module.py", huge)["diagnostics"]
    assert len(diags) == 1 and "not analysed" in diags[0]["message"] and str(MAX_DOCUMENT) in diags[0]["message"]
    assert client.request("textDocument/codeAction", {
        "textDocument": {"uri": "file:///tmp/huge_module.py"},
        "range": {"start": {"line": 22, "character": 0}, "end": {"line": 22, "character": 0}},
        "context": {"diagnostics": []}})["result"] == []
    client.shutdown_and_exit()


def test_framed_reader_re_emits_canonical_messages():
    """The reader alone: what pygls would see for a stream mixing good and bad frames."""
    import io

    from syscall_lint.lsp import FramedReader

    good = [b'{"jsonrpc": "2.0", "id": %d, "result": null}' % i for i in (1, 2, 3)]
    stream = (b"garbage line\r\n" + _frame(good[0]) + _frame(b"{}", "-1") + b"Content-Type: x\r\n" + _frame(good[1])
              + _frame(b"", 0) + _frame(b'{"id": 3', 10**30) + _frame(b'{"id": 4, "method": "x"}')
              + _frame(b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "x"}') + _frame(good[2]))
    reader = FramedReader(io.BytesIO(stream))
    seen = []
    while True:
        header = reader.readline()
        if not header:
            break
        assert header.startswith(b"Content-Length: ") and reader.readline() == b"\r\n"
        seen.append(reader.read(int(header.split(b":")[1])))
    assert seen == good


NVIM_INIT = r"""
local out = vim.env.SCL_OUT
local function finish(result)
  local fh = io.open(out, 'w')
  fh:write(vim.json.encode(result))
  fh:close()
  vim.cmd('qall!')
end
vim.defer_fn(function() finish({error = 'timed out in neovim'}) end, 40000)
vim.cmd('edit ' .. vim.fn.fnameescape(vim.env.SCL_FILE))
local buf = vim.api.nvim_get_current_buf()
-- start_client + buf_attach_client work from Neovim 0.5 (Debian 12 ships 0.7; vim.lsp.start is 0.8+)
local client_id = vim.lsp.start_client({name = 'syscall-lint',
                                        cmd = {vim.env.SCL_PYTHON, '-m', 'syscall_lint', 'lsp'},
                                        root_dir = vim.fn.getcwd()})
vim.lsp.buf_attach_client(buf, client_id)
local function wait_diagnostics(tries)
  local diags = vim.diagnostic.get(buf)
  if #diags == 0 then
    if tries > 0 then return vim.defer_fn(function() wait_diagnostics(tries - 1) end, 100) end
    return finish({error = 'no diagnostics'})
  end
  local found = {}
  for _, d in ipairs(diags) do table.insert(found, {code = d.code, lnum = d.lnum, col = d.col}) end
  local target
  for _, d in ipairs(diags) do if d.code == 'SCL106' then target = d end end
  local client = vim.lsp.get_client_by_id(client_id)
  local params = {textDocument = {uri = vim.uri_from_bufnr(buf)},
                  range = {start = {line = target.lnum, character = target.col},
                           ['end'] = {line = target.lnum, character = target.col}},
                  context = {diagnostics = {}}}
  client.request('textDocument/codeAction', params, function(err, actions)
    if err or not actions then return finish({error = 'no code actions', diagnostics = found}) end
    local titles = {}
    local chosen
    for _, a in ipairs(actions) do
      table.insert(titles, a.title)
      if a.title:find('^Fix SCL106') then chosen = a end
    end
    if chosen then vim.lsp.util.apply_workspace_edit(chosen.edit, client.offset_encoding) end
    finish({diagnostics = found, titles = titles,
            lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)})
  end, buf)
end
wait_diagnostics(300)
"""


@pytest.mark.machine
def test_neovim_shows_the_diagnostics_and_applies_the_quick_fix(tmp_path):
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip("Neovim is not installed (apt-get install neovim)")
    work = tmp_path / "project"
    work.mkdir()
    target = work / "writer.py"
    shutil.copy(BAD_PY, target)
    (tmp_path / "init.lua").write_text(NVIM_INIT)
    out = tmp_path / "result.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), SCL_OUT=str(out), SCL_FILE=str(target), SCL_PYTHON=sys.executable,
               XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.run([nvim, "--headless", "--clean", "-u", str(tmp_path / "init.lua")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert out.exists(), proc.stderr
    result = json.loads(out.read_text())
    assert "error" not in result, result
    marks = sorted((d["lnum"] + 1, d["code"]) for d in result["diagnostics"])
    assert marks == sorted(expected_marks(BAD_PY))
    assert "Fix SCL106: call tmp.flush() before os.fsync(tmp.fileno())" in result["titles"]
    fixed = result["lines"]
    original = BAD_PY.read_text().splitlines()
    # the quick fix inserted exactly one line, the flush, right before the fsync
    flush_at = fixed.index("            tmp.flush()")
    assert fixed[flush_at + 1].startswith("            os.fsync(tmp.fileno())")
    assert fixed[:flush_at] + fixed[flush_at + 1:] == original
    assert target.read_text() == BAD_PY.read_text()  # the edit is in the buffer; nothing saved it
