#!/usr/bin/env python3
"""Writes the seed corpus of the whole-stack fuzz targets (fuzz/seeds/<target>/).

Each seed is a short script in the target's input format (see the op
parsers in fuzz_targets/<target>.rs): a few honest runs and one of each
fault, so that the fuzzer starts past the handshake and the first upgrade.
Run from anywhere: python3 fuzz/seeds/generate.py
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u16(n):
    return struct.pack("<H", n)


def u32(n):
    return struct.pack("<I", n)


def u64(n):
    return struct.pack("<Q", n)


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


# ---- default_stack: seed u32, then ops (byte % 10) ----
def send(length, pattern=b"netstrat", compressible=True):
    # op 0: u16 length, 8 pattern bytes, 1 mode byte (even: pattern repeated)
    return bytes([0]) + u16(length) + pattern[:8].ljust(8, b"_") + bytes([0 if compressible else 1])


FLUSH = bytes([2])
CLOSE = bytes([9, 1])


def deliver(n):
    return bytes([5]) + u16(n - 1)


def flip(offset, bit):
    return bytes([7]) + u16(offset) + bytes([bit])


def insert(offset, data):
    return bytes([8]) + u16(offset) + bytes([len(data) - 1]) + data


def cut(offset):
    return bytes([9, 0]) + u16(offset)


def inject(data, framed):
    return bytes([4, 1 if framed else 0, len(data)]) + data


frame = b"\x00\x00\x00\x05hello"
write("default_stack", "honest_closed", u32(1) + send(5) + send(300) + FLUSH + deliver(4096) + CLOSE)
write("default_stack", "honest_open", u32(2) + send(40) + FLUSH + deliver(100) + send(1000) + FLUSH)
write("default_stack", "byte_at_a_time", u32(3) + send(16) + FLUSH + deliver(1) * 24 + CLOSE)
write("default_stack", "bit_flip", u32(4) + send(64) + FLUSH + flip(200, 3) + CLOSE)
write("default_stack", "insertion", u32(5) + send(64) + FLUSH + insert(10, b"\x17\x03\x03") + CLOSE)
write("default_stack", "cut", u32(6) + send(64) + send(64) + FLUSH + cut(300))
write("default_stack", "inject_frame", u32(7) + send(8) + FLUSH + inject(frame, True) + send(8) + CLOSE)
write("default_stack", "inject_raw", u32(8) + send(8) + FLUSH + inject(b"\x28\xb5\x2f\xfd", False) + CLOSE)

# ---- dyn_stack_ops: count, kinds, then ops (byte % 12; end = byte >> 7) ----
def dsend(end, n4):
    return bytes([end << 7 | 0, n4]) + bytes(range(n4 * 4 % 256)) * (n4 * 4 // 256) + bytes(range(n4 * 4 % 256))


def transmit(end):
    return bytes([end << 7 | 2])


def burst(n):
    return bytes([11, n - 1])


def upgrade_insert(end, index, kind):
    # op 7 (132 % 12 == 0, so end 1 uses 135: 135 % 12 == 3; use 7 + 12k with the top bit)
    return bytes([(end << 7) | 7 if end == 0 else 151, index, kind])


def upgrade_remove(end, index):
    return bytes([(end << 7) | 8 if end == 0 else 152, index])


def read(end):
    return bytes([(end << 7) | 6 if end == 0 else 138])


write("dyn_stack_ops", "xor_zstd_talk", bytes([2, 1, 3]) + dsend(0, 8) + transmit(0) + burst(16) + read(1))
write("dyn_stack_ops", "upgrade_at_top", bytes([0]) + dsend(0, 4) + upgrade_insert(0, 0, 2) + dsend(0, 4) + burst(8))
write("dyn_stack_ops", "upgrade_at_bottom", bytes([1, 0]) + dsend(0, 4) + upgrade_insert(1, 1, 3) + burst(200))
write("dyn_stack_ops", "remove_middle", bytes([2, 2, 1]) + dsend(0, 4) + upgrade_remove(0, 1) + burst(50))
write("dyn_stack_ops", "close_and_misuse", bytes([1, 2]) + dsend(0, 2) + bytes([10, 9, 0, 0]) + dsend(0, 1))

# ---- shape_limits: 2 global limits, count, 2 limits per connection, then ops (byte % 8) ----
def limit(scale, rate=0, burst=0):
    return bytes([scale]) + u64(rate) + u64(burst)


NONE = limit(0)
write(
    "shape_limits",
    "one_connection",
    NONE + NONE + bytes([0]) + limit(2, 1000, 100) + limit(2, 1000, 100)
    + bytes([2 | 8]) + u16(3000) + u16(0) + bytes([5]) + u16(100) + bytes([2]) + bytes([7]),
)
write(
    "shape_limits",
    "global_flips",
    limit(2, 5000, 500) + NONE + bytes([2]) + NONE * 6
    + (bytes([1]) + limit(1, 1, 1) + bytes([1]) + limit(5, 2**63, 2**63) + bytes([1]) + NONE) * 2
    + bytes([2, 0x10, 0x00, 0xff, 0xff, 7, 7]),
)
write(
    "shape_limits",
    "tiny_and_huge",
    NONE + NONE + bytes([1]) + limit(1, 1, 1) + limit(3, 2**40, 2**40)
    + bytes([0 | 8]) + limit(4, 2**41) + bytes([3]) + u16(4000) + u16(4000) + bytes([6]) + u16(9) + bytes([3]),
)
