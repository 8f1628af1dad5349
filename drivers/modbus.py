"""Modbus RTU master: poll holding (FC03) or input (FC04) registers and name the values.

References: "MODBUS Application Protocol Specification V1.1b3" (cited as "MBAP") for function
codes, quantities and exception codes; "MODBUS over Serial Line V1.02" (cited as "MBSL") for RTU
framing, addresses and the CRC.

Options (strings, from ``[[serial]] options``):

- ``unit``: slave address 1-247 (default 1).
- ``function``: 3 (read holding registers, default) or 4 (read input registers).
- ``registers``: the register map, required for polling; see below. Without it,
  ``drivers decode modbus HEX`` shows a response's words as raw u16 registers
  (``drivers/modbus_raw.py``).
- ``interval``: time between polls, e.g. "10s" (default "10s").

Register map: comma-separated entries ``name:address:type[:order[:scale[:unit]]]``::

    registers = "voltage:0:f32:abcd:1:V,current:2:u16::0.01:A,energy:0x10:u32:cdab:0.1:kWh"

- ``address``: the register address on the wire, 0-based, decimal or ``0x`` hex (holding register
  "40001" in a datasheet's 1-based numbering is address 0).
- ``type``: ``u16``, ``i16`` (one register), ``u32``, ``i32``, ``f32`` (IEEE 754, two registers).
- ``order``: where the value's big-endian bytes A B C D sit on the wire: ``abcd`` (big-endian, the
  default), ``cdab`` (word-swapped), ``badc`` (bytes swapped in each word), ``dcba``
  (little-endian).
  For 16-bit types ``badc``/``dcba`` (or ``ba``) swap the two bytes; ``abcd``/``cdab``/``ab`` don't.
- ``scale``: multiplier (default 1: integers stay integers); ``unit``: free text (default none).

One request covers every register (lowest to highest address, at most 125: MBAP §6.3/§6.4). A NaN
or infinite f32 (meters use NaN for "not available") gives ``None``.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from drivers.base import Driver, FrameBad, FrameEvent, FrameOk, Measurement, Options
from gateway.errors import ConfigError, FrameError
from gateway.units import parse_duration

__all__ = [
    "EXCEPTIONS",
    "Modbus",
    "Register",
    "build_request",
    "build_response",
    "crc16",
    "decode_value",
    "encode_value",
    "int_option",
    "parse_registers",
    "parse_response",
]

MAX_FRAME = 256  # MBSL §2.5.1.1: an RTU frame is at most 256 bytes
MAX_QUANTITY = 125  # MBAP §6.3/§6.4: FC03/FC04 read 1 to 125 registers
FUNCTIONS = (3, 4)  # MBAP §6.3 Read Holding Registers, §6.4 Read Input Registers
EXCEPTION_BIT = 0x80  # MBAP §7: an exception response sets the function code's top bit
#: MBAP §7 exception codes.
EXCEPTIONS = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
#: type -> (registers, struct format of its big-endian bytes)
TYPES = {"u16": (1, ">H"), "i16": (1, ">h"), "u32": (2, ">I"), "i32": (2, ">i"), "f32": (2, ">f")}
#: wire byte order -> the same order for one-register types (word swaps do nothing there)
ORDERS = {"abcd": "ab", "cdab": "ab", "badc": "ba", "dcba": "ba", "ab": "ab", "ba": "ba"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXAMPLE = 'e.g. registers = "voltage:0:f32:abcd:1:V,current:2:u16::0.01:A"'


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/MODBUS (MBSL §6.2.2): reflected poly 0xA001, init 0xFFFF; sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _with_crc(pdu: bytes) -> bytes:
    return pdu + crc16(pdu).to_bytes(2, "little")


def build_request(unit: int, function: int, start: int, quantity: int) -> bytes:
    """``unit fc start(u16 BE) quantity(u16 BE) CRC`` (MBAP §6.3)."""
    return _with_crc(struct.pack(">BBHH", unit, function, start, quantity))


def build_response(unit: int, function: int, words: Sequence[int]) -> bytes:
    """``unit fc bytecount words(u16 BE each) CRC``: what a slave answers (simulators, tests)."""
    return _with_crc(struct.pack(f">BBB{len(words)}H", unit, function, 2 * len(words), *words))


def parse_response(frame: bytes, unit: int, function: int) -> tuple[int, ...]:
    """The register words of a FC03/FC04 response, or FrameError naming the first bad field."""

    def bad(reason: str) -> FrameError:
        return FrameError("modbus", reason, frame)

    if len(frame) < 5:  # MBAP §7: the shortest response (an exception) is 5 bytes
        raise bad(f"frame is {len(frame)} bytes, a response has at least 5")
    if len(frame) > MAX_FRAME:
        raise bad(f"frame is {len(frame)} bytes, limit {MAX_FRAME}")
    given, computed = int.from_bytes(frame[-2:], "little"), crc16(frame[:-2])
    if given != computed:
        raise bad(f"bad CRC: frame says {given:04X}, computed {computed:04X}")
    if frame[0] != unit:
        raise bad(f"slave id {frame[0]}, expected {unit}")
    if frame[1] == function | EXCEPTION_BIT:
        if len(frame) != 5:
            raise bad(f"exception response is {len(frame)} bytes, expected 5")
        meaning = EXCEPTIONS.get(frame[2], "unknown exception code")
        raise bad(f"exception {frame[2]:02X} {meaning} (function {function:02X})")
    if frame[1] != function:
        raise bad(f"function {frame[1]:02X}, expected {function:02X}")
    count = frame[2]
    if count != len(frame) - 5:
        raise bad(f"byte count {count} but {len(frame) - 5} data bytes")
    if count % 2:
        raise bad(f"byte count {count} is odd; registers are 2 bytes each")
    return struct.unpack(f">{count // 2}H", frame[3:-2])


def _wire_order(type_: str, order: str) -> str:
    return order if TYPES[type_][0] == 2 else ORDERS[order]


def encode_value(type_: str, order: str, value: int | float) -> tuple[int, ...]:
    """The register words a slave sends for ``value`` (the inverse of ``decode_value``)."""
    wire = _wire_order(type_, order)
    natural = struct.pack(TYPES[type_][1], value)
    placed = bytes(natural[ord(letter) - ord("a")] for letter in wire)
    return struct.unpack(f">{len(wire) // 2}H", placed)


def decode_value(type_: str, order: str, words: Sequence[int]) -> int | float:
    """The value held by ``words`` (as received, each a big-endian u16) in ``order``."""
    wire = _wire_order(type_, order)
    placed = struct.pack(f">{len(words)}H", *words)
    natural = bytearray(len(wire))
    for position, letter in enumerate(wire):
        natural[ord(letter) - ord("a")] = placed[position]
    (value,) = struct.unpack(TYPES[type_][1], natural)
    if type_ == "f32":
        return _shortest_f32(value, bytes(natural))
    return int(value)


def _shortest_f32(value: float, natural: bytes) -> float:
    """The shortest decimal that is the same f32 (230.1, not 230.10000610351562)."""
    if not math.isfinite(value):
        return value
    for digits in range(6, 10):  # 9 significant digits always round-trip an f32 (IEEE 754 §5.12)
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == natural:
            return candidate
    return value


@dataclass(frozen=True, slots=True)
class Register:
    """One named value in the register map."""

    name: str
    address: int
    type: str
    order: str = "abcd"
    scale: Decimal | None = None
    unit: str | None = None

    @property
    def width(self) -> int:
        return TYPES[self.type][0]

    def measure(self, words: Sequence[int]) -> Measurement:
        value = decode_value(self.type, self.order, words)
        if isinstance(value, float) and not math.isfinite(value):
            return Measurement(None, self.unit)
        if self.scale is not None:
            # Decimal keeps 3 * 0.1 at 0.3 rather than 0.30000000000000004.
            value = float(Decimal(repr(value)) * self.scale)
        return Measurement(value, self.unit)


def parse_registers(spec: str) -> tuple[Register, ...]:
    """Parse the ``registers`` option; ConfigError(key="options.registers") names the bad entry."""
    registers: list[Register] = []
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        registers.append(_parse_entry(entry))
    if not registers:
        raise ConfigError("options.registers", "no registers given", _EXAMPLE)
    names = [register.name for register in registers]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("options.registers", f"name {name!r} is used twice", "rename one")
    low = min(r.address for r in registers)
    high = max(r.address + r.width for r in registers)
    if high - low > MAX_QUANTITY:
        raise ConfigError(
            "options.registers",
            f"registers span {high - low} addresses ({low} to {high - 1})",
            f"one request reads at most {MAX_QUANTITY} consecutive registers; drop some",
        )
    return tuple(registers)


def _parse_entry(entry: str) -> Register:
    def bad(problem: str, fix: str) -> ConfigError:
        return ConfigError("options.registers", f"entry {entry!r}: {problem}", fix)

    parts = [part.strip() for part in entry.split(":")]
    if not 3 <= len(parts) <= 6:
        raise bad("expected name:address:type[:order[:scale[:unit]]]", _EXAMPLE)
    name, address_text, type_, *rest = parts
    order, scale_text, unit = (*rest, "", "", "")[:3]
    if not _NAME.fullmatch(name):
        raise bad(f"{name!r} is not a name", "use letters, digits and _, e.g. voltage")
    try:
        address = int(address_text, 0)
    except ValueError:
        address = -1
    if not 0 <= address <= 0xFFFF:
        raise bad(f"address {address_text!r} is not 0-65535", "use the 0-based wire address")
    type_ = type_.lower()
    if type_ not in TYPES:
        raise bad(f"type {type_!r} is unknown", "use one of " + ", ".join(TYPES))
    order = order.lower() or "abcd"
    allowed = [o for o in ORDERS if TYPES[type_][0] == 1 or len(o) == 4]
    if order not in allowed:
        raise bad(
            f"word order {order!r} is unknown for {type_}", "use one of " + ", ".join(allowed)
        )
    if address + TYPES[type_][0] - 1 > 0xFFFF:
        raise bad(f"{type_} at {address} runs past address 65535", "check the address")
    scale = None
    if scale_text:
        try:
            scale = Decimal(scale_text)
        except InvalidOperation:
            scale = None
        if scale is None or not scale.is_finite():
            raise bad(f"scale {scale_text!r} is not a number", "e.g. 0.1, or leave it empty")
    return Register(name, address, type_, order, scale, unit or None)


def int_option(options: Options, key: str, *, default: int, low: int, high: int, fix: str) -> int:
    """A decimal option in ``low..high``, or ConfigError naming ``options.KEY``."""
    text = options.get(key, str(default)).strip()
    value = int(text) if text.isdigit() and text.isascii() else -1
    if not low <= value <= high:
        raise ConfigError(f"options.{key}", f"{text!r} is not {low}-{high}", fix)
    return value


class Modbus(Driver):
    """A Modbus RTU master polling one slave's holding or input registers."""

    name = "modbus"
    summary = "Modbus RTU slaves: poll FC03/FC04 registers by map (MODBUS over Serial Line V1.02)"
    #: MBSL §2.5.1 makes 19200 8E1 the default, but most field meters and RS-485 sensors ship at
    #: 9600 8N1; set baudrate and parity in [[serial]] to match the device.
    default_baudrate: ClassVar[int] = 9600

    OPTIONS: ClassVar[tuple[str, ...]] = ("unit", "function", "registers", "interval")

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        for key in self.options:
            if key not in self.OPTIONS:
                fix = "use " + ", ".join(self.OPTIONS)
                raise ConfigError(f"options.{key}", "unknown option", fix)
        # MBSL §2.2: 0 is broadcast (never answered), 1-247 are slaves, 248-255 reserved.
        self.unit = int_option(
            self.options, "unit", default=1, low=1, high=247, fix="the slave address, 1-247"
        )
        self.function = int_option(
            self.options, "function", default=3, low=3, high=4, fix="3 (holding) or 4 (input)"
        )
        if "registers" not in self.options:
            raise ConfigError("options.registers", "missing", _EXAMPLE)
        self.registers = parse_registers(self.options["registers"])
        try:
            self.interval = parse_duration(self.options.get("interval", "10s"))
        except ValueError as error:
            raise ConfigError("options.interval", str(error), 'e.g. interval = "10s"') from None
        if self.interval < 0.1:
            raise ConfigError("options.interval", "shorter than 0.1s", 'e.g. interval = "10s"')
        self.start = min(r.address for r in self.registers)
        self.quantity = max(r.address + r.width for r in self.registers) - self.start
        self._request = build_request(self.unit, self.function, self.start, self.quantity)
        self._buffer = bytearray()

    @property
    def poll_interval(self) -> float | None:
        return self.interval

    def poll_command(self) -> bytes:
        return self._request

    def decode(self, frame: bytes) -> FrameOk:
        frame = bytes(frame)
        words = parse_response(frame, self.unit, self.function)
        if len(words) != self.quantity:
            reason = f"{len(words)} registers, expected {self.quantity} from address {self.start}"
            raise FrameError("modbus", reason, frame)
        values = {
            r.name: r.measure(words[r.address - self.start : r.address - self.start + r.width])
            for r in self.registers
        }
        meta = {"unit": self.unit, "function": self.function, "start": self.start}
        return FrameOk(frame, values, meta=meta)

    def _frame_length(self, start: int) -> int | None:
        """Length of the response that would start at ``start`` (0: need more bytes), or None
        where no response to our request can start. RTU frames carry no delimiter, only a length
        implied by function and byte count (MBSL §2.5.1.1), so this is how we resync."""
        buffer = self._buffer
        if buffer[start] != self.unit:
            return None
        if len(buffer) < start + 3:
            return 0
        if buffer[start + 1] == self.function | EXCEPTION_BIT:
            return 5
        if buffer[start + 1] != self.function:
            return None
        length = buffer[start + 2] + 5
        if length == 2 * self.quantity + 5:
            return length
        # A byte count we did not ask for: a frame only if it is already whole with a good CRC,
        # so a stray header never makes us wait for up to 256 bytes.
        end = start + length
        if end <= len(buffer) and crc16(buffer[start : end - 2]) == int.from_bytes(
            buffer[end - 2 : end], "little"
        ):
            return length
        return None

    def feed(self, data: bytes) -> list[FrameEvent]:
        self._buffer += data
        buffer = self._buffer
        events: list[FrameEvent] = []
        junk_from = position = 0

        def flush_junk(start: int, until: int) -> None:
            if until > start:
                skipped = bytes(buffer[start:until])
                reason = f"skipped {len(skipped)} bytes that are no response"
                events.append(FrameBad(FrameError("modbus", reason, skipped[:64])))

        while position < len(buffer):
            length = self._frame_length(position)
            if length == 0 or (length and position + length > len(buffer)):
                break  # a response may start here: wait for the rest
            if length:
                frame = bytes(buffer[position : position + length])
                if crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little"):
                    flush_junk(junk_from, position)
                    try:
                        events.append(self.decode(frame))
                    except FrameError as error:
                        events.append(FrameBad(error))
                    position = junk_from = position + length
                    continue
            left = len(buffer) - position
            if left < len(self._request) and self._request.startswith(buffer[position:]):
                break  # perhaps the start of our echoed request: wait for the rest
            if buffer.startswith(self._request, position):
                # Half-duplex RS-485 adapters without echo suppression read back our own request.
                flush_junk(junk_from, position)
                position = junk_from = position + len(self._request)
                continue
            position += 1
        flush_junk(junk_from, position)
        del buffer[:position]
        return events
