"""COBS byte stuffing and CRC-32 framing, shared by the firmware bridge (and any 0x00-framed link).

COBS (Cheshire & Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM ToN 1999) rewrites a block
so that it contains no 0x00 byte, at a cost of at most one byte per 254, so 0x00 can delimit
frames. CRC-32 is the zlib / IEEE 802.3 one (reflected polynomial 0xEDB88320, check value
``crc32(b"123456789") == 0xCBF43926``). Pure functions, no state.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["CobsError", "cobs_decode", "cobs_encode", "crc32", "with_crc", "without_crc"]

_BLOCK = 0xFF  # a code byte of 0xFF means "254 data bytes follow, no implied zero"


class CobsError(ValueError):
    """The input is not valid COBS (a zero byte inside, or a code byte pointing past the end)."""


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result holds no 0x00 and is at most ``len(data) // 254 + 1``
    bytes longer. The frame delimiter is not added. Like cmcqueen/cobs-python (and our C and
    MicroPython encoders), a run of 254 non-zero bytes that ends the data gets no extra code byte.
    """
    out = bytearray()
    parts = bytes(data).split(b"\x00")
    for number, part in enumerate(parts):
        start, last = 0, number == len(parts) - 1
        while len(part) - start >= _BLOCK - 1:
            out.append(_BLOCK)
            out += part[start : start + _BLOCK - 1]
            start += _BLOCK - 1
        if start < len(part) or not last or start == 0:
            out.append(len(part) - start + 1)
            out += part[start:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Invert :func:`cobs_encode` (no delimiter in ``data``); raise CobsError if malformed."""
    out = bytearray()
    index, end = 0, len(data)
    while index < end:
        code = data[index]
        if code == 0:
            raise CobsError(f"zero byte at offset {index}")
        block_end = index + code
        if block_end > end:
            raise CobsError(f"code byte {code} at offset {index} runs past the end ({end} bytes)")
        block = data[index + 1 : block_end]
        if 0 in block:
            raise CobsError(f"zero byte at offset {index + 1 + block.index(0)}")
        out += block
        index = block_end
        if code != _BLOCK and index < end:
            out.append(0)
    return bytes(out)


def crc32(data: bytes) -> int:
    """CRC-32 as zlib computes it (unsigned)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC-32, little-endian."""
    return body + struct.pack("<I", crc32(body))


def without_crc(frame: bytes) -> tuple[bytes, int, int]:
    """Split ``body | crc32 LE`` into (body, crc carried, crc computed); needs >= 4 bytes."""
    body, (carried,) = frame[:-4], struct.unpack("<I", frame[-4:])
    return body, carried, crc32(body)
