"""A writer object: temp file opened in __init__, written by callers, renamed in close().

Seen in: getmail6 updatefile, dulwich GitFile, safer, fsspec LocalFileOpener.commit.
"""
import os


class PlainSwapWriter:
    def __init__(self, target):
        self.target = target
        self.scratch = target + ".new"
        self.fh = open(self.scratch, "w")

    def write(self, text):
        self.fh.write(text)

    def close(self):
        self.fh.close()
        os.replace(self.scratch, self.target)  # expect: SCL101


class SyncedSwapWriter:
    def __init__(self, target):
        self.target = target
        self.scratch = target + ".new"
        self.fh = open(self.scratch, "w")

    def write(self, text):
        self.fh.write(text)

    def close(self):
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.rename(self.scratch, self.target)  # expect: SCL102


class DurableSwapWriter(SyncedSwapWriter):
    def close(self):
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.rename(self.scratch, self.target)
        dfd = os.open(os.path.dirname(self.target) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
