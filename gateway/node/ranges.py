"""HTTP Range requests for piece bytes (pure; RFC 9110 section 14): one byte range at a time.

``parse_range(header, size)`` returns ``None`` to serve the whole body (no header, a unit other
than bytes, or several ranges: RFC 9110 lets a server ignore Range), a ``(start, end)`` inclusive
pair for a 206, or raises ``RangeNotSatisfiable`` for a 416.
"""

from __future__ import annotations

import re

__all__ = ["RangeNotSatisfiable", "parse_range"]

# ASCII digits only (RFC 9110 DIGIT): ``\d`` would also match other scripts' digits, which int()
# accepts; and at most _DIGITS of them, since int() of 4,300+ digits raises (CPython's limit).
_RANGE = re.compile(r"^[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*$", re.ASCII)
_DIGITS = 20  # > any file size (2**64 has 20 digits)
_HUGE = 10**_DIGITS


def _number(digits: str) -> int:
    """The value of a byte position, saturated: past _DIGITS digits it is beyond every file."""
    stripped = digits.lstrip("0") or "0"
    return int(stripped) if len(stripped) <= _DIGITS else _HUGE


class RangeNotSatisfiable(Exception):
    """No byte of the requested range exists (416); ``size`` goes into Content-Range."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for {size} bytes")
        self.size = size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = _RANGE.match(spec)
    if match is None or (not match[1] and not match[2]):
        raise RangeNotSatisfiable(size)
    if not match[1]:  # suffix: the last n bytes
        length = _number(match[2])
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - length), size - 1
    start = _number(match[1])
    end = _number(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(size)
    return start, min(end, size - 1)
