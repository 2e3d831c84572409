#!/usr/bin/env python3
"""Writes a few valid inputs to corpus/frame and corpus/records (run from fuzz/)."""
import os
import struct


def frame(first_task, entry, check, count, args):
    """A Run frame: u32 LE body length, then kind 1, u64 first_task, u64 entry, u64 check,
    u32 count and the argument bytes."""
    body = bytes([1]) + struct.pack("<QQQI", first_task, entry, check, count) + args
    return struct.pack("<I", len(body)) + body


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pstr(s):
    b = s.encode()
    return varint(len(b)) + b


def record(tag, payload):
    """An outcome record: tag (0 Ok, 1 Panicked, 2 Codec), u32 LE payload length, payload."""
    return bytes([tag]) + struct.pack("<I", len(payload)) + payload


def ok(n, s):
    """An Ok record whose payload is the postcard encoding of (u64, String)."""
    return record(0, varint(n) + pstr(s))


def count(n):
    return struct.pack("<H", n)


PANICKED = record(1, pstr("boom") + b"\x01" + pstr("src/lib.rs:1:1"))
CODEC = record(2, pstr("bad arg"))

SEEDS = {
    "frame": {
        "run_empty": frame(0, 0, 0, 0, b""),
        "run_args": frame(7, 0xDEAD, 0xBEEF, 3, b"\x01\x02\x03"),
        "run_two": frame(1, 2, 3, 1, b"ab") + frame(4, 5, 6, 2, b"cdef"),
        "run_partial": frame(9, 9, 9, 9, b"xyz")[:-2],
    },
    "records": {
        "one_ok": count(1) + ok(42, "hi"),
        "three_mixed": count(3) + ok(1, "a") + PANICKED + CODEC,
        "many_ok": count(5) + b"".join(ok(300 * i, "x" * i) for i in range(5)),
        "short": count(4) + ok(1 << 40, "\u00fc") + ok(2, ""),
        "bad_ok_payload": count(2) + record(0, b"\xff") + ok(3, "z"),
    },
}

for target, seeds in SEEDS.items():
    os.makedirs(os.path.join("corpus", target), exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join("corpus", target, name), "wb") as f:
            f.write(data)
