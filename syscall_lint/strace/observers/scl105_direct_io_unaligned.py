"""SCL105 in a trace: reads and writes on an O_DIRECT fd whose length or offset is not a multiple of the
block size, or that the kernel refused with EINVAL (how it answers an unaligned direct transfer; the
buffer's address, which must be aligned too, is not in the trace, so EINVAL is the only sign of it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from syscall_lint.strace.events import DirectIO
from syscall_lint.strace.observer import Observer

# the calls whose length (and offset, for the p- forms) are plain numbers at the end of the arguments
POSITIONED = frozenset({"pread64", "pwrite64"})
PLAIN = frozenset({"read", "write"}) | POSITIONED


def length_and_offset(name: str, args: bytes) -> tuple:
    """(length, offset) of read/write(fd, buf, length) and pread64/pwrite64(fd, buf, length, offset);
    None where the trace does not say (vector calls, mangled numbers)."""
    if name not in PLAIN:
        return None, None
    end = args.rfind(b", ")
    last = _number(args[end + 2:])
    if name not in POSITIONED:
        return last, None
    return _number(args[args.rfind(b", ", 0, end) + 2:end]), last


def _number(text: bytes) -> Optional[int]:
    return int(text) if text.isdigit() and len(text) <= 19 else None


@dataclass(slots=True)
class Unaligned:
    pid: int
    fd: int
    path: Optional[str]
    first_line: int
    log: str
    example: str
    count: int = 0
    refused: int = 0


class DirectIoUnaligned(Observer):
    CODE = "SCL105"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.block = self.options["block-size"]
        self.files: dict = {}  # (tgid, target, log) -> Unaligned

    def on_direct_io(self, ev: DirectIO) -> None:
        call = ev.call
        length, offset = length_and_offset(call.name, call.args)
        refused = call.errno == "EINVAL"
        odd = [f"{what} {n:,}" for what, n in (("length", length), ("offset", offset))
               if n is not None and n % self.block]
        if not refused and not odd:
            return
        key = (ev.task.tgid, ev.info.path or ev.fd, self.ctx.path)
        rec = self.files.get(key)
        if rec is None:
            self.ctx.room(self.files, "files read or written with O_DIRECT")
            example = f"{call.name} of " + (", ".join(odd) if odd else f"length {length:,}" if length is not None
                                            else "a vector") + (" refused with EINVAL" if refused else "")
            rec = self.files[key] = Unaligned(ev.task.tgid, ev.fd, ev.info.path, call.line, self.ctx.path, example)
        rec.count += 1
        rec.refused += refused

    def finish(self) -> None:
        for rec in self.files.values():
            if rec.count < self.options["min-calls"]:
                continue
            self.ctx.report(self.CODE, rec.first_line, rec.pid, f"O_DIRECT {rec.path or rec.fd}",
                            {"pid": rec.pid, "fd": rec.fd, "path": rec.path, "count": rec.count,
                             "refused": rec.refused, "block_size": self.block, "example": rec.example},
                            path=rec.log, count=rec.count, fd=rec.fd, fdname=f" ({rec.path})" if rec.path else "",
                            refused=rec.refused, block=self.block, example=rec.example)
