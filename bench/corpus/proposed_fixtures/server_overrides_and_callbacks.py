"""Per-connection spawns that the accept path reaches in ways the analyser does not follow yet.

Seen in: websockify (LibProxyServer overrides process_request to count, then calls super()),
mercurial (chg's command server registers its accept method as the selector key's data and the
loop calls `key.data(...)`; that callback forks per connection — a handler the loop calls by
name is already followed, one stored in the key is not), plib3.io (ForkingServer/ThreadingServer pick the per-connection child
through a wrapper_class attribute whose start() forks or starts a thread).
"""
import os
import selectors
import socket
import threading
from http.server import HTTPServer
from socketserver import ThreadingMixIn


class CountingServer(ThreadingMixIn, HTTPServer):  # expect: SCL301
    def process_request(self, request, client_address):
        self.handled = getattr(self, "handled", 0) + 1
        super().process_request(request, client_address)


class SerialServer(ThreadingMixIn, HTTPServer):
    # look-alike: the override handles the request inline and never calls the mixin
    def process_request(self, request, client_address):
        self.finish_request(request, client_address)
        self.shutdown_request(request)


class CommandService:
    def __init__(self, path):
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(16)

    def run(self):
        picker = selectors.DefaultSelector()
        picker.register(self.listener, selectors.EVENT_READ, self._on_connect)
        while True:
            for key, _ in picker.select(timeout=1.0):
                key.data(key.fileobj)

    def _on_connect(self, listener):
        conn, _ = listener.accept()
        child = os.fork()  # expect: SCL302
        if child == 0:
            self._serve(conn)
            os._exit(0)
        conn.close()

    def _serve(self, conn):
        conn.sendall(conn.recv(1024))


class ChildRunner:
    def __init__(self, work):
        self.work = work


class ForkRunner(ChildRunner):
    def start(self):
        if os.fork() == 0:
            self.work()
            os._exit(0)


class ThreadRunner(ChildRunner):
    def start(self):
        threading.Thread(target=self.work, daemon=True).start()


class InlineRunner(ChildRunner):
    def start(self):
        self.work()


class BlockingServer:
    runner_class = InlineRunner

    def __init__(self, address):
        self.listener = socket.create_server(address)

    def serve(self):
        while True:
            conn, _ = self.listener.accept()
            self.runner_class(lambda: self.handle(conn)).start()

    def handle(self, conn):
        conn.sendall(conn.recv(1024))
        conn.close()


class ForkingBlockingServer(BlockingServer):  # expect: SCL302
    runner_class = ForkRunner


class ThreadingBlockingServer(BlockingServer):  # expect: SCL301
    runner_class = ThreadRunner
