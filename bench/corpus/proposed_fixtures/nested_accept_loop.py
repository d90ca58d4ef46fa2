"""accept() retried in an inner loop; the thread per connection is started in the outer loop.

Seen in: pwntools (tubes/server.py: an inner `while True` retries accept() on EINTR and breaks
out with the socket; the outer loop then wraps it and starts a thread for the callback, once per
connection). Not handled: the rule looks for the spawn in the same loop body as the accept; here
the accept is in a nested loop that the spawn follows. The look-alike (tubes/listen.py) accepts
once in the same retry shape and starts no thread per connection.
"""
import errno
import socket
import threading


def serve_with_retry(listener: socket.socket, callback):
    while True:
        while True:
            try:
                conn, _ = listener.accept()
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
        worker = threading.Thread(target=callback, args=(conn,), daemon=True)  # expect: SCL301
        worker.start()


def accept_once(listener: socket.socket):
    while True:
        try:
            conn, _ = listener.accept()
            break
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
    listener.close()
    return conn


def wait_in_background(listener: socket.socket, done):
    waiter = threading.Thread(target=lambda: done(accept_once(listener)), daemon=True)
    waiter.start()
    return waiter
