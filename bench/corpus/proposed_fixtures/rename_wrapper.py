"""The rename goes through a project wrapper or an alias of os.replace.

Seen in: boltons atomic_rename, pip `from ..filesystem import replace`, jupyter_server replace_file.
"""
import functools
import os


def _retrying(fn):
    @functools.wraps(fn)
    def again(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PermissionError:
            return fn(*args, **kwargs)
    return again


swap_in = _retrying(os.replace)


def move_over(src, dst):
    os.rename(src, dst)


def publish(path, text):
    part = path + ".part"
    with open(part, "w") as f:
        f.write(text)
    move_over(part, path)  # expect: SCL101


def publish_synced(path, text):
    part = path + ".part"
    with open(part, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    swap_in(part, path)  # expect: SCL102
