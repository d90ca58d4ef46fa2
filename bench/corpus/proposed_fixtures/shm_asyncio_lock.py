"""An asyncio.Lock orders coroutines of one process, not another process's reads.

The sender spins until the peer clears a ready byte in shared memory, then overwrites the
payload; the asyncio lock around it cannot order the peer. Seen in: humr-ipc (send_async).
"""
import asyncio
from multiprocessing import shared_memory

FLAG = 255


class Sender:
    def __init__(self, name):
        self.block = shared_memory.SharedMemory(name=name)
        self.lock = asyncio.Lock()

    async def send(self, payload: bytes):
        async with self.lock:
            while self.block.buf[FLAG] == 1:  # expect: SCL501
                await asyncio.sleep(0.001)
            self.block.buf[: len(payload)] = payload
            self.block.buf[FLAG] = 1


class LockedSender:
    # look-alike: a multiprocessing lock shared with the peer orders both sides
    def __init__(self, name, lock):
        self.block = shared_memory.SharedMemory(name=name)
        self.lock = lock

    async def send(self, payload: bytes):
        while True:
            with self.lock:
                if self.block.buf[FLAG] == 0:
                    self.block.buf[: len(payload)] = payload
                    self.block.buf[FLAG] = 1
                    return
            await asyncio.sleep(0.001)
