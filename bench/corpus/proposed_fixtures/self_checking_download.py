"""Published files whose loss in a crash costs nothing.

Seen in: mercurial contrib/packaging (download_to_path: an existing file is kept only if its size
and sha256 match, else it is removed and fetched again; the download goes to a .tmp name and is
renamed) and mercurial posix.checkexec (an mkstemp file is closed at once, its mode probed, and
renamed to a marker name: no data is ever written to it).
"""
import hashlib
import os
import pathlib
import tempfile


def digest(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def fetch_to(path: pathlib.Path, chunks, size: int, sha256: str):
    if path.exists():
        if path.stat().st_size == size and digest(path) == sha256:
            return
        path.unlink()
    partial = path.with_name(path.name + ".tmp")
    with partial.open("wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
    partial.rename(path)  # look-alike: verified by size and hash before every reuse


def exec_bit_marker(folder: str, marker: str) -> bool:
    fd, probe = tempfile.mkstemp(dir=folder, prefix="probe-")
    os.close(fd)
    os.chmod(probe, 0o755)
    if os.stat(probe).st_mode & 0o111:
        os.rename(probe, marker)  # look-alike: an empty file; only its name and mode matter
        return True
    os.unlink(probe)
    return False


def save_notes(folder: str, text: str, target: str):
    fd, tmp = tempfile.mkstemp(dir=folder)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.rename(tmp, target)  # expect: SCL101
