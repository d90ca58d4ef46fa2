"""A per-connection child picked through a class attribute that subclasses override.

Seen in: plib3.io (ForkingServer/ThreadingServer set `wrapper_class` to ProcessWrapper or
ThreadWrapper, classes of another module whose start() forks or starts a thread; the accept path,
in a base class of a third module, calls `self.start_child`, which builds `self.wrapper_class(...)`
and starts it). Not handled: the project model has no class-attribute values across modules (a
ClassSummary keeps bases and method effects, not what `wrapper_class = X` binds), and the spawn is
three modules away from the class that is reported.
"""
import os
import socket
import threading


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
