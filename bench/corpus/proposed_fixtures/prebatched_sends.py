"""One send per buffer when the buffers were already coalesced, or when the piece size is the
caller's explicit choice.

Seen in: redis-py (the command packer joins small pieces into buffers of at least 6000 bytes
and keeps large values as separate memoryviews to avoid copying them; send_packed_command then
sends each buffer), sh (stdin is written to the child in the pieces that the user's buffering
option asks for: whole chunks, lines, or N bytes).
"""
import os

CUTOFF = 6000


def pack(parts):
    out, pending, size = [], [], 0
    for part in parts:
        if size > CUTOFF or len(part) > CUTOFF or isinstance(part, memoryview):
            if pending:
                out.append(b"".join(pending))
                pending, size = [], 0
        if len(part) > CUTOFF or isinstance(part, memoryview):
            out.append(part)
        else:
            pending.append(part)
            size += len(part)
    if pending:
        out.append(b"".join(pending))
    return out


class Connection:
    def __init__(self, sock):
        self.sock = sock

    def send_packed(self, buffers):
        for buf in buffers:
            self.sock.sendall(buf)  # look-alike: each buffer is >= CUTOFF bytes or a large value

    def send_command(self, *parts):
        self.send_packed(pack(parts))


def split_by_mode(chunk: bytes, mode: int):
    if mode == 0:
        return [chunk]
    if mode == 1:
        return chunk.splitlines(keepends=True)
    return [chunk[i : i + mode] for i in range(0, len(chunk), mode)]


def feed_child(fd: int, chunk: bytes, mode: int):
    for piece in split_by_mode(chunk, mode):
        os.write(fd, piece)  # look-alike: the piece size is the user's option


def dump_records(fd: int, records):
    for record in records:
        os.write(fd, record)  # expect: SCL201
