"""socketserver reached through a compat shim, and ForkingMixIn bound through an alias.

Seen in: impacket smbserver and PyWebDAV3 (six.moves), dnslib (try/except ImportError fallback\nto the Python 2 module name), werkzeug (ForkingMixIn alias).
"""
import socketserver as _ss

from six.moves import socketserver

try:
    import socketserver as compat_ss
except ImportError:
    import SocketServer as compat_ss

try:
    Forker = _ss.ForkingMixIn
except AttributeError:
    class Forker:
        pass


class ShimThreadedServer(socketserver.ThreadingMixIn, socketserver.TCPServer):  # expect: SCL301
    pass


class AliasForkingServer(Forker, _ss.TCPServer):  # expect: SCL302
    pass


class FallbackImportServer(compat_ss.ThreadingMixIn, compat_ss.TCPServer):  # expect: SCL301
    pass


class PlainServer(_ss.TCPServer):
    pass
