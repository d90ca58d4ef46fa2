"""Waiting on a mmap object's own attribute reads no shared memory.

Seen in: ndsharray (_close_mmap waits for `not _mmap.closed` after close(); the map comes from a
helper that returns (mmap, fd) and is kept on self). The analyser reports the loop today: the
parameter has the same name as the local that holds the map in _open, and reading an attribute
of the mmap object is taken as a load from the mapped memory.
"""
import mmap
import os
import time
from typing import Optional


class SharedRegion:
    def __init__(self, name, size):
        self.region, self.fd = self._open(name, size)

    @staticmethod
    def _open(name, size):
        fd = os.open("/dev/shm/" + name, os.O_CREAT | os.O_RDWR)
        os.truncate("/dev/shm/" + name, size)
        region = mmap.mmap(fd, size, mmap.MAP_SHARED)
        return region, fd

    @staticmethod
    def _release(region: Optional[mmap.mmap], fd: Optional[int]) -> None:
        if region is not None:
            region.close()
            while not region.closed:  # look-alike: a Python attribute of the mmap object
                time.sleep(0.001)
        if fd is not None:
            os.close(fd)

    def close(self):
        self._release(self.region, self.fd)
