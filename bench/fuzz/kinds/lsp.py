"""The language server's input stream: each input is a file of raw bytes written to `syscall-lint lsp`.

Shapes (by index): bad Content-Length values (overflowing, negative, non-numeric, empty, doubled),
lengths shorter or longer than the body, bodies that are not JSON or not objects, headers with no
body, endless header lines, binary junk, unknown methods, well-formed requests with hostile params
(positions out of range, URIs naming a FIFO or /dev/zero, unopened documents), documents over the
size limit, and the fixture sources mutated. A batch is one server: after every input a valid
request must get its answer, and at the end shutdown/exit must end it with status 0.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple, Optional

KIND = "lsp"
SUBCOMMAND = ["lsp"]
BATCH_SIZE = 200
ANSWER_TIMEOUT = 30.0  # seconds for the probe after one input (a small document lints in well under 1 s)

ROOT = Path(__file__).resolve().parents[3]
SOURCES = sorted((ROOT / "fixtures" / "python").glob("*.py"))
METHODS = ["textDocument/hover", "textDocument/codeAction", "textDocument/didOpen", "textDocument/didChange",
           "textDocument/didSave", "textDocument/didClose", "workspace/didChangeConfiguration",
           "textDocument/completion", "$/cancelRequest", "$/setTrace", "syscallLint/unknown", "", "initialize",
           "textDocument/formatting", "workspace/executeCommand"]
ODD_VALUES = [None, 0, -1, 2 ** 31, 2 ** 64, 1e308, "", "x" * 1000, [], {}, [[[]]], True, "\u0000", "\ud800"]


def frame(body: bytes, length=None) -> bytes:
    return b"Content-Length: %s\r\n\r\n" % str(len(body) if length is None else length).encode() + body


def message(payload) -> bytes:
    return json.dumps(payload).encode("utf-8", "surrogatepass")


def _source(rng: random.Random) -> str:
    text = rng.choice(SOURCES).read_text()
    if rng.random() < 0.5:
        chars = list(text)
        for _ in range(rng.randint(1, 20)):
            pos = rng.randrange(len(chars) + 1)
            chars.insert(pos, rng.choice(["\n", "(", ")", ":", "\t", "é", "\U0001f600", "\r", "os.replace(a, b)"]))
        text = "".join(chars)
    return text


def _position(rng):
    return {"line": rng.choice([0, 1, 22, 10 ** 6, -1, 2 ** 40]), "character": rng.choice([0, 5, 10 ** 6, -1])}


def _uri(rng, outdir: Path, index: int) -> str:
    choice = rng.randrange(6)
    if choice == 0:
        fifo = outdir / f"lsp-{index:06d}.fifo.py"
        if not fifo.exists():
            os.mkfifo(fifo)
        return fifo.as_uri()
    return ["file:///dev/zero", "file:///tmp/fuzz%20doc.py", "untitled:Untitled-1", "file:///nonexistent/x.py",
            "not a uri", ][choice - 1]


def _hostile_request(rng, outdir, index) -> bytes:
    uri = _uri(rng, outdir, index)
    method = rng.choice(METHODS)
    params = {"textDocument": {"uri": uri, "version": rng.choice([1, -1, None]), "languageId": "python",
                               "text": _source(rng)},
              "position": _position(rng), "range": {"start": _position(rng), "end": _position(rng)},
              "context": {"diagnostics": rng.choice([[], [{"code": "SCL106"}], None])},
              "contentChanges": rng.choice([[{"text": "x = 1\n"}],
                                            [{"range": {"start": _position(rng), "end": _position(rng)}, "text": "y"}],
                                            [], None])}
    if rng.random() < 0.3:
        params = rng.choice(ODD_VALUES)
    payload = {"jsonrpc": rng.choice(["2.0", "2.0", "1.0", None]), "method": method, "params": params}
    if rng.random() < 0.6:
        payload["id"] = rng.choice([10 ** 9 + index, "s%d" % index, None, [1], {"a": 1}, 1.5])
    return frame(message(payload))


def _bad_length(rng, index) -> bytes:
    body = message({"jsonrpc": "2.0", "method": "exit"})  # never to be obeyed: its framing is broken
    value = rng.choice(["99999999999999999999", "9" * rng.randint(13, 300), "-1", "-99", "abc", "", " ",
                        "0x20", "1e3", "12.5", "+5", "٣", str(16 << 20 + 1), "nan"])
    return b"Content-Length: " + value.encode() + b"\r\n\r\n" + body


def _wrong_length(rng, index) -> bytes:
    body = message({"jsonrpc": "2.0", "method": "exit"})
    if rng.random() < 0.5:  # short: the rest of the body runs into what follows
        return frame(body, rng.randrange(0, len(body)))
    # long by less than what follows it, so the stream does not wait for bytes that never come
    inner = frame(message({"jsonrpc": "2.0", "method": "syscallLint/afterOverrun", "params": {}}))
    return frame(body, len(body) + rng.randrange(1, len(inner))) + inner


def _junk(rng, index) -> bytes:
    choice = rng.randrange(8)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
    if choice == 1:
        return b"X-Junk: " + b"A" * rng.choice([100, 10_000, 200_000]) + b"\r\n\r\n"
    if choice == 2:
        return frame(rng.choice([b"{", b"[1,2]", b"42", b'"str"', b"null", b"\xff\xfe", b"[" * 100_000,
                                 b'{"jsonrpc": "2.0", "id": 1, "method": 5}', b"{}", b"\0" * 50]))
    if choice == 3:
        return b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"  # a header with no message
    if choice == 4:
        return b"content-length: 2\n\n{}"  # lower case, bare LF
    if choice == 5:
        return b"Content-Length: 5\r\nContent-Length: 2\r\n\r\n{}"
    if choice == 6:
        return b"\r\n" * rng.randint(1, 50)
    return frame(b"", 0)


def _big_document(rng, outdir, index) -> bytes:
    size = rng.choice([300_000, 1_000_000, 5_000_000, 17_000_000])  # all over MAX_DOCUMENT; the last over MAX_MESSAGE
    text = ("x = 1\n" * (size // 6 + 1))[:size]
    return frame(message({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                          "params": {"textDocument": {"uri": f"file:///tmp/big-{index}.py", "languageId": "python",
                                                      "version": 1, "text": text}}}))


def _small_document(rng, outdir, index) -> bytes:
    uri = f"file:///tmp/fuzz-{index}.py"
    opened = frame(message({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                            "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                        "text": _source(rng)}}}))
    action = frame(message({"jsonrpc": "2.0", "id": 10 ** 9 + index, "method": "textDocument/codeAction",
                            "params": {"textDocument": {"uri": uri},
                                       "range": {"start": _position(rng), "end": _position(rng)},
                                       "context": {"diagnostics": []}}}))
    return opened + action


def generate(rng: random.Random, index: int, outdir: Path) -> Path:
    path = outdir / f"lsp-{index:06d}"
    shape = index % 16
    if shape < 3:
        data = _bad_length(rng, index)
    elif shape < 6:
        data = _wrong_length(rng, index)
    elif shape < 9:
        data = _junk(rng, index)
    elif shape < 13:
        data = _hostile_request(rng, outdir, index)
    elif shape < 15:
        data = _small_document(rng, outdir, index)
    else:
        data = _big_document(rng, outdir, index) if (index // 16) % 8 == 0 else _hostile_request(rng, outdir, index)
    path.write_bytes(data)
    return path


class LspOutcome(NamedTuple):
    """What the driver reads from a batch (a NamedTuple: this module is loaded without a package)."""

    problem: Optional[str]  # None when the server held
    detail: str = ""
    peak_rss_kb: int = 0
    seconds: float = 0.0


def run_batch(paths, timeout: float) -> LspOutcome:
    """One server for the batch: each input, then a probe request that must be answered."""
    started = time.monotonic()
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "syscall_lint", "lsp"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    answers: "queue.Queue" = queue.Queue()
    threading.Thread(target=_read_answers, args=(proc.stdout, answers), daemon=True).start()
    problem, detail, ended = None, "", None
    try:
        _send(proc, frame(message({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                   "params": {"processId": None, "rootUri": None, "capabilities": {}}})))
        _await(answers, 0, ANSWER_TIMEOUT)
        _send(proc, frame(message({"jsonrpc": "2.0", "method": "initialized", "params": {}})))
        for n, path in enumerate(paths, 1):
            _send(proc, Path(path).read_bytes())
            probe = -n
            _send(proc, frame(message({"jsonrpc": "2.0", "id": probe, "method": "textDocument/hover",
                                       "params": {"textDocument": {"uri": "file:///probe.py"},
                                                  "position": {"line": 0, "character": 0}}})))
            if not _await(answers, probe, min(ANSWER_TIMEOUT, max(timeout - (time.monotonic() - started), 1))):
                problem, detail = "hang", f"no answer to the request after {Path(path).name}"
                break
        if problem is None:
            _send(proc, frame(message({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"})))
            if not _await(answers, "bye", ANSWER_TIMEOUT):
                problem, detail = "hang", "no answer to shutdown"
            else:
                _send(proc, frame(message({"jsonrpc": "2.0", "method": "exit"})))
                ended = _reap(proc, ANSWER_TIMEOUT)
                if ended is None:
                    problem, detail = "hang", "still running after shutdown and exit"
                elif ended[0] != 0:
                    problem, detail = f"exit {ended[0]}", "after shutdown and exit"
    except (BrokenPipeError, EOFError) as exc:
        problem, detail = "exit", f"the server went away: {exc}"
    finally:
        if ended is None:
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            ended = _reap(proc, ANSWER_TIMEOUT) or (None, None)
        stderr.seek(0)
        log = stderr.read().decode("utf-8", "replace")
        stderr.close()
    if problem is None and "Traceback" in log:
        problem, detail = "traceback", log[-2000:]
    elif problem:
        detail += "; stderr: " + log[-1500:]
    peak = ended[1].ru_maxrss if ended[1] is not None else 0
    return LspOutcome(problem, detail, peak, time.monotonic() - started)


def _reap(proc, seconds: float):
    """(exit status, rusage) once the server ends within `seconds`, else None (it keeps running)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped
            return proc.returncode, None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, rusage
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def _send(proc, data: bytes) -> None:
    if proc.poll() is not None:
        raise EOFError(f"exited with status {proc.returncode}")
    proc.stdin.write(data)
    proc.stdin.flush()


def _read_answers(stream, answers) -> None:
    while True:
        length = None
        while True:
            line = stream.readline()
            if not line:
                answers.put(EOFError("the server closed its output"))
                return
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answers.put(json.loads(stream.read(length)))


def _await(answers, msg_id, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            msg = answers.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            return False
        if isinstance(msg, Exception):
            raise msg
        if msg.get("id") == msg_id and "method" not in msg:
            return True
