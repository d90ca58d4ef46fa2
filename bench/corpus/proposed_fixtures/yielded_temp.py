"""A context manager hands the temp file to the caller (the writes are in the caller), then
replaces the target.  The temp file is made by os.open with its flags held in a variable,
so nothing at the os.open call itself says "opened for writing".

Seen in: huggingface_hub _sandbox (os.open + fdopen + yield), requests/fsspec atomic helpers.
"""
import contextlib
import os


@contextlib.contextmanager
def staged_output(target):
    part = target + ".part"
    how = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(part, how, 0o600)
    with os.fdopen(fd, "wb") as f:
        yield f
    os.replace(part, target)  # expect: SCL101


@contextlib.contextmanager
def staged_output_synced(target):
    part = target + ".part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, target)
    dfd = os.open(os.path.dirname(target) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
