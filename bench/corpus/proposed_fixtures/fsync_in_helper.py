"""Durable data through a helper, then a rename with no directory fsync (SCL102).

Seen in: stdlib mailbox (_sync_close), pip (adjacent_tmp_file in another module).
"""
import contextlib
import os
import tempfile


def _flush_to_disk(stream):
    stream.flush()
    os.fsync(stream.fileno())


def deliver(spool_dir, name, payload):
    tmp = open(os.path.join(spool_dir, "tmp", name), "wb")
    tmp.write(payload)
    _flush_to_disk(tmp)
    tmp.close()
    os.rename(tmp.name, os.path.join(spool_dir, "new", name))  # expect: SCL102


@contextlib.contextmanager
def sibling_temp(path):
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def save_state(path, blob):
    with sibling_temp(path) as f:
        f.write(blob)
    os.replace(f.name, path)  # expect: SCL102


def save_state_fully(path, blob):
    with sibling_temp(path) as f:
        f.write(blob)
    os.replace(f.name, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
