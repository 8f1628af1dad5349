"""Durations ("60s", "5m", "250ms") and sizes ("512MiB", "4kB") as config values.

Both parsers accept only what an operator could mean: a string, or for durations a finite
non-negative number and for sizes a non-negative integer. Anything else (a TOML float size, a
list, NaN, a 5,000-digit string) is a ``ValueError`` with the expected form, never another
exception, so the config layer can turn it into one line naming the key.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["format_duration", "format_size", "parse_duration", "parse_size"]

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0,
                   "d": 86400.0}  # fmt: skip
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
# Longer text is never a sensible value; the cap keeps digit strings far below Python's
# int-from-string limit and the regexes linear on hostile input.
_MAX_TEXT = 64
_DURATION_FORM = 'a duration such as "60s", "5m" or "1h30m"'
_SIZE_FORM = 'a size such as "512MiB", "64KiB" or "2GB"'


def _text(value: object, form: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected {form}, got {_kind(value)}")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"{value[:20]!r}... ({len(value)} characters) is not {form}")
    return value.strip().lower()


def _kind(value: object) -> str:
    return {bool: "a boolean", float: "a float", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def parse_duration(text: object) -> float:
    """Seconds from "60s", "5m", "1h30m", "250ms"; a bare number means seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"{text} is not a finite, non-negative number of seconds")
        return float(text)
    compact = _text(text, _DURATION_FORM).replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(compact):
        raise ValueError(f"{text!r} is not {_DURATION_FORM}")
    return total


def parse_size(text: object) -> int:
    """Bytes from "512MiB", "4kB", "1.5GiB" or a bare integer."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a size cannot be negative")
        return text
    match = _SIZE.fullmatch(_text(text, _SIZE_FORM))
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not {_SIZE_FORM}")
    # Decimal, not float: "1.1GiB" is exact and no digit string overflows to infinity.
    return int(Decimal(match.group(1)) * _SIZE_UNITS[match.group(2)])


def format_size(size: int) -> str:
    """Human-readable binary size, e.g. 536870912 -> "512.0 MiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_duration(seconds: float) -> str:
    """The shortest exact-enough spelling for messages: 0.01 -> "10ms", 604800 -> "7d"."""
    if seconds == 0:
        return "0s"
    for unit, factor in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3),
                         ("us", 1e-6), ("ns", 1e-9)):  # fmt: skip
        if seconds >= factor or unit == "ns":
            return f"{seconds / factor:g}{unit}"
    return f"{seconds:g}s"  # pragma: no cover - the loop always returns at "ns"
