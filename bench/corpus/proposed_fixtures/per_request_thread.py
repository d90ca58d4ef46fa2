"""A thread per request read from one connection (a multiplexing protocol such as FastCGI).

Seen in: Trac (web/_fcgi.py: a multiplexed FastCGI connection reads records in a loop and
starts `_thread.start_new_thread(req.run, ())` for every request that begins on it; the accept
loop that made the connection is reported separately and is found). Not handled, and maybe not
meant to be: the rules look for accept() followed by a spawn, and here no accept() is near. It is
a thread per request on a stream, as unbounded as a thread per connection. Rule owners: decide
whether SCL301 covers it; if not, flip the Trac label and drop this fixture. The look-alike hands
each request to a fixed pool.
"""
import _thread
from concurrent.futures import ThreadPoolExecutor

POOL = ThreadPoolExecutor(max_workers=4)


class MultiplexedConnection:
    def __init__(self, stream):
        self.stream = stream

    def next_request(self):
        line = self.stream.readline()
        return line.strip() or None

    def answer(self, request):
        self.stream.write(request[::-1] + b"\n")

    def run(self):
        while True:
            request = self.next_request()
            if request is None:
                break
            _thread.start_new_thread(self.answer, (request,))  # expect: SCL301


class PooledConnection(MultiplexedConnection):
    def run(self):
        while True:
            request = self.next_request()
            if request is None:
                break
            POOL.submit(self.answer, request)
