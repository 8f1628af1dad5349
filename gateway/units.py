"""Durations ("60s", "5m", "250ms") and sizes ("512MiB", "4kB") as config values."""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_duration", "parse_size"]

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


def parse_duration(text: str | int | float) -> float:
    """Seconds from "60s", "5m", "1h30m", "250ms"; a bare number means seconds."""
    if isinstance(text, bool):
        raise ValueError('expected a duration such as "60s" or "5m"')
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(compact):
        raise ValueError(f'{text!r} is not a duration such as "60s", "5m" or "1h30m"')
    return total


def parse_size(text: str | int) -> int:
    """Bytes from "512MiB", "4kB", "1.5GiB" or a bare integer."""
    if isinstance(text, bool):
        raise ValueError('expected a size such as "512MiB"')
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a size cannot be negative")
        return text
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f'{text!r} is not a size such as "512MiB", "64KiB" or "2GB"')
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def format_size(size: int) -> str:
    """Human-readable binary size, e.g. 536870912 -> "512.0 MiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
