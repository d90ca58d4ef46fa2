"""A generic poll helper that spins on a callback; the caller's callback reads shared memory.

Seen in: shm-comm (utils.poll_until(check_fn) spins on a callable; pubsub/reqrep/pipeline pass
methods that call read_message_spsc, which loads the publisher's head word from shared memory).
Not handled: the loop is in a module that never sees shared memory; only its callers (other
modules, which import it) do. Following callables back from callers into the callee's loop needs
reverse import edges, which the project model does not have (it follows a file's imports only).
"""
import time
from multiprocessing import shared_memory

import numpy as np

HEAD, TAIL, SLOTS = 0, 1, 2


def header_of(block):
    return np.ndarray((4,), dtype=np.int64, buffer=block.buf)


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
