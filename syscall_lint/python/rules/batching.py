"""SCL201 unbatched-writes and SCL401 copy-loop-to-socket.

A loop that only produces output and pays one syscall per iteration is the syscall tax. Loops that
also read or wait are request/response or copy loops, where the per-iteration write is the protocol;
those are left to SCL401 (file → socket copies) or left alone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from syscall_lint.python.rulekit import Hit, Rule, cst, call_label
from syscall_lint.python.textscan import search_line_start, search_word
from syscall_lint.python.vocabulary import OPENERS

if TYPE_CHECKING:
    from syscall_lint.python.facts import CallSite, Facts, Loop



# os.write, or os under another name (`import sys, os as o`, `import posix`) or any `from os import`
# (a parenthesised, multi-line list included)
# (each piece starts with its word, which keeps re's scan fast: textscan.py)
_OS_WRITE = (re.compile(r"os\s*\.\s*write\b"), re.compile(r"os[ \t]+as\b"), re.compile(r"posix[ \t]+as\b"),
             re.compile(r"nt[ \t]+as\b"), re.compile(r"import[ \t]+(?:posix|nt)\b"))
_FROM_OS = re.compile(r"from[ \t]+(?:os|posix|nt)[ \t]+import\b")  # at the start of a line
# `send(`/`sendall(` as a word, `.flush(`, `flush=`, `buffering`
_SEND = re.compile(r"send(?:all)?\s*\(")
_FLUSH = (re.compile(r"\.flush\s*\("), re.compile(r"flush\s*="))


def _os_write(text: str) -> bool:
    return any(search_word(p, text) for p in _OS_WRITE) or search_line_start(_FROM_OS, text)


def _send_or_flush(text: str) -> bool:
    return "buffering" in text or any(p.search(text) for p in _FLUSH) or search_word(_SEND, text)


class Batching(Rule):
    """One small write or send per loop iteration where one batched call would do (SCL201), and a
    file copied to a socket through user space (SCL401)."""

    name = "batching"
    codes = frozenset({"SCL201", "SCL401"})
    words = ("send", "flush", "buffering", "write")
    gated = True

    @classmethod
    def screen(cls, text: str) -> bool:
        return bool((("send" in text or "flush" in text or "buffering" in text) and _send_or_flush(text))
                    or ("write" in text and _os_write(text)))

    def check(self, facts):
        return _check(facts)


SOCKET_FACTORIES = {"socket.socket", "socket.create_connection", "socket.socketpair", "socket.fromfd",
                    "socket.create_server", "ssl.wrap_socket"}
SEND_METHODS = {"send", "sendall"}
# Calls that make a loop a request/response, retry or copy loop rather than an output loop.
WAITS = {"recv", "recv_into", "recvfrom", "recvmsg", "read", "readline", "readinto", "readlines", "read1",
         "accept", "input", "select", "poll", "sleep", "get", "wait", "join", "sendfile", "connect",
         "getresponse", "urlopen", "request", "communicate", "next", "__next__", "result"}
WAIT_WORDS = ("read", "recv", "receive", "get", "wait", "accept", "poll", "select", "sleep")
# Loop variables that name a piece of a larger stream: flushing each one streams it on purpose.
CHUNK_WORDS = ("chunk", "block")
FILE_READS = ("read", "readinto", "read1")
# Names that say "a file object" when nothing in the function says where the object came from.
FILE_NAMES = frozenset({"f", "fp", "fh", "fobj", "fileobj", "file_obj", "file", "infile", "in_file"})
WRITE_OR_SEND_WORDS = ("write", "send")
REQUEST_HANDLER_BASES = ("socketserver.BaseRequestHandler", "socketserver.StreamRequestHandler",
                         "socketserver.DatagramRequestHandler", "http.server.BaseHTTPRequestHandler",
                         "http.server.SimpleHTTPRequestHandler")


def _socket_names(facts: Facts, scope) -> set:
    names = set()
    for call in scope.calls:
        if call.qual in SOCKET_FACTORIES and call.targets:
            names.add(call.targets[0])
        elif call.tail == "accept" and len(call.targets) == 2 and not call.node.args:
            names.add(call.targets[0])
        elif call.tail == "wrap_socket" and call.targets:
            names.add(call.targets[0])
    return names


def _looks_like_socket(name: str, sockets: set, in_handler: bool) -> bool:
    if name in sockets:
        return True
    last = name.rsplit(".", 1)[-1].lower()
    if in_handler and name == "self.request":
        return True
    return "sock" in last


def _unbuffered_handles(scope) -> set:
    out = set()
    for call in scope.calls:
        if call.qual in ("builtins.open", "io.open") and call.targets:
            value = call.arg(2, "buffering")
            if value is not None and getattr(value, "value", None) == "0":
                out.add(call.targets[0])
    return out


_name_uses = None  # the visitor class, made once libcst is loaded


def _uses(node) -> set:
    """Every name used in a node's subtree."""
    global _name_uses
    if _name_uses is None:
        class _NameUses(cst.CSTVisitor):
            def __init__(self):
                self.names = set()

            def visit_Name(self, node):
                self.names.add(node.value)

        _name_uses = _NameUses
    visitor = _name_uses()
    node.visit(visitor)
    return visitor.names


def _loop_assigned(facts: Facts, loop, scope) -> set:
    names = set()
    if isinstance(loop.node, cst.For):
        names |= _uses(loop.node.target)
    for _, targets, value in scope.assigns:
        if _inside(facts, value, loop.node):
            names.update(t.split(".")[0] for t in targets)
    return names


def _same_payload_every_time(facts: Facts, call: CallSite, loop, body) -> bool:
    """`while True: sock.send(data)` until BlockingIOError fills a buffer on purpose (tests do);
    output loops send something different each time."""
    varying = _loop_assigned(facts, loop, call.scope)
    if call.tail == "flush":
        writes = [c for c in body if c.tail in ("write", "writelines") and c.receiver is not None
                  and facts.key(c.receiver) == facts.key(call.receiver)]
        payloads = [c.arg(0) for c in writes]
    else:
        payloads = [call.arg(1) if call.qual == "os.write" else call.arg(0)]
    if not payloads or any(p is None for p in payloads):
        return False
    return all(not (_uses(p) & varying) for p in payloads)


def _target_made_in_loop(facts: Facts, call: CallSite, loop) -> bool:
    """A socket, fd or file made afresh in each iteration gets one write each: nothing to batch."""
    if call.qual == "os.write":
        target = call.arg(0)
    elif call.qual == "builtins.print":
        target = call.keyword("file")
    else:
        target = call.receiver
    if target is None:
        return False
    name = facts.key(target)
    if isinstance(loop.node, (cst.For,)) and name in _names(facts, loop.node.target):
        return True
    for _, targets, value in call.scope.assigns:
        if name in targets and _inside(facts, value, loop.node):
            return True
    return False


def _names(facts: Facts, node) -> set:
    if isinstance(node, (cst.Tuple, cst.List)):
        return {n for e in node.elements for n in _names(facts, e.value)}
    return {facts.key(node)}


def _inside(facts: Facts, node, outer) -> bool:
    return facts.within(node, outer)


def _is_async_for(loop) -> bool:
    """`async for message in websocket:` awaits input on every iteration: a receive loop."""
    return isinstance(loop.node, cst.For) and loop.node.asynchronous is not None


def _streams_chunks(facts: Facts, call: CallSite, loop, body) -> bool:
    """A flush after writing slices of one big buffer, or after writing each `chunk` of a stream:
    the writer streams large pieces and flushes for back-pressure, which is the point."""
    if call.tail != "flush":
        return False
    writes = [c for c in body if c.tail in ("write", "writelines") and c.receiver is not None
              and facts.key(c.receiver) == facts.key(call.receiver)]
    if any(_is_sliced(c.arg(0)) for c in writes):
        return True
    if isinstance(loop.node, cst.For):
        names = {n.rsplit(".", 1)[-1].lower() for n in _names(facts, loop.node.target)}
        return any(word in name for name in names for word in CHUNK_WORDS)
    return False


def _is_sliced(data) -> bool:
    return isinstance(data, cst.Subscript) and any(isinstance(e.slice, cst.Slice) for e in data.slice)


def _is_partial_write_loop(facts: Facts, call: CallSite, loop) -> bool:
    """`n = os.write(fd, data)` uses the count to retry; `write(data[i:i+n])` chunks one big buffer,
    also through a local (`piece = data[off:off + size]; sock.send(piece)`)."""
    if call.targets:
        return True
    data = call.arg(1) if call.qual == "os.write" else call.arg(0)
    if _is_sliced(data):
        return True
    if not isinstance(data, cst.Name):
        return False
    return any(data.value in targets and _is_sliced(value) and _inside(facts, value, loop.node)
               for _, targets, value in call.scope.assigns)


def _streams_an_iterable_body(facts: Facts, call: CallSite, loop) -> bool:
    """`for piece in body: sock.sendall(piece)` where the same function also writes `body` whole
    (`if isinstance(body, bytes): sock.sendall(body) else: for piece in body: ...`): the loop is the
    path for a body that is a stream (a generator, an iterator of frames), which joining would have
    to hold in memory; one write per piece is the streaming contract."""
    if not isinstance(loop.node, cst.For):
        return False
    iterated = facts.key(loop.node.iter)
    for other in call.scope.calls:
        if other.loop is not None and loop in other.loop.chain():
            continue  # inside this loop
        if not any(word in other.tail for word in WRITE_OR_SEND_WORDS):
            continue
        if any(facts.key(arg.value) == iterated for arg in other.node.args):
            return True
    return False


def _sends_what_a_file_read(facts: Facts, call: CallSite, loop, body) -> bool:
    """SCL401 needs a real file on the read side (sendfile needs a file descriptor: not a TLS memory
    BIO, not any file-like a caller passes) and the bytes read on the send side (not a framed or
    re-encoded message built from them)."""
    reads = [c for c in body if c.tail in FILE_READS and c.receiver is not None
             and _is_real_file(facts, call.scope, facts.key(c.receiver))]
    payload = call.arg(0)
    if not reads or payload is None:
        return False
    if any(payload is read.node for read in reads):
        return True  # sock.sendall(f.read(n))
    carried = {name for read in reads for name in read.targets}
    grew = True
    while grew:  # `block = block.encode()` keeps carrying the bytes read
        grew = False
        for _, targets, value in call.scope.assigns:
            if _inside(facts, value, loop.node) and _uses(value) & carried and not set(targets) <= carried:
                carried |= set(targets)
                grew = True
    return bool(_uses(payload) & carried)


def _is_real_file(facts: Facts, scope, name: str) -> bool:
    """Opened from a path in this function, asked for its file descriptor here, or named like a file."""
    made_by = {id(c.node): c for c in scope.calls}
    for _, targets, value in scope.assigns:
        if name in targets and isinstance(value, cst.Call):
            maker = made_by.get(id(value))
            if maker is not None and (maker.qual in OPENERS or (maker.qual or "").startswith("pathlib.")):
                return True
    if any(c.tail == "fileno" and c.receiver is not None and facts.key(c.receiver) == name for c in scope.calls):
        return True
    last = name.rsplit(".", 1)[-1].lower()
    return last in FILE_NAMES or last.endswith("_file")


def _check(facts: Facts):
    for scope in facts.scopes:
        if not scope.loops:
            continue
        sockets = _socket_names(facts, scope)
        in_handler = scope.cls is not None and any(q in REQUEST_HANDLER_BASES for q in scope.cls.quals)
        unbuffered = _unbuffered_handles(scope)
        for loop in scope.loops:
            body = _all_calls(scope, loop)
            tails = {c.tail for c in body}
            reads_file = any(c.tail in ("read", "readinto", "read1") for c in body)
            # a loop that reads, receives, waits or takes from a queue answers input: the write per
            # iteration is the protocol (telnet's rawq_getchar, read_eager, queue.get_nowait...)
            waits = bool(tails & WAITS) or any(w in t.lower() for t in tails for w in WAIT_WORDS) \
                or _is_async_for(loop)
            datagrams = bool(tails & {"sendto", "recvfrom", "sendmsg"})
            for call in loop.calls:
                if call.loop is not loop:
                    continue
                sends = call.tail in SEND_METHODS and call.receiver is not None and _looks_like_socket(
                    facts.key(call.receiver), sockets, in_handler)
                if sends and reads_file and not any(c.tail in ("recv", "recv_into", "accept") for c in body):
                    if _sends_what_a_file_read(facts, call, loop, body):
                        yield Hit("SCL401", call.node, {"call": call_label(call)})
                    continue
                if waits or datagrams:
                    continue  # datagrams are messages: one send each is the semantics, not a tax
                variant = _per_call_syscall(facts, call, sockets, in_handler, unbuffered, body)
                if variant is None or _is_partial_write_loop(facts, call, loop) or _target_made_in_loop(facts, call, loop):
                    continue
                if _streams_an_iterable_body(facts, call, loop):
                    continue
                if not _same_payload_every_time(facts, call, loop, body) and not _streams_chunks(facts, call, loop, body):
                    yield Hit("SCL201", call.node, {"call": call_label(call),
                                                    "cost_ns": facts.option("SCL201", "syscall-cost-ns")},
                              variant=variant)


def _all_calls(scope, loop: Loop) -> list:
    out = []
    for candidate in scope.loops:
        if loop in candidate.chain():
            out.extend(candidate.calls)
    return out


def _per_call_syscall(facts, call: CallSite, sockets, in_handler, unbuffered, body) -> str | None:
    """Why this call is a syscall each time, as the name of its message in rules/SCL201.toml
    ("" for `python`, else `python-<name>`), or None when it is not."""
    if call.qual == "os.write":
        return ""  # the rule's plain `python` message
    if call.tail in SEND_METHODS and call.receiver is not None and _looks_like_socket(
            facts.key(call.receiver), sockets, in_handler):
        return "send"
    if call.tail in ("write", "writelines") and call.receiver is not None and facts.key(call.receiver) in unbuffered:
        return "unbuffered"
    if call.qual == "builtins.print":
        flush, out = call.keyword("flush"), call.keyword("file")
        # progress output to the terminal flushes on purpose; a file written line by line does not need to
        to_file = out is not None and facts.key(out) not in ("sys.stdout", "sys.stderr", "sys.__stdout__")
        if to_file and flush is not None and getattr(flush, "value", None) == "True":
            return "print-flush"
    if call.tail == "flush" and call.receiver is not None and not call.node.args:
        name = facts.key(call.receiver)
        if name not in ("sys.stdout", "sys.stderr") and any(
                c.tail in ("write", "writelines") and c.receiver is not None and facts.key(c.receiver) == name for c in body):
            return "flush"
    return None
