"""``depin-gateway drivers list`` and ``drivers decode DRIVER HEX [--option k=v]``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from drivers.base import FrameOk
from drivers.registry import create, driver_class, names
from gateway.errors import ConfigError, FrameError

__all__ = ["drivers_main"]


def _options(pairs: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(
                "--option", f"{pair!r} is not key=value", "e.g. --option mode=passive"
            )
        options[key.strip()] = value.strip()
    return options


def _frame_bytes(text: str) -> bytes:
    compact = "".join(text.split()).removeprefix("0x")
    try:
        return bytes.fromhex(compact)
    except ValueError:
        raise ConfigError("HEX", f"{text[:40]!r} is not hex", "e.g. 424d001c...") from None


def _event_json(event: FrameOk) -> dict[str, object]:
    result: dict[str, object] = {"kind": event.kind, "values": event.values_json()}
    if event.key is not None:
        result["key"] = event.key
    if event.meta:
        result["meta"] = dict(event.meta)
    return result


def drivers_main(
    action: str, driver: str | None, frame_hex: str | None, option_pairs: Sequence[str], out: TextIO
) -> int:
    if action == "list":
        for name in names():
            cls = driver_class(name)
            out.write(f"{name:<10} {cls.default_baudrate:>6} baud  {cls.summary}\n")
        return 0
    if not driver or not frame_hex:
        raise ConfigError(
            "drivers decode", "needs DRIVER and HEX", "e.g. drivers decode pms5003 424d..."
        )
    options = _options(option_pairs)
    frame = _frame_bytes(frame_hex)
    try:
        if driver == "modbus" and "registers" not in options:
            from drivers.modbus_raw import decode_raw

            event = decode_raw(frame, options)  # a map is what polling needs, not decoding
        else:
            event = create(driver, options).decode(frame)
    except FrameError as exc:
        raise FrameError(driver, f"bad frame: {exc.reason}", frame) from None
    out.write(json.dumps(_event_json(event), indent=2) + "\n")
    return 0
