"""Thread per connection through a helper, a subclass factory, or a per-event accept handler.

Seen in: rpyc ThreadedServer (spawn helper), proxy.py (start_threaded_work in another module),
pyftpdlib ThreadedFTPServer/MultiprocessFTPServer (_start_task override), Pyro5 blob example.
"""
import multiprocessing
import os
import selectors
import threading


def run_detached(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


class BaseListener:
    def __init__(self, sock):
        self.sock = sock

    def serve(self):
        while True:
            conn, _ = self.sock.accept()
            self.dispatch(conn)

    def dispatch(self, conn):
        raise NotImplementedError

    def talk(self, conn):
        conn.close()


class HelperThreadListener(BaseListener):
    def dispatch(self, conn):
        run_detached(self.talk, conn)  # expect: SCL301


class ForkListener(BaseListener):
    def dispatch(self, conn):
        if os.fork() == 0:  # expect: SCL302
            self.talk(conn)
            os._exit(0)
        conn.close()


class InlineListener(BaseListener):
    def dispatch(self, conn):
        self.talk(conn)


class TaskFactoryBase:
    def task(self, **kw):
        raise NotImplementedError

    def on_accepted(self, conn):
        self.task(target=conn.close).start()


class ThreadTasks(TaskFactoryBase):
    def task(self, **kw):
        return threading.Thread(**kw)  # expect: SCL301


class ProcessTasks(TaskFactoryBase):
    def task(self, **kw):
        return multiprocessing.Process(**kw)  # expect: SCL302


class EventHandlers:
    def __init__(self, listener):
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ)

    def loop(self):
        while True:
            for _key, _mask in self.sel.select():
                self.on_readable()

    def on_readable(self):
        conn, _ = self.listener.accept()
        t = threading.Thread(target=conn.close, daemon=True)  # expect: SCL301
        t.start()
