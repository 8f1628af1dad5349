"""The broker's half of MQTT 5, for back-to-back tests of gateway.ingest.mqtt_codec (no sockets).

Written from the spec (OASIS MQTT 5.0) independently of the codec under test: it encodes what a
broker sends and decodes what a client sends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ClientPacket", "broker_encode_publish", "decode_client", "varint"]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        digit = value % 128
        value //= 128
        out.append(digit | 0x80 if value else digit)
        if not value:
            return bytes(out)


def _mqtt_string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def broker_encode_publish(topic: bytes, payload: bytes, qos: int, packet_id: int, *,
                          dup: bool = False, retain: bool = False,
                          properties: bytes = b"") -> bytes:  # fmt: skip
    first = 0x30 | qos << 1 | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = _mqtt_string(topic) + (struct.pack("!H", packet_id) if qos else b"")
    body += varint(len(properties)) + properties + payload
    return packet(first, body)


def connack(session_present: bool, reason: int, properties: bytes = b"") -> bytes:
    body = bytes([int(session_present), reason]) + varint(len(properties)) + properties
    return packet(0x20, body)


def suback(packet_id: int, codes: bytes) -> bytes:
    return packet(0x90, struct.pack("!H", packet_id) + b"\x00" + codes)


def pubrel(packet_id: int) -> bytes:
    return packet(0x62, struct.pack("!H", packet_id))


@dataclass(frozen=True)
class ClientPacket:
    kind: int
    flags: int
    body: bytes


def decode_client(stream: bytes) -> list[ClientPacket]:
    """Every whole packet in ``stream`` (as a broker reads what a client sent)."""
    out, pos = [], 0
    while pos < len(stream):
        first = stream[pos]
        length = shift = 0
        pos += 1
        while True:
            byte = stream[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        out.append(ClientPacket(first >> 4, first & 0x0F, stream[pos : pos + length]))
        pos += length
    return out
