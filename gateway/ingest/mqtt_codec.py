"""MQTT 5 client packets (pure): bytes from the broker in, events out; packets to send as bytes.

No sockets, no clock, no threads (STYLE.md, h11-style): ``Decoder.feed`` takes whatever a
``recv`` returned and gives back every whole packet in it as an event, keeping a partial tail
for the next call; the ``encode_*`` functions build the few packets a subscriber sends. The
adapter (``gateway.ingest.mqtt_conn``) owns the socket, keepalive and reconnects.

Only what a durable subscriber needs is here (OASIS MQTT 5.0, section numbers below): CONNECT
with session expiry and Receive Maximum, SUBSCRIBE with retain handling, PUBACK, PUBREC and
PUBCOMP for QoS 1 and 2, PINGREQ, DISCONNECT; from the broker CONNACK, PUBLISH, PUBREL, SUBACK,
PINGRESP, DISCONNECT. Properties the broker sends are skipped (the gateway asks for none that
change the meaning of a PUBLISH: no topic aliases, no subscription identifiers), except the
CONNACK reason string. Why our own: paho's pure-Python MQTT 5 property and packet handling was
~80 % of the gateway's CPU during a drain (bench/RESULTS.md, README "MQTT client").

Anything malformed raises ``MqttProtocolError`` (a ``RemoteError``: the broker's fault); the
adapter closes the connection, as section 4.13 asks, and reconnects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gateway.errors import RemoteError

__all__ = [
    "MAX_REMAINING",
    "ConnAck",
    "Decoder",
    "Disconnect",
    "Event",
    "MqttProtocolError",
    "PingResp",
    "PubRel",
    "Publish",
    "SubAck",
    "encode_connect",
    "encode_disconnect",
    "encode_pingreq",
    "encode_puback",
    "encode_pubcomp",
    "encode_pubrec",
    "encode_subscribe",
    "varint",
]

MAX_REMAINING = 268_435_455  # four varint bytes (section 1.5.5)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

_U16 = struct.Struct("!H")
_ACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id (section 3.4.2.1)


class MqttProtocolError(RemoteError):
    """The broker sent bytes that are not a valid MQTT 5 packet for a client."""

    def __init__(self, reason: str) -> None:
        super().__init__("mqtt broker", f"malformed packet: {reason}")


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    reason: int  # 0 success; >= 0x80 refused (section 3.2.2.2)
    reason_string: str | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int  # 0 for QoS 0
    dup: bool
    retain: bool

    def __post_init__(self) -> None:
        if self.qos not in (0, 1, 2) or (self.qos > 0) != (self.packet_id > 0):
            raise MqttProtocolError(f"PUBLISH qos {self.qos} with packet id {self.packet_id}")


@dataclass(frozen=True, slots=True)
class PubRel:
    packet_id: int


@dataclass(frozen=True, slots=True)
class SubAck:
    packet_id: int
    reasons: tuple[int, ...]  # granted QoS, or >= 0x80 refused (section 3.9.3)


@dataclass(frozen=True, slots=True)
class PingResp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: int


Event = ConnAck | Publish | PubRel | SubAck | PingResp | Disconnect


def varint(value: int) -> bytes:
    """Variable Byte Integer (section 1.5.5)."""
    if not 0 <= value <= MAX_REMAINING:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 65535:
        raise ValueError("MQTT string longer than 65,535 bytes")
    return _U16.pack(len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def encode_connect(client_id: str, *, keepalive: int, clean_start: bool,
                   session_expiry: int, receive_maximum: int,
                   username: str | None = None, password: str | None = None) -> bytes:  # fmt: skip
    """CONNECT, protocol level 5 (section 3.1)."""
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    props = b"\x11" + struct.pack("!I", session_expiry) + b"\x21" + _U16.pack(receive_maximum)
    body = _string("MQTT") + bytes((5, flags)) + _U16.pack(keepalive) + varint(len(props)) + props
    body += _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(CONNECT << 4, body)


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]], retain_handling: int) -> bytes:
    """SUBSCRIBE (section 3.8): each filter with its max QoS; retain handling 1 = "send
    retained messages only if the subscription did not exist" (section 3.8.3.1)."""
    body = _U16.pack(packet_id) + b"\x00"  # no properties
    for topic_filter, qos in filters:
        body += _string(topic_filter) + bytes((qos | retain_handling << 4,))
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def encode_puback(packet_id: int) -> bytes:
    return _ACK.pack(PUBACK << 4, 2, packet_id)


def encode_pubrec(packet_id: int) -> bytes:
    return _ACK.pack(PUBREC << 4, 2, packet_id)


def encode_pubcomp(packet_id: int) -> bytes:
    return _ACK.pack(PUBCOMP << 4, 2, packet_id)


def encode_pingreq() -> bytes:
    return b"\xc0\x00"


def encode_disconnect() -> bytes:
    return b"\xe0\x00"  # normal disconnection, no properties (section 3.14.2.1)


class Decoder:
    """Broker -> client packets. ``feed`` returns the events of every whole packet so far."""

    def __init__(self, max_packet: int = MAX_REMAINING) -> None:
        self.max_packet = max_packet
        self._buffer = b""

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Event]:
        buf = self._buffer + data if self._buffer else data
        events: list[Event] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length, start = _remaining(buf, pos + 1, end)
            if start < 0:
                break
            if length > self.max_packet:
                raise MqttProtocolError(f"packet of {length} bytes over the limit")
            stop = start + length
            if stop > end:
                break
            first = buf[pos]
            if first >> 4 == PUBLISH:  # the hot path, kept inline
                events.append(_publish(first, buf, start, stop))
            else:
                events.append(_control(first, buf[start:stop]))
            pos = stop
        self._buffer = buf[pos:]
        return events


def _remaining(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(remaining length, offset of the body), or (0, -1) if the varint is not all here yet."""
    value = shift = 0
    for index in range(pos, min(pos + 4, end)):
        byte = buf[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    if end - pos >= 4:
        raise MqttProtocolError("remaining length longer than four bytes")
    return 0, -1


def _properties_end(buf: bytes, pos: int, stop: int) -> int:
    length, start = _remaining(buf, pos, stop)
    if start < 0 or start + length > stop:
        raise MqttProtocolError("properties run past the packet")
    return start + length


def _publish(first: int, buf: bytes, pos: int, stop: int) -> Publish:
    """PUBLISH (section 3.3): topic, packet id if QoS > 0, properties (skipped), payload."""
    qos = (first >> 1) & 3
    if pos + 2 > stop:
        raise MqttProtocolError("PUBLISH without a topic")
    topic_end = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
    try:
        topic = buf[pos + 2 : topic_end].decode("utf-8")
    except UnicodeDecodeError:
        raise MqttProtocolError("PUBLISH topic is not UTF-8") from None
    packet_id = 0
    if qos:
        packet_id = buf[topic_end] << 8 | buf[topic_end + 1] if topic_end + 2 <= stop else 0
        topic_end += 2
    if topic_end >= stop or not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise MqttProtocolError(f"PUBLISH topic {topic[:40]!r} or its length is not valid")
    # A zero property length is one 0x00 byte: the common case needs no varint decode.
    body = topic_end + 1 if buf[topic_end] == 0 else _properties_end(buf, topic_end, stop)
    return Publish(topic, buf[body:stop], qos, packet_id, bool(first & 8), bool(first & 1))


def _control(first: int, body: bytes) -> Event:
    kind, flags = first >> 4, first & 0x0F
    expected_flags = 2 if kind == PUBREL else 0
    if flags != expected_flags:
        raise MqttProtocolError(f"packet type {kind} with flags {flags:#x}")
    if kind == CONNACK:
        return _connack(body)
    if kind == PUBREL and len(body) >= 2:
        return PubRel(_nonzero_id(body))
    if kind == SUBACK and len(body) >= 3:
        start = _properties_end(body, 2, len(body))
        return SubAck(_nonzero_id(body), tuple(body[start:]))
    if kind == PINGRESP and not body:
        return PingResp()
    if kind == DISCONNECT:
        return Disconnect(body[0] if body else 0)
    raise MqttProtocolError(f"unexpected packet type {kind} ({len(body)} bytes) for a client")


def _nonzero_id(body: bytes) -> int:
    packet_id: int = _U16.unpack_from(body)[0]
    if packet_id == 0:
        raise MqttProtocolError("packet id 0")
    return packet_id


def _connack(body: bytes) -> ConnAck:
    if len(body) < 2 or body[0] & 0xFE:
        raise MqttProtocolError("CONNACK too short or with reserved flags")
    reason_string = None
    if len(body) > 2:
        end = _properties_end(body, 2, len(body))
        start = _remaining(body, 2, len(body))[1]
        reason_string = _reason_string(body[start:end])
    return ConnAck(bool(body[0] & 1), body[1], reason_string)


# Property identifier -> how its value is laid out (section 2.2.2.2), to walk past the ones a
# CONNACK carries until the reason string (0x1F).
_FIXED = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1, 0x21: 2, 0x22: 2,
          0x23: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}  # fmt: skip
_STRINGS = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}


def _reason_string(props: bytes) -> str | None:
    pos = 0
    while pos < len(props):
        ident = props[pos]
        pos += 1
        if ident in _FIXED:
            pos += _FIXED[ident]
        elif ident in _STRINGS or ident == 0x26:  # 0x26 user property: a pair of strings
            for _ in range(2 if ident == 0x26 else 1):
                size = _U16.unpack_from(props, pos)[0] if pos + 2 <= len(props) else 1 << 20
                if ident == 0x1F and pos + 2 + size <= len(props):
                    return props[pos + 2 : pos + 2 + size].decode("utf-8", "replace")
                pos += 2 + size
        elif ident == 0x0B:  # subscription identifier: a varint
            pos = _remaining(props, pos, len(props))[1]
            if pos < 0:
                break
        else:
            raise MqttProtocolError(f"unknown CONNACK property {ident:#x}")
    if pos > len(props):
        raise MqttProtocolError("CONNACK property runs past the packet")
    return None
