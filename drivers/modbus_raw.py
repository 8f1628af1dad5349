"""A Modbus response without a register map, as raw u16 words: ``drivers decode modbus HEX``.

Polling needs a map (it decides what to request); decoding one captured response does not, so
the command shows the words with the unit and function and says how to name them. Framing and
CRC checks are those of ``drivers.modbus.parse_response`` (MBSL §2.5.1.1, §6.2.2).
"""

from __future__ import annotations

from drivers.base import FrameOk, Measurement, Options, Scalar
from drivers.modbus import EXCEPTION_BIT, FUNCTIONS, Modbus, int_option, parse_response
from gateway.errors import ConfigError, FrameError

__all__ = ["RAW_HINT", "decode_raw"]

RAW_HINT = (
    "no register map: raw u16 words r0, r1, ... from the first requested address; name and "
    "type them with --option registers=name:address:type[:order[:scale[:unit]]], "
    "e.g. --option registers=voltage:0:f32:abcd:1:V,current:2:u16::0.01:A"
)


def decode_raw(frame: bytes, options: Options | None = None) -> FrameOk:
    """A response without a register map (``drivers decode modbus HEX``): its words as u16.

    Unit and function come from the frame unless the ``unit``/``function`` options say what to
    expect; an exception response still raises FrameError naming the exception."""
    options = dict(options or {})
    for key in options:
        if key not in Modbus.OPTIONS:
            raise ConfigError(
                f"options.{key}", "unknown option", "use " + ", ".join(Modbus.OPTIONS)
            )
    frame = bytes(frame)
    if len(frame) < 2:
        raise FrameError("modbus", f"frame is {len(frame)} bytes, a response has at least 5", frame)
    fix = "the slave address, 1-247"
    unit = int_option(options, "unit", default=frame[0], low=1, high=247, fix=fix)
    function = int_option(
        options, "function", default=frame[1] & ~EXCEPTION_BIT, low=0, high=127, fix="3 or 4"
    )
    if function not in FUNCTIONS:
        raise FrameError("modbus", f"function {function:02X} is not 03 or 04 (a register read)")
    words = parse_response(frame, unit, function)
    values = {f"r{index}": Measurement(word) for index, word in enumerate(words)}
    meta: dict[str, Scalar] = {"unit": unit, "function": function, "type": "u16",
                               "registers": len(words), "hint": RAW_HINT}  # fmt: skip
    return FrameOk(frame, values, kind="raw_registers", meta=meta)
