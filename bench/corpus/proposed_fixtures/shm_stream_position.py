"""A reader catches up with a writer through a position counter kept in SharedMemory.

Seen in: UltraDict apply_update (memoryview slices of the control block stored on self).
"""
from multiprocessing import shared_memory


class StreamReader:
    def __init__(self, name):
        self.ctl = shared_memory.SharedMemory(name=name + "-ctl")
        self.data = shared_memory.SharedMemory(name=name + "-data")
        self.head_view = self.ctl.buf[0:4]
        self.seen = 0

    def catch_up(self):
        out = []
        while self.seen < int.from_bytes(self.head_view, "little"):  # expect: SCL501
            size = self.data.buf[self.seen]
            out.append(bytes(self.data.buf[self.seen + 1:self.seen + 1 + size]))
            self.seen += 1 + size
        return out


class LockedStreamReader(StreamReader):
    def __init__(self, name, lock):
        super().__init__(name)
        self.lock = lock

    def catch_up(self):
        with self.lock:
            return super().catch_up()
