"""A spin on a shared generation word whose only lock sits on the recovery branch.

The lock does not order the normal protocol: the waiter reads the word with plain loads and
returns it as a validator for later lock-free reads. Seen in: EasyGlobals (_gen_stable).
"""
import threading
import time
from multiprocessing import shared_memory

repair_lock = threading.Lock()


class Table:
    def __init__(self, name):
        self.block = shared_memory.SharedMemory(name=name)
        self.words = self.block.buf.cast("Q")

    def stable_generation(self):
        tries = 0
        while True:  # expect: SCL501
            gen = self.words[0]
            if gen % 2 == 0:
                return gen
            tries += 1
            if tries > 1000:
                with repair_lock:  # only when the bumper died half-way
                    self.words[0] = gen + 1
                tries = 0
            time.sleep(0.0001)

    def stable_generation_locked(self):
        # look-alike: every read of the word happens under the lock
        while True:
            with repair_lock:
                gen = self.words[0]
            if gen % 2 == 0:
                return gen
            time.sleep(0.0001)
