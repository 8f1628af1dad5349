"""HTTP Range requests for piece bytes (pure; RFC 9110 section 14): one byte range at a time.

``parse_range(header, size)`` returns ``None`` to serve the whole body (no header, a unit other
than bytes, or several ranges: RFC 9110 lets a server ignore Range), a ``(start, end)`` inclusive
pair for a 206, or raises ``RangeNotSatisfiable`` for a 416.
"""

from __future__ import annotations

import re

__all__ = ["RangeNotSatisfiable", "parse_range"]

_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


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
        length = int(match[2])
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - length), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(size)
    return start, min(end, size - 1)
