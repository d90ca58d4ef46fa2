"""A thread per connection started as an instance of a `threading.Thread` subclass.

Seen in: pynetdicom (transport.py: the socketserver request handler of every accepted connection
builds an `Association`, a Thread subclass of another module, and calls its start(); the server
itself is a plain TCPServer subclass, so no mixin shows the thread), pwntools (tubes/server.py:
the accept loop starts `context.Thread(...)`, a Thread subclass reached as a class attribute of a
settings object). Not handled: only `threading.Thread(...)` itself (and its module aliases) counts
as a spawn; a class whose bases lead to threading.Thread does not, nor does a thread started in a
socketserver handler's handle(), which runs once per accepted connection.
"""
import socket
import socketserver
import threading


class Session(threading.Thread):
    def __init__(self, conn):
        super().__init__(daemon=True)
        self.conn = conn

    def run(self):
        self.conn.sendall(self.conn.recv(1024))
        self.conn.close()


class Settings:
    Worker = Session


settings = Settings()


def serve_sessions(listener: socket.socket):
    while True:
        conn, _ = listener.accept()
        Session(conn).start()  # expect: SCL301


def serve_through_settings(listener: socket.socket):
    while True:
        conn, _ = listener.accept()
        worker = settings.Worker(conn)  # expect: SCL301
        worker.start()


class SessionHandler(socketserver.BaseRequestHandler):
    def handle(self):
        session = Session(self.request)
        session.start()  # expect: SCL301


class SessionServer(socketserver.TCPServer):
    allow_reuse_address = True


class Poller(threading.Thread):
    """Look-alike: one Thread subclass started once, next to a serial accept loop."""

    def __init__(self, listener):
        super().__init__(daemon=True)
        self.listener = listener

    def run(self):
        while True:
            conn, _ = self.listener.accept()
            conn.sendall(b"busy\n")
            conn.close()


def start_poller(listener: socket.socket) -> Poller:
    poller = Poller(listener)
    poller.start()
    return poller
