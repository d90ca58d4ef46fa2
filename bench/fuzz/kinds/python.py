"""Python sources for `syscall-lint check`: mutated fixtures and catalog examples, encoding tricks,
pathological shapes and valid-but-unusual syntax.

Every shape is chosen by `index`, its details by `rng`, so a seed reproduces the same inputs. Most
inputs keep a rule's trigger (open + write + rename, a write loop, accept + Thread) so that they get
past the text screen and the gate and reach libcst and the rules, not just the decoder.
"""

from __future__ import annotations

import io
import os
import random
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

KIND = "python"
SUBCOMMAND = ["check", "--no-cache"]
BATCH_SIZE = 150

# Code that makes each rule module run; appended to unusual shapes so they reach libcst.
TRIGGERS = [
    "import os\n\ndef save(path, text):\n    tmp = path + '.tmp'\n    with open(tmp, 'w') as f:\n"
    "        f.write(text)\n    os.replace(tmp, path)\n",
    "import os\n\ndef dump(fd, records):\n    for record in records:\n        os.write(fd, record)\n",
    "import socket, threading\n\ndef serve(srv):\n    while True:\n        conn, _ = srv.accept()\n"
    "        threading.Thread(target=print, args=(conn,)).start()\n",
    "from multiprocessing import shared_memory\n\ndef wait(shm):\n    while shm.buf[0] == 0:\n        pass\n"
    "    return bytes(shm.buf[1:9])\n",
]

# Valid Python 3.11 that must analyse without an error (tests/test_python_rules.py runs these too).
UNUSUAL = [
    # match statements, with class patterns, guards and captures
    "def route(cmd, fd):\n    match cmd:\n        case {'op': 'write', 'data': data} if data:\n"
    "            for piece in data:\n                os.write(fd, piece)\n        case [x, *rest]:\n"
    "            pass\n        case Point(x=0) | None:\n            pass\n        case _:\n            pass\n",
    # walrus everywhere
    "def pump(src, fd):\n    while (block := src.read(10)):\n        os.write(fd, block)\n"
    "    if (n := len([y := 1 for _ in range(3)])) > 1:\n        return n\n",
    # nested f-strings and format specs
    "def show(fd, rows, width=10):\n    for r in rows:\n"
    "        os.write(fd, f\"{r!r:>{width}} {f'{r:{width}.{width}}'} {{literal}}\".encode())\n",
    # decorators on everything
    "@decorate\n@decorate(arg=1)\nclass Box:\n    @property\n    @staticmethod\n    def get(fd, items):\n"
    "        for item in items:\n            os.write(fd, item)\n\n@(lambda f: f)\ndef g():\n    pass\n",
    # unicode identifiers
    "def écrire(fd, données):\n    for ligne in données:\n        os.write(fd, ligne)\n\nπ = 3.14\n名前 = 'x'\n",
    # form feeds and line continuations
    "\fdef save(path, text):\n    tmp = path + \\\n        '.tmp'\n\f\n    with open(tmp, \\\n              'w') as f:\n"
    "        f.write(text)\n    os.replace(tmp, \\\n               path)\n",
    # async comprehensions, async with, star expressions, positional-only parameters
    "async def go(fd, it, /, *args, key=None, **kw):\n    async with lock:\n        xs = [x async for x in it]\n"
    "        for x in xs:\n            os.write(fd, x)\n    first, *rest = xs\n    return {**kw, 'k': [*rest]}\n",
    # semicolons, one-line compound statements, global/nonlocal, try/except*/else/finally
    "def f(fd, xs): \n    for x in xs: os.write(fd, x); continue\n\ndef g():\n    global q\n"
    "    try:\n        pass\n    except* ValueError:\n        pass\n",
    # lambdas, conditional expressions, chained comparisons, slices
    "def h(fd, xs):\n    key = lambda a, b=1, *c, d, **e: (a if b else c)\n"
    "    for x in xs[::2]:\n        if 0 < len(x) <= 10 != 3:\n            os.write(fd, x[1:-1])\n",
    # type annotations everywhere, including string and subscripted ones
    "from typing import Callable\nimport os\n\ndef save(path: 'str', text: list[dict[str, int | None]]) -> None:\n"
    "    tmp: str = path + '.tmp'\n    with open(tmp, 'w') as f:\n        f.write(str(text))\n    os.replace(tmp, path)\n",
]

# Syntax newer than some supported Pythons (PEP 695 generics, PEP 701 f-strings): valid where the
# running `ast` knows it, otherwise a one-line syntax error, never a traceback.
NEWER = [
    "class Stack[T]:\n    def push[U: (int, str)](self, fd, items: list[U]) -> None:\n"
    "        for item in items:\n            os.write(fd, item)\n\ntype Pairs[K] = list[tuple[K, K]]\n",
    "def show(fd, rows):\n    for r in rows:\n        os.write(fd, f\"{f\"{f\"{r}\"}\"}\".encode())\n",
]

COOKIES = ["latin-1", "utf-8", "ascii", "cp1252", "euc-jp", "utf-16", "klingon", "utf-8-sig", "iso-8859-15", "UTF8"]


def _seeds() -> list:
    """The repository's Python fixtures and the catalog's Python examples, as text."""
    global _SEEDS
    if _SEEDS is None:
        seeds = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "fixtures" / "python").glob("*.py"))]
        try:
            sys.path.insert(0, str(ROOT))
            from syscall_lint import catalog

            for rule in catalog.load().rules.values():
                seeds.extend(ex["code"] for ex in rule.examples if ex.get("source") == "python" and ex.get("code"))
        except Exception:  # noqa: BLE001 - the fixtures alone still make a campaign
            pass
        _SEEDS = seeds or TRIGGERS
    return _SEEDS


_SEEDS = None


def _tokens(text: str) -> list:
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text.split(" ")


def byte_mutation(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos:pos] = bytes([rng.choice([0, 0x0A, 0x0D, 0x09, 0x0C, 0x5C, 0x22, 0x27, 0x28, 0x29, 0x3A,
                                              0xFF, 0xC3, 0xE2, 0x80])])
        elif op == 2 and buf:
            del buf[pos:pos + rng.randint(1, 8)]
        elif op == 3 and buf:  # duplicate a run
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start:start + rng.randint(1, 64)]
        else:
            buf[pos:pos] = rng.choice([b"(", b")", b"[", b"]", b"{", b"}", b":", b"\n    ", b"\\\n", b"#", b'"""',
                                       b"lambda:", b"await ", b"yield ", b"async ", b"*", b"**", b"@", b":="])
    return bytes(buf)


def token_mutation(rng: random.Random, text: str, other: str) -> str:
    tokens = _tokens(text)
    donor = _tokens(other)
    for _ in range(rng.randint(1, 8)):
        if not tokens:
            break
        op = rng.randrange(4)
        i = rng.randrange(len(tokens))
        if op == 0:
            del tokens[i]
        elif op == 1:
            tokens.insert(i, tokens[rng.randrange(len(tokens))])
        elif op == 2 and donor:
            tokens[i] = donor[rng.randrange(len(donor))]
        else:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
    # tokenize's strings lose the spacing; join with single spaces but keep newlines and indents
    out = []
    for tok in tokens:
        out.append(tok if tok.startswith(("\n", " ", "\t")) or tok == "" else tok + " ")
    return "".join(out)


def encoding_trick(rng: random.Random, text: str) -> bytes:
    choice = rng.randrange(9)
    cookie = rng.choice(COOKIES)
    if choice == 0:
        header = f"# -*- coding: {cookie} -*-\n"
        try:
            return header.encode("ascii") + text.encode(cookie if cookie not in ("klingon",) else "utf-8")
        except (LookupError, UnicodeEncodeError):
            return header.encode("ascii") + text.encode("utf-8")
    if choice == 1:  # a BOM that disagrees with the cookie
        return b"\xef\xbb\xbf" + f"# coding: {cookie}\n".encode() + text.encode("utf-8")
    if choice == 2:
        return text.encode(rng.choice(["utf-16", "utf-16-le", "utf-32"]))
    if choice == 3:  # undecodable bytes in a string, a comment or an identifier
        data = bytearray(text.encode("utf-8"))
        for _ in range(rng.randint(1, 4)):
            data.insert(rng.randrange(len(data) + 1), rng.choice([0xFF, 0xFE, 0xC0, 0xED, 0xA0, 0x80]))
        return bytes(data)
    if choice == 4:  # NUL bytes
        data = bytearray(text.encode("utf-8"))
        data.insert(rng.randrange(len(data) + 1), 0)
        return bytes(data)
    if choice == 5:  # the cookie on the second line, after a shebang, or on the third (ignored)
        where = rng.choice(["#!/usr/bin/env python3\n", "\n", "#!/usr/bin/python\n\n"])
        return (where + f"# vim: set fileencoding={cookie} :\n").encode() + text.encode("utf-8")
    if choice == 6:  # latin-1 bytes in a utf-8 file and in a latin-1 file
        return ("# coding: latin-1\nname = 'caf\xe9'\n" + text).encode("latin-1", "replace")
    if choice == 7:  # surrogates and odd line endings
        return text.replace("\n", rng.choice(["\r\n", "\r", "\n\r", "\x0b", "\x85"])).encode("utf-8", "surrogatepass")
    return "\ufeff".encode() + ("\u2028" + text).encode("utf-8")


def pathological(rng: random.Random, index: int) -> str:
    trigger = rng.choice(TRIGGERS)
    choice = rng.randrange(11)
    depth = rng.choice([50, 100, 200, 400, 600, 1000, 3000])
    if choice == 0:
        return trigger + "x = " + "(" * depth + "1" + ")" * depth + "\n"
    if choice == 1:
        return trigger + "f = " + "lambda: " * depth + "os.write(1, b'x')\n"
    if choice == 2:  # nested blocks inside a function the gate keeps
        body = "".join("    " * (i + 1) + f"if x{i}:\n" for i in range(min(depth, 99)))
        return "import os\n\ndef deep(fd, xs):\n    for x in xs:\n" + "".join(
            "    " + line + "\n" for line in body.splitlines()) + "    " * (min(depth, 99) + 2) + "os.write(fd, x)\n"
    if choice == 3:  # one huge line
        n = rng.choice([10_000, 100_000, 1_000_000])
        return trigger + "data = [" + "1, " * n + "]\n"
    if choice == 4:  # huge string literal
        return trigger + "blob = '" + "x" * rng.choice([100_000, 2_000_000]) + "'\n"
    if choice == 5:  # many small functions, each a rule candidate
        n = rng.choice([100, 2000, 8000])
        return "import os\n" + "".join(
            f"def save{i}(p, t):\n    with open(p + '.tmp', 'w') as f:\n        f.write(t)\n    os.replace(p + '.tmp', p)\n"
            for i in range(n))
    if choice == 6:  # a huge file: a few MB (rarely)
        if index % 10 == 0:
            return trigger * 1 + "".join(f"def f{i}(a):\n    return a + {i}\n" for i in range(rng.choice([60_000, 150_000])))
        return trigger * rng.randint(1, 50)
    if choice == 7:  # deep nested lists/dicts/calls
        opener, closer = rng.choice([("[", "]"), ("{1: ", "}"), ("f(", ")"), ("not ", ""), ("-", ""), ("await ", "")])
        return trigger + "async def z():\n    return " + opener * depth + "1" + closer * depth + "\n"
    if choice == 8:  # deep attribute and call chains
        return trigger + "y = a" + ".b" * depth * 3 + "\nz = g" + "()" * depth + "\n"
    if choice == 9:  # nested f-strings and string concatenation
        return trigger + "s = " + " ".join(["'a'"] * depth * 3) + "\nt = " + "f'{" * 3 + "1" + "}'" * 3 + "\n"
    # deeply nested functions, each writing in a loop
    return "import os\n" + "".join("    " * i + f"def f{i}(fd, xs):\n" for i in range(min(depth, 90))) + \
        "    " * min(depth, 90) + "for x in xs:\n" + "    " * (min(depth, 90) + 1) + "os.write(fd, x)\n"


def unusual(rng: random.Random) -> str:
    parts = rng.sample(UNUSUAL, rng.randint(1, 3)) + ([rng.choice(NEWER)] if rng.random() < 0.2 else [])
    return "import os\n" + "\n".join(parts) + rng.choice(["", "\n" + rng.choice(TRIGGERS)])


def _special(rng: random.Random, index: int, outdir: Path) -> Path | None:
    """Inputs that are not regular files: a FIFO, a device, a directory named *.py, dangling links."""
    path = outdir / f"{index:06d}_special.py"
    choice = rng.randrange(5)
    try:
        if choice == 0 and hasattr(os, "mkfifo"):
            os.mkfifo(path)
        elif choice == 1:
            os.symlink(rng.choice(["/dev/zero", "/dev/null", "/dev/urandom"]), path)
        elif choice == 2:
            path.mkdir()
            (path / "inner.py").write_text(rng.choice(TRIGGERS))
            if hasattr(os, "mkfifo"):
                os.mkfifo(path / "pipe.py")
        elif choice == 3:
            os.symlink(outdir / "does-not-exist.py", path)
        else:
            path.write_bytes(b"")
        return path
    except OSError:
        return None


def generate(rng: random.Random, index: int, outdir: Path) -> Path:
    seeds = _seeds()
    seed = rng.choice(seeds)
    shape = index % 10
    data: bytes
    if shape in (0, 1, 2):
        data = byte_mutation(rng, seed.encode("utf-8"))
    elif shape in (3, 4):
        data = token_mutation(rng, seed, rng.choice(seeds)).encode("utf-8")
    elif shape == 5:
        data = encoding_trick(rng, seed)
    elif shape == 6:
        data = pathological(rng, index).encode("utf-8")
    elif shape == 7:
        data = unusual(rng).encode("utf-8")
    elif shape == 8:
        # splice: half of one seed, half of another, then a couple of byte flips
        other = rng.choice(seeds)
        data = byte_mutation(rng, (seed[: len(seed) // 2] + other[len(other) // 2:]).encode("utf-8"))
    else:
        special = _special(rng, index, outdir) if rng.random() < 0.3 else None
        if special is not None:
            return special
        data = seed.encode("utf-8")
    path = outdir / f"{index:06d}.py"
    path.write_bytes(data)
    return path
