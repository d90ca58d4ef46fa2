"""A mixin bound to a name from an attribute of a module alias that is itself a plain name.

Seen in: mercurial (hgweb/server.py: `socketserver = util.socketserver`, where util re-exports
pycompat's `import socketserver`; then `_mixin = socketserver.ThreadingMixIn` in a try block, and
`class MercurialHTTPServer(_mixin, ...)`). Each step alone is followed today — a base written
`socketserver.ThreadingMixIn` through the alias, or `_mixin` bound from the real module — but not
the two together. One-file version: the alias is made with an assignment instead of an import
from the compat module.
"""
import http.server
import socketserver as _stdlib_socketserver

socketserver = _stdlib_socketserver  # what `socketserver = util.socketserver` amounts to

try:
    import threading

    threading.active_count()
    _mixin = socketserver.ThreadingMixIn
except ImportError:
    _mixin = socketserver.ForkingMixIn


class RepoHTTPServer(_mixin, http.server.HTTPServer):  # expect: SCL301
    daemon_threads = True


class PlainRepoHTTPServer(http.server.HTTPServer):
    # look-alike: serves one request at a time
    pass
