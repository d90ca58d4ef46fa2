"""os.replace is not called directly but handed to an executor or asyncio.to_thread.

Seen in: pickledb (aiofiles write, then asyncio.to_thread(os.replace, ...)).
"""
import asyncio
import os


async def dump_async(path, payload: bytes):
    scratch = path + ".tmp"
    with open(scratch, "wb") as f:
        f.write(payload)
    await asyncio.to_thread(os.replace, scratch, path)  # expect: SCL101


async def dump_async_synced(path, payload: bytes):
    scratch = path + ".tmp"
    with open(scratch, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    await asyncio.to_thread(os.replace, scratch, path)  # expect: SCL102
