"""Fuzz kind `strace_jsonl`: strace-parser JSON lines made from the real recordings, with fields of
the wrong type (pid as a string/list/null, name as a list/object, timestamp as a string), numbers
of thousands of digits, arrays and objects nested thousands deep, unknown argument types, NaN,
broken JSON and non-object lines."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import random
import re

KIND = "strace_jsonl"
SUBCOMMAND = ["trace"]

_spec = importlib.util.spec_from_file_location("fuzz_kind_strace_text", pathlib.Path(__file__).with_name("strace.py"))
text_kind = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(text_kind)

_CALL = re.compile(rb"^(?:\[pid +(\d{1,10})\] |(\d{1,10}) +)?(?:(\d+\.\d+) +)?([a-z_0-9]+)\((.*)\) += (.*?)$")
_WRONG = ("x", "", [1], [], {"a": 1}, None, True, 1.5, -1, 10 ** 30, "NaN")


def as_object(line: bytes):
    """strace-parser's shape of one text line: {type, pid, timestamp, name, args, result}."""
    m = _CALL.match(line)
    if m is None:
        return None
    pid, pid2, ts, name, args, result = m.groups()
    parts = _split(args.decode("utf-8", "replace"))
    return {"type": "syscall", "pid": int(pid or pid2 or 0), "timestamp": float(ts) if ts else 1.0,
            "name": name.decode(), "args": [{"type": "other", "value": p} for p in parts],
            "result": result.decode("utf-8", "replace")}


def _split(args: str) -> list:
    out, depth, cur, quoted = [], 0, "", False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _nested(rng: random.Random) -> str:
    """Arrays, or strace-parser argument nodes, nested up to thousands deep (as JSON text)."""
    depth = rng.choice((50, 400, 900, 3000, 20000))
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    kind = rng.choice(("bracketed", "braced"))
    return ('[{"type": "%s", "value": ' % kind) * depth + "[]" + "}]" * depth


def mutate(rng: random.Random, obj: dict) -> str:
    """One hostile change to an object, returned as its JSON text (some changes are raw text)."""
    roll = rng.randrange(10)
    if roll == 0:
        obj[rng.choice(("pid", "name", "timestamp", "result", "args", "type"))] = rng.choice(_WRONG)
    elif roll == 1:
        obj.pop(rng.choice(("pid", "name", "timestamp", "result", "args", "type")), None)
    elif roll == 2:
        obj.pop("args", None)
        return json.dumps(obj)[:-1] + ', "args": ' + _nested(rng) + "}"
    elif roll == 3:
        big = "9" * rng.choice((25, 4301, 5000))
        return json.dumps(obj).replace('"pid": ', '"pid": ' + big + "0*", 1).replace("0*" + str(obj.get("pid")), "", 1)
    elif roll == 4:
        obj["args"] = [{"type": rng.choice(("other", "sigset", "function", "nope", None)),
                        "value": rng.choice(_WRONG), "args": rng.choice(_WRONG), "name": rng.choice(_WRONG)}]
    elif roll == 5:
        obj = {"type": "alert", "pid": rng.choice(_WRONG + (5,)), "result": rng.choice(_WRONG + (0,))}
    elif roll == 6:
        return rng.choice(("[1, 2]", "3", '"str"', "null", "{", '{"type": "syscall"', "NaN", "-Infinity"))
    elif roll == 7:
        obj["timestamp"] = rng.choice((float("nan"), float("inf"), 1e308, -1.0))
    elif roll == 8:
        text = json.dumps(obj)
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(('"', "\\", "\\u12", "\x00", "}", "]")) + text[i:]
    else:
        obj["name"] = rng.choice(("", "x" * 5000, "read\x00", "é", "1abc", "openat"))
    return json.dumps(obj)


def generate(rng: random.Random, index: int, outdir: pathlib.Path) -> pathlib.Path:
    odd = text_kind.special(index, outdir)
    if odd is not None:
        return odd
    objects = [o for o in map(as_object, text_kind.mutated_lines(rng)) if o is not None]
    lines = [json.dumps(o) for o in objects]
    for _ in range(rng.randint(1, 5)):
        base = dict(rng.choice(objects)) if objects else {"type": "syscall", "name": "write", "pid": 1,
                                                           "args": [], "result": "1"}
        lines.insert(rng.randrange(len(lines) + 1), mutate(rng, base))
    if not lines or lines[0][:1] != "{":
        lines.insert(0, json.dumps({"type": "syscall", "name": "close", "pid": 1, "timestamp": 1.0,
                                    "args": [{"type": "other", "value": "3"}], "result": "0"}))
    data = ("\n".join(lines) + "\n").encode()
    if rng.random() < 0.05:
        data = data[:rng.randrange(1, len(data) + 1)]
    path = outdir / f"{KIND}-{index}.jsonl"
    path.write_bytes(data)
    return path
