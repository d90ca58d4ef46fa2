"""syscall-lint's start-up shim for `record -- python3 ...`: tag syscalls with the Python lines behind them.

`record` puts this folder first on PYTHONPATH, so every Python process of the recorded program (and of
its subprocesses) imports it at start-up. Just before a call the rules care about, the shim makes one
harmless, failing open whose path names the call and the Python lines that made it:

    openat(AT_FDCWD, "/@scl1@/rename@/app/store.py:41|/app/main.py:9", O_RDONLY|O_CLOEXEC) = -1 ENOENT

strace records it in the same thread, right before the real call; paths are never truncated, and
`record` always traces openat (the fd tracker needs it), so the trace carries its own source map.
A read-only open of a path that does not exist creates nothing and writes nothing, which is why this
channel is used rather than writes to an extra descriptor (a program that closes and reuses
descriptors could receive our bytes).

What is tagged, and how:
- file opens for writing, renames/replaces and forks through audit hooks (PEP 578): the interpreter
  raises `open`, `os.rename` (also for os.replace) and `os.fork` itself, so nothing is patched;
- fsync/fdatasync, socket accept and thread start have no audit event: thin wrappers around
  `os.fsync`, `os.fdatasync`, `socket.socket.accept` and `threading.Thread.start` tag, then call the
  original with the same arguments and return its result or raise its exception.
The shim then removes its folder from sys.path and runs the sitecustomize it hid, if any.
"""

import os
import sys
import threading

_PREFIX = "/@scl1@/"
_MAX_FRAMES = 4
_open = os.open
_close = os.close
_MARK_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
_local = threading.local()
_here = os.path.dirname(os.path.abspath(__file__))


def _library_roots():
    import sysconfig

    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            roots.add(os.path.realpath(sysconfig.get_paths()[key]))
        except (KeyError, OSError):
            pass
    return tuple(sorted(r + os.sep for r in roots if r))


_LIBRARY = _library_roots()
_user_cache = {}


def _is_user(filename):
    hit = _user_cache.get(filename)
    if hit is None:
        real = os.path.realpath(filename) if not filename.startswith("<") else filename
        hit = _user_cache[filename] = not (filename.startswith("<") or real.startswith(_LIBRARY)
                                           or real.startswith(_here))
    return hit


def _quote(text):
    out = []
    for ch in text:
        if ch in '%|@#"\\' or not (" " < ch < "\x7f"):
            out.extend("%%%02X" % b for b in ch.encode("utf-8", "surrogateescape"))
        else:
            out.append(ch)
    return "".join(out)


_class_lines = {}


def _class_location(obj):
    """(file, line) of the class of `obj` when the program defines it, else None."""
    cls = type(obj)
    key = (cls.__module__, cls.__qualname__)
    if key in _class_lines:
        return _class_lines[key]
    found = None
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    if filename and _is_user(filename):
        line = getattr(cls, "__firstlineno__", None)
        if line is None:
            line = _find_class_line(filename, cls.__qualname__)
        if line:
            found = (os.path.abspath(filename), line)
    _class_lines[key] = found
    return found


def _find_class_line(filename, qualname):
    import ast

    try:
        with open(filename, "rb") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return None
    nodes, parts = [tree], qualname.split(".")
    for part in parts:
        nodes = [n for parent in nodes for n in getattr(parent, "body", ())
                 if isinstance(n, ast.ClassDef) and n.name == part]
        if not nodes:
            return None
    return nodes[0].lineno


def _tag(event, skip=2):
    """Make the marker syscall for `event`, naming the program's own frames (innermost first)."""
    if getattr(_local, "busy", False):
        return
    _local.busy = True
    try:
        frame = sys._getframe(skip)
        frames, owner, first = [], None, None
        while frame is not None and len(frames) < _MAX_FRAMES:
            code = frame.f_code
            if first is None:
                first = (code.co_filename, frame.f_lineno)
            if _is_user(code.co_filename):
                frames.append((os.path.abspath(code.co_filename), frame.f_lineno))
            elif owner is None and "self" in code.co_varnames[:1]:
                owner = _class_location(frame.f_locals.get("self"))
            frame = frame.f_back
        if not frames and first is not None and owner is None:
            frames.append(first)  # no frame of the program's own: say at least where it happened
        text = _PREFIX + event + "@" + "|".join("%s:%d" % (_quote(f), n) for f, n in frames)
        if owner:
            text += "#%s:%d" % (_quote(owner[0]), owner[1])
        try:
            _close(_open(text[:4000], _MARK_FLAGS))  # never succeeds unless someone made /@scl1@/
        except (OSError, ValueError):
            pass
    except Exception:  # the shim must never change what the program does
        pass
    finally:
        _local.busy = False


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | getattr(os, "O_APPEND", 0) | getattr(os, "O_TRUNC", 0)
_AUDITED = frozenset({"open", "os.rename", "os.fork"})


def _audit(event, args):
    if event not in _AUDITED:
        return
    if event == "open":
        mode, flags = args[1], args[2]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags > 0 and flags & _WRITE_FLAGS)
        if writing:
            _tag("open", 2)
    elif event == "os.rename":
        _tag("rename", 2)
    else:
        _tag("fork", 2)


def _wrap(owner, name, event):
    import functools

    original = getattr(owner, name, None)
    if original is None or getattr(original, "__scl_wrapped__", False):
        return

    @functools.wraps(original)
    def tagged(*args, **kwargs):
        _tag(event, 2)
        return original(*args, **kwargs)

    tagged.__scl_wrapped__ = True
    setattr(owner, name, tagged)


def _install():
    sys.addaudithook(_audit)
    _wrap(os, "fsync", "fsync")
    _wrap(os, "fdatasync", "fsync")
    import socket

    _wrap(socket.socket, "accept", "accept")
    _wrap(threading.Thread, "start", "thread")


def _chain():
    """Leave sys.path as the program expects it and run the sitecustomize this one shadowed."""
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("sitecustomize", sys.path)
    if spec is not None and spec.loader is not None and os.path.dirname(spec.origin or "") != _here:
        module = type(sys)("sitecustomize")
        module.__file__ = spec.origin
        spec.loader.exec_module(module)
        sys.modules["sitecustomize"] = module


if os.environ.get("SYSCALL_LINT_SOURCEMAP") == "1":
    _install()
_chain()
