"""The APIs the Python rules know, defined once: the rules match qualified names from these sets,
and the gates (text screen, `ast` gate) match the last component of the same names, so a name a
rule can act on is never one the gate drops."""

from __future__ import annotations


def tails(*qualified_sets) -> frozenset:
    """`os.replace` -> `replace`: what the gates can see without resolving imports."""
    return frozenset(q.rsplit(".", 1)[-1] for qs in qualified_sets for q in qs)


# Files: opening for writing, writing, syncing, publishing under another name.
OPENERS = frozenset({"builtins.open", "io.open", "codecs.open", "os.fdopen", "io.FileIO", "aiofiles.open"})
TEMP_MAKERS = frozenset({"tempfile.NamedTemporaryFile", "tempfile.mkstemp"})
PATH_WRITERS = frozenset({"write_text", "write_bytes"})  # Path methods (receiver unresolved)
RENAMES = frozenset({"os.rename", "os.replace", "os.renames", "shutil.move"})
# A hard link publishes a file like a rename when its source name is removed after it.
LINKS = frozenset({"os.link"})
REMOVES = frozenset({"os.remove", "os.unlink"})
# Calls that run a callable they are given (`to_thread(os.replace, a, b)`): the callable's call.
# qualified name or method tail -> index of the callable among the positional arguments
DELEGATORS = {"asyncio.to_thread": 0, "run_in_executor": 1, "submit": 0}
FILE_SYNCS = frozenset({"os.fsync", "os.fdatasync"})
DUMPERS = frozenset({"json.dump", "pickle.dump", "marshal.dump", "yaml.dump", "yaml.safe_dump", "toml.dump",
                     "tomli_w.dump", "shutil.copyfileobj", "csv.writer", "plistlib.dump"})

# Concurrency: servers, threads, processes.
THREADING_SERVERS = frozenset({
    "socketserver.ThreadingMixIn", "socketserver.ThreadingTCPServer", "socketserver.ThreadingUnixStreamServer",
    "http.server.ThreadingHTTPServer", "xmlrpc.server.SimpleXMLRPCServer.ThreadingMixIn",
})
FORKING_SERVERS = frozenset({
    "socketserver.ForkingMixIn", "socketserver.ForkingTCPServer", "socketserver.ForkingUnixStreamServer",
})
# Servers whose requests are datagrams (no accepted connection: SCL301/SCL302 do not apply) and the
# stream servers whose get_request() accepts a connection.
DATAGRAM_SERVERS = frozenset({"socketserver.UDPServer", "socketserver.UnixDatagramServer",
                              "socketserver.ThreadingUDPServer", "socketserver.ForkingUDPServer",
                              "socketserver.ThreadingUnixDatagramServer"})
STREAM_SERVERS = frozenset({"socketserver.TCPServer", "socketserver.UnixStreamServer", "http.server.HTTPServer",
                            "xmlrpc.server.SimpleXMLRPCServer", "wsgiref.simple_server.WSGIServer"})
THREAD_POOLS = frozenset({"concurrent.futures.ThreadPoolExecutor", "concurrent.futures.thread.ThreadPoolExecutor",
                          "multiprocessing.pool.ThreadPool"})
THREAD_STARTERS = frozenset({"threading.Thread", "_thread.start_new_thread", "_thread.start_new",
                             "threading._start_new_thread"})
FORKERS = frozenset({"os.fork", "os.forkpty", "multiprocessing.Process", "multiprocessing.context.Process"})
# Classes whose instances are a thread or a process: a call of one of them, or of a subclass
# (local, imported from the project, or reached as a class attribute), is that spawn.
THREAD_CLASSES = frozenset({"threading.Thread"})
PROCESS_CLASSES = frozenset({"multiprocessing.Process", "multiprocessing.context.Process"})
# socketserver-style request handlers: the server makes one per accepted connection and runs its
# setup() and handle() once (a thread or process started there is one per connection). Datagram
# handlers run per datagram: no connection is held.
REQUEST_HANDLERS = frozenset({
    "socketserver.BaseRequestHandler", "socketserver.StreamRequestHandler",
    "http.server.BaseHTTPRequestHandler", "http.server.SimpleHTTPRequestHandler",
    "http.server.CGIHTTPRequestHandler", "wsgiref.simple_server.WSGIRequestHandler",
    "xmlrpc.server.SimpleXMLRPCRequestHandler",
})
CONNECTION_HOOKS = ("setup", "handle")  # handler methods that run once per accepted connection
# Calls that make or hand on a class: `type(name, bases, ns)` builds one, `partial(cls, ...)` defers
# its instantiation.
CLASS_BUILDERS = frozenset({"builtins.type"})
PARTIALS = frozenset({"functools.partial"})
# A multiprocessing context (`ctx = multiprocessing.get_context("fork")`): its `.Process` forks.
MP_CONTEXTS = frozenset({"multiprocessing.get_context", "multiprocessing.context.get_context"})
RAW_FORKS = frozenset({"os.fork", "os.forkpty"})
# Methods a server framework calls once per accepted connection (asyncore, socketserver, pyftpdlib).
ACCEPT_CALLBACKS = frozenset({"handle_accepted", "handle_accept", "on_accepted", "process_request",
                              "get_request", "_accept_method"})

# Shared memory, and the primitives that order a protocol over it.
SHARED_FACTORIES = frozenset({
    "multiprocessing.shared_memory.SharedMemory", "multiprocessing.shared_memory.ShareableList",
    "mmap.mmap", "multiprocessing.RawValue", "multiprocessing.RawArray",
    "multiprocessing.sharedctypes.RawValue", "multiprocessing.sharedctypes.RawArray",
})
LOCKABLE_SHARED = frozenset({"multiprocessing.Value", "multiprocessing.Array", "multiprocessing.sharedctypes.Value",
                             "multiprocessing.sharedctypes.Array"})
# A call with one of these names in the polling function means a primitive takes part in the protocol.
# (Not to be confused with FILE_SYNCS: this is inter-process ordering, not durability.)
PROTOCOL_TAILS = frozenset({"acquire", "release", "wait", "wait_for", "notify", "notify_all", "get_lock", "get",
                            "put", "recv", "send", "poll", "Lock", "RLock", "Event", "Condition", "Semaphore",
                            "BoundedSemaphore", "Barrier", "Queue", "SimpleQueue", "JoinableQueue", "Pipe", "set",
                            "is_set"})

# What the `ast` gate matches (last name components of the sets above).
RENAME_TAILS = tails(RENAMES, LINKS)
OPEN_TAILS = tails(OPENERS, TEMP_MAKERS) | PATH_WRITERS
FILE_SYNC_TAILS = tails(FILE_SYNCS)
SERVER_TAILS = tails(THREADING_SERVERS, FORKING_SERVERS)
SPAWNER_TAILS = tails(THREAD_STARTERS, FORKERS)
SPAWNER_CLASS_TAILS = tails(THREAD_CLASSES, PROCESS_CLASSES)
HANDLER_TAILS = tails(REQUEST_HANDLERS)
THREAD_TAILS = tails(THREAD_STARTERS, THREAD_POOLS)
SHARED_TAILS = tails(SHARED_FACTORIES, LOCKABLE_SHARED)
ALL_TAILS = RENAME_TAILS | OPEN_TAILS | FILE_SYNC_TAILS | SERVER_TAILS | SPAWNER_TAILS | THREAD_TAILS | SHARED_TAILS
# Modules the rules' names live in: `_os = os` makes `_os.replace` the rename.
RULE_MODULES = frozenset({"os", "posix", "nt", "shutil", "socketserver", "multiprocessing", "threading", "_thread",
                          "tempfile", "mmap", "io", "codecs"})


def aliasable(qual: str) -> bool:
    """A module-level binding the rules follow: to a name they know, or to a module they use."""
    return qual in RULE_MODULES or qual.rsplit(".", 1)[-1] in ALL_TAILS

# SCL501: what a parameter annotation names when the object is shared memory (`shm: SharedMemory`).
SHARED_ANNOTATIONS = frozenset({"multiprocessing.shared_memory.SharedMemory",
                                "multiprocessing.shared_memory.ShareableList", "mmap.mmap"})
# Attributes of a SharedMemory/mmap object that are the Python object's own state, not a load from
# the mapped memory (`while not region.closed`).
OBJECT_STATE_ATTRS = frozenset({"closed", "name", "size"})
