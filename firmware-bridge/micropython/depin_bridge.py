"""depin firmware bridge for MicroPython: the device side of ../PROTOCOL.md.

Also runs under CPython (the gateway's tests drive it through a fake UART). Uses only what
MicroPython has: struct, and binascii.crc32 when the port provides it (an own CRC-32 otherwise).
No f-strings, no dataclasses, no typing.

    from machine import UART
    import time, os
    from depin_bridge import DepinBridge

    uart = UART(1, baudrate=115200, tx=17, rx=16)
    link = DepinBridge(uart, time.ticks_ms, "esp32-0a1b2c", "1.0.0",
                       sensors=(("pm2_5", "ug/m3"), ("humidity", "%RH"), ("temperature", "Cel")),
                       boot_nonce=int.from_bytes(os.urandom(4), "little"),
                       ticks_diff=time.ticks_diff)
    link.start()
    while True:
        link.poll()                              # acks in, timers, resends
        if due():
            link.reading(2, read_temperature(), unix_time())   # False: ring full, not queued
        time.sleep_ms(20)
"""

import struct

try:
    from binascii import crc32 as _binascii_crc32
except ImportError:  # pragma: no cover - ports built without MICROPY_PY_BINASCII_CRC32
    _binascii_crc32 = None

VERSION = 1
READING = 1
HELLO = 2
ACK = 3
LOG = 4
REQUEST_HELLO = 0x01
MAX_FRAME = 1024  # decoded bytes, header to CRC; the gateway's limit too

# Payload keys (PROTOCOL.md section 4).
R_SENSOR, R_VALUE, R_TIME = 0, 1, 2
H_DEVICE, H_FIRMWARE, H_SENSORS, H_BOOT, H_SEQ_HI, H_RING = 0, 1, 2, 3, 4, 5
A_BOOT, A_TYPE, A_REQUEST = 0, 1, 2
L_LEVEL, L_MESSAGE = 0, 1

QUEUED, SENT, ACKED = 1, 2, 3  # ring slot states


class BridgeError(ValueError):
    """A frame failed a check; ``code`` is the error code of ../vectors.json."""

    def __init__(self, code, reason=""):
        ValueError.__init__(self, code + (": " + reason if reason else ""))
        self.code = code


# ---- CRC-32 (zlib) and COBS ---------------------------------------------------------------------


def crc32(data, crc=0):
    if _binascii_crc32 is not None:
        return _binascii_crc32(data, crc) & 0xFFFFFFFF
    crc = ~crc & 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return ~crc & 0xFFFFFFFF


def cobs_encode(data):
    """COBS without the delimiter; a final run of 254 non-zero bytes gets no extra code byte."""
    out = bytearray(b"\x01")
    code_at = 0
    code = 1
    n = len(data)
    for i in range(n):
        byte = data[i]
        if byte:
            out.append(byte)
            code += 1
            if code != 0xFF or i + 1 == n:
                continue
        out[code_at] = code
        code_at = len(out)
        out.append(1)
        code = 1
    out[code_at] = code
    return bytes(out)


def cobs_decode(data):
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            raise BridgeError("cobs", "bad code byte at %d" % i)
        block = data[i + 1 : i + code]
        if block.find(b"\x00") >= 0:
            raise BridgeError("cobs", "zero byte inside a frame")
        out.extend(block)
        i += code
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ---- CBOR (RFC 8949 preferred serialization: shortest heads, shortest exact floats) ------------


def _head(major, value):
    major <<= 5
    if value < 24:
        return bytes((major | value,))
    if value <= 0xFF:
        return bytes((major | 24, value))
    if value <= 0xFFFF:
        return struct.pack(">BH", major | 25, value)
    if value <= 0xFFFFFFFF:
        return struct.pack(">BI", major | 26, value)
    return struct.pack(">BQ", major | 27, value)


def _half_bits(single):
    """float32 bits -> float16 bits when exact, else None (same rules as depin_cbor_float)."""
    sign = (single >> 16) & 0x8000
    exp = (single >> 23) & 0xFF
    mant = single & 0x7FFFFF
    if exp == 0xFF:
        return 0x7E00 if mant else sign | 0x7C00
    if exp == 0:
        return sign if mant == 0 else None
    e = exp - 127
    if -14 <= e <= 15:
        return None if mant & 0x1FFF else sign | ((e + 15) << 10) | (mant >> 13)
    if -24 <= e < -14:
        sig = mant | 0x800000
        shift = -e - 1
        return None if sig & ((1 << shift) - 1) else sign | (sig >> shift)
    return None


def _float(value):
    if value != value:
        return b"\xf9\x7e\x00"
    try:
        packed = struct.pack(">f", value)
        exact = struct.unpack(">f", packed)[0] == value
    except (OverflowError, ValueError):
        exact = False
    if not exact:
        return b"\xfb" + struct.pack(">d", value)
    half = _half_bits(struct.unpack(">I", packed)[0])
    if half is not None:
        return struct.pack(">BH", 0xF9, half)
    return b"\xfa" + packed


def cbor_encode(value):
    """Encode None, bool, int, float, str, bytes, list/tuple and dict (keys sorted)."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _head(3, len(data)) + data
    if isinstance(value, (bytes, bytearray)):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join([cbor_encode(item) for item in value])
    if isinstance(value, dict):
        parts = [_head(5, len(value))]
        for key in sorted(value):
            parts.append(cbor_encode(key))
            parts.append(cbor_encode(value[key]))
        return b"".join(parts)
    raise TypeError("cannot encode %r as CBOR" % (value,))


def _read_head(data, i):
    if i >= len(data):
        raise BridgeError("cbor", "truncated")
    first = data[i]
    major, info = first >> 5, first & 0x1F
    i += 1
    if info < 24:
        return major, info, info, i
    if info > 27:
        raise BridgeError("cbor", "reserved or indefinite length")
    size = 1 << (info - 24)
    if i + size > len(data):
        raise BridgeError("cbor", "truncated")
    value = 0
    for k in range(size):
        value = (value << 8) | data[i + k]
    return major, info, value, i + size


def _skip(data, i, depth):
    """Skip one item of the kinds PROTOCOL.md section 4 allows; returns the next offset."""
    major, info, value, i = _read_head(data, i)
    if major in (0, 1):
        return i
    if major in (2, 3):
        if i + value > len(data):
            raise BridgeError("cbor", "truncated")
        return i + value
    if major in (4, 5):
        if depth >= 4:
            raise BridgeError("cbor", "nested too deep")
        for _ in range(value):
            if major == 5:
                key_major, _, _, i = _read_head(data, i)
                if key_major != 0:
                    raise BridgeError("cbor", "map key is not an unsigned integer")
            i = _skip(data, i, depth + 1)
        return i
    if major == 7 and (20 <= info <= 22 or 25 <= info <= 27):
        return i
    raise BridgeError("cbor", "tags and simple values are not allowed")


# ---- frames -------------------------------------------------------------------------------------


def encode_frame(frame_type, seq, payload):
    """Wire bytes of one frame, 0x00 included. ``payload`` is CBOR bytes or a value to encode."""
    if not isinstance(payload, (bytes, bytearray)):
        payload = cbor_encode(payload)
    body = struct.pack("<BBH", VERSION, frame_type, seq & 0xFFFF) + bytes(payload)
    return cobs_encode(body + struct.pack("<I", crc32(body))) + b"\x00"


def decode_frame(wire):
    """Check wire bytes (one trailing 0x00 allowed) -> (type, seq, payload CBOR bytes)."""
    wire = bytes(wire)
    if wire[-1:] == b"\x00":
        wire = wire[:-1]
    frame = cobs_decode(wire)
    if not 9 <= len(frame) <= MAX_FRAME:
        raise BridgeError("length", "%d bytes" % len(frame))
    if crc32(frame[:-4]) != struct.unpack("<I", frame[-4:])[0]:
        raise BridgeError("crc")
    version, frame_type, seq = struct.unpack("<BBH", frame[:4])
    if version != VERSION:
        raise BridgeError("version", "version %d" % version)
    if not READING <= frame_type <= LOG:
        raise BridgeError("type", "type %d" % frame_type)
    return frame_type, seq, frame[4:-4]


def parse_ack(payload):
    """An ack frame's payload -> (boot or None, acked type, request bits)."""
    major, _, pairs, i = _read_head(payload, 0)
    if major != 5:
        if _skip(payload, 0, 0) != len(payload):
            raise BridgeError("cbor", "bytes after the payload")
        raise BridgeError("payload", "not a map")
    fields = {}
    bad = False
    for _ in range(pairs):
        key_major, _, key, i = _read_head(payload, i)
        if key_major != 0:
            raise BridgeError("cbor", "map key is not an unsigned integer")
        start, i = i, _skip(payload, i, 1)
        if key > A_REQUEST:
            continue
        if key in fields:
            raise BridgeError("cbor", "duplicate key")
        value_major, _, value, _ = _read_head(payload, start)
        if value_major != 0 or value > 0xFFFFFFFF:
            bad = True
            fields[key] = None
            continue
        fields[key] = value
    if i != len(payload):
        raise BridgeError("cbor", "bytes after the payload")
    acked = fields.get(A_TYPE, READING)
    if bad or acked not in (READING, HELLO) or (A_BOOT not in fields and A_REQUEST not in fields):
        raise BridgeError("payload", "not an ack")
    return fields.get(A_BOOT), acked, fields.get(A_REQUEST, 0)


# ---- the link -----------------------------------------------------------------------------------


class DepinBridge:
    """Device side of the link: hello handshake, a ring of unacked readings, resend on timeout.

    ``uart`` needs write(bytes) and read(n) (plus any() if it has it); ``ticks_ms()`` returns
    milliseconds; ``ticks_diff(a, b)`` (time.ticks_diff on MicroPython) handles its wrap-around.
    """

    def __init__(self, uart, ticks_ms, device_id, firmware, sensors=(), boot_nonce=None,
                 ring_size=8, resend_ms=2000, hello_ms=1000, hello_every=0, ticks_diff=None):
        if not 1 <= ring_size <= 255:
            raise ValueError("ring_size must be 1..255")
        if boot_nonce is None:
            import os

            boot_nonce = struct.unpack("<I", os.urandom(4))[0]
        self.uart = uart
        self.ticks_ms = ticks_ms
        self.ticks_diff = ticks_diff or (lambda a, b: a - b)
        self.device_id = device_id
        self.firmware = firmware
        self.sensors = [[name, unit or ""] for name, unit in sensors]
        self.boot_nonce = boot_nonce & 0xFFFFFFFF
        self.ring_size = ring_size
        self.resend_ms = resend_ms
        self.hello_ms = hello_ms
        self.hello_every = hello_every
        self.next_seq = 0  # extended: low 16 bits on the wire, high bits = hello key 4
        self.ring = []  # FIFO of [state, seq, wire, sent_ms, tries]
        self.identified = False
        self.hello_pending = False
        self.hello_seq = 0
        self.hello_sent_ms = 0
        self.since_hello = 0
        self._rx = bytearray()
        self._rx_skip = False
        self.sent = self.resent = self.acked = self.rejected = 0
        self.hellos = self.timeouts = self.rx_bad = 0

    # -- public API

    def start(self):
        """A lone delimiter then the hello; call once at boot."""
        self.uart.write(b"\x00")
        self.identified = False
        self._send_hello(self.ticks_ms())

    def reading(self, sensor, value, unix_time=None):
        """Queue {0: sensor, 1: value, 2: unix_time}; False if the ring is full (not queued)."""
        payload = {R_SENSOR: sensor, R_VALUE: value}
        if unix_time is not None:
            payload[R_TIME] = unix_time
        return self.enqueue(payload)

    def enqueue(self, payload):
        """Queue a reading payload (a dict with int keys, or CBOR bytes); sent at once when
        identified. Returns False, counting it in ``rejected``, when the ring is full."""
        if len(self.ring) >= self.ring_size:
            self.rejected += 1
            return False
        now = self.ticks_ms()
        seq = self.next_seq & 0xFFFF
        slot = [QUEUED, seq, encode_frame(READING, seq, payload), now, 0]
        self.next_seq += 1
        self.ring.append(slot)
        if self.identified:
            self._transmit(slot, now)
            self.since_hello += 1
            if self.hello_every and self.since_hello >= self.hello_every:
                self._begin_hello(now)
        return True

    def log(self, level, message):
        """Best effort: not queued, not acked, dropped while unidentified."""
        if self.identified:
            payload = {L_LEVEL: level, L_MESSAGE: message}
            self.uart.write(encode_frame(LOG, self.next_seq & 0xFFFF, payload))

    def poll(self):
        """Read what the UART has, handle acks, run the timers. Call often."""
        while True:
            waiting = self.uart.any() if hasattr(self.uart, "any") else 64
            if not waiting:
                break
            data = self.uart.read(waiting)
            if not data:
                break
            self.feed(data)
        self.tick()

    def feed(self, data):
        """Bytes received from the gateway (when the caller reads the UART itself)."""
        for byte in data:
            if byte:
                if self._rx_skip:
                    continue
                if len(self._rx) >= 64:  # far longer than an ack: drop to the next delimiter
                    self._rx_skip = True
                    self._rx = bytearray()
                    self.rx_bad += 1
                    continue
                self._rx.append(byte)
                continue
            frame, self._rx = bytes(self._rx), bytearray()
            if self._rx_skip:
                self._rx_skip = False
            elif frame:
                self._receive(frame)

    def tick(self):
        now = self.ticks_ms()
        if not self.identified:
            if self.hello_pending and self.ticks_diff(now, self.hello_sent_ms) >= self.hello_ms:
                self._send_hello(now)
            return
        for slot in self.ring:
            if slot[0] == SENT and self.ticks_diff(now, slot[3]) >= self.resend_ms:
                self.timeouts += 1  # the gateway may have restarted: handshake, then resend
                self._begin_hello(now)
                return

    @property
    def unacked(self):
        return sum(1 for slot in self.ring if slot[0] != ACKED)

    # -- internals

    def _transmit(self, slot, now):
        if slot[4]:
            self.resent += 1
        else:
            self.sent += 1
        slot[4] += 1
        slot[0] = SENT
        slot[3] = now
        self.uart.write(slot[2])

    def _send_hello(self, now):
        seq = self.next_seq & 0xFFFF
        payload = {
            H_DEVICE: self.device_id,
            H_FIRMWARE: self.firmware,
            H_SENSORS: self.sensors,
            H_BOOT: self.boot_nonce,
            H_SEQ_HI: self.next_seq >> 16,
            H_RING: self.ring_size,
        }
        self.hello_pending = True
        self.hello_seq = seq
        self.hello_sent_ms = now
        self.hellos += 1
        self.uart.write(encode_frame(HELLO, seq, payload))

    def _begin_hello(self, now):
        self.identified = False
        for slot in self.ring:
            if slot[0] == SENT:
                slot[0] = QUEUED
        self._send_hello(now)

    def _receive(self, wire):
        try:
            frame_type, seq, payload = decode_frame(wire)
            if frame_type != ACK:
                raise BridgeError("type", "the gateway only sends acks")
            boot, acked, request = parse_ack(payload)
        except BridgeError:
            self.rx_bad += 1
            return
        now = self.ticks_ms()
        if request & REQUEST_HELLO and (self.identified or not self.hello_pending):
            self._begin_hello(now)
        if boot is None or boot != self.boot_nonce:
            return
        if acked == HELLO:
            if self.hello_pending and seq == self.hello_seq:
                self.hello_pending = False
                self.identified = True
                self.since_hello = 0
                for slot in self.ring:
                    if slot[0] == QUEUED:
                        self._transmit(slot, now)
            return
        for slot in self.ring:
            if slot[1] == seq and slot[0] in (QUEUED, SENT):
                slot[0] = ACKED
                self.acked += 1
                break
        while self.ring and self.ring[0][0] == ACKED:
            self.ring.pop(0)
