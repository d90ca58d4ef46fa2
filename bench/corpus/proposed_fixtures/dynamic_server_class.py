"""A per-connection server class made at run time: with type(), or picked into a variable.

Seen in: Django (core/servers/basehttp.py: runserver's threading mode builds its server class as
`type(name, (socketserver.ThreadingMixIn, server_cls), {})`), fastcgi (decorator.py: the
server class is chosen by a conditional expression between a local ForkingMixIn class and
socketserver.ForkingTCPServer, then instantiated through functools.partial). Not handled: a
class is recognised by a `class` statement or a direct call of a known server class; neither a
bases tuple passed to type() nor a class held in a variable is followed. A type() call without
a mixin is the look-alike; the `class` statement (found today) is marked too.
"""
import socketserver
from functools import partial
from wsgiref.simple_server import WSGIServer


class ForkingLocalServer(socketserver.ForkingMixIn, socketserver.UnixStreamServer):  # expect: SCL302
    pass


def server_class(threaded: bool):
    if threaded:
        return type("DevServer", (socketserver.ThreadingMixIn, WSGIServer), {})  # expect: SCL301
    return type("DevServer", (WSGIServer,), {})


def serve(address, handler):
    kind = ForkingLocalServer if isinstance(address, str) else socketserver.ForkingTCPServer  # expect: SCL302
    make = partial(kind, address, handler)
    with make() as srv:
        srv.serve_forever()
