"""A numpy view of a shared header, made by a helper, polled by a ring-buffer producer and by a
generic poll helper given a callback.

Seen in: shm-comm (get_header() in core.py returns np.ndarray over SharedMemory.buf; the
producer spins on the consumer's tail; poll_until() spins on a callback that reads the head).
"""
import time
from multiprocessing import shared_memory

import numpy as np

HEAD, TAIL, SLOTS = 0, 1, 2


def header_of(block):
    return np.ndarray((4,), dtype=np.int64, buffer=block.buf)


def put(block, payload: bytes, slot_size: int):
    hdr = header_of(block)
    while True:  # expect: SCL501
        head, tail = int(hdr[HEAD]), int(hdr[TAIL])
        if (head + 1) % int(hdr[SLOTS]) != tail:
            break
        time.sleep(0.00005)
    start = 32 + head * slot_size
    block.buf[start : start + len(payload)] = payload
    hdr[HEAD] = (head + 1) % int(hdr[SLOTS])


def take(block, cursor: int, slot_size: int):
    hdr = header_of(block)
    if cursor == int(hdr[HEAD]):
        return None
    start = 32 + cursor * slot_size
    return bytes(block.buf[start : start + slot_size]), (cursor + 1) % int(hdr[SLOTS])


def poll_until(check, interval=0.0001):
    while True:  # expect: SCL501
        got = check()
        if got is not None:
            return got
        time.sleep(interval)


def receive(name, cursor, slot_size):
    block = shared_memory.SharedMemory(name=name)
    return poll_until(lambda: take(block, cursor, slot_size))


def wait_for_file(path):
    # look-alike: the same poll helper shape over something that is not shared memory
    import os

    deadline = time.monotonic() + 5
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
