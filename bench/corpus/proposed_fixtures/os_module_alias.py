"""os reached under another name (the import system binds it as _os).

Seen in: the stdlib importlib bytecode writer.
"""
import io as _io
import os as _os


def write_cached(path, data):
    scratch = "{}.{}".format(path, id(path))
    fd = _os.open(scratch, _os.O_EXCL | _os.O_CREAT | _os.O_WRONLY, 0o644)
    with _io.FileIO(fd, "wb") as out:
        out.write(data)
    _os.replace(scratch, path)  # expect: SCL101
