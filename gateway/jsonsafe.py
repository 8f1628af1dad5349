"""Bounded JSON for untrusted bytes (pure, a shared leaf): the one place that decides what
may be parsed.

``json.loads`` recurses once per nesting level (a RecursionError at about 1,000 levels, raised in
whatever thread was parsing; with a raised recursion limit the C stack overflows instead),
converts integer literals in time quadratic in their length (a ValueError past 4,300 digits) and
accepts escaped lone surrogates (``"\\ud800"``) that no UTF-8 encoder takes back. So every parser
of bytes from a publisher, a sensor, a storage node, an RPC node or the fleet broker goes through
``loads_bounded`` (or ``json_problem`` first): a linear scan refuses nesting deeper than
``MAX_DEPTH`` and number literals longer than ``MAX_NUMBER`` digits *before* ``json.loads`` runs,
and no exception but ``InputError`` ever leaves.

Cost on the hot path: an ordinary reading has a few brackets, so two ``bytes.count`` calls prove
the depth bound and the scan never runs; numbers are only scanned for when the payload is longer
than a number may be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from gateway.errors import InputError

__all__ = ["MAX_DEPTH", "MAX_NUMBER", "json_problem", "loads_bounded"]

MAX_DEPTH = 64  # far above any reading's shape, far below the interpreter's recursion limit
MAX_NUMBER = 1000  # digits in one number literal; int() itself refuses above 4,300

# A whole string (escapes skipped; possibly unterminated). Possessive quantifiers keep the engine
# linear, and it runs in C: strings are replaced, not iterated over in Python.
_STRING = re.compile(rb'"(?:[^"\\]++|\\[\x00-\xff])*+"?')
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % (MAX_NUMBER + 1))
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEP = [0] * 256  # depth change per byte, for the running sum in C below
for _byte, _step in zip(b"[{]}", (1, 1, -1, -1), strict=True):
    _STEP[_byte] = _step


def json_problem(data: bytes) -> str | None:
    """``"too_deep"`` or ``"number_too_long"`` if ``data`` is beyond the bounds, else None.

    Only the bounds: whether the text is valid JSON is ``json.loads``' job, once this said yes.
    """
    deep = data.count(b"[") + data.count(b"{") > MAX_DEPTH
    if not deep and (len(data) <= MAX_NUMBER or _LONG_DIGITS.search(data) is None):
        return None
    # Brackets and digits inside strings do not count; '""' keeps neighbours apart.
    outside = _STRING.sub(b'""', data) if b'"' in data else data
    if _too_deep(outside.translate(None, _NOT_BRACKETS)):
        return "too_deep"
    return "number_too_long" if _LONG_DIGITS.search(outside) is not None else None


def _too_deep(brackets: bytes, chunk: int = 256) -> bool:
    """Whether the running depth ever exceeds ``MAX_DEPTH``: summed in C a chunk at a time, so
    a payload that is deep early is refused without summing the rest."""
    depth = 0
    for start in range(0, len(brackets), chunk):
        steps = map(_STEP.__getitem__, brackets[start : start + chunk])
        sums = list(accumulate(steps, initial=depth))
        if max(sums) > MAX_DEPTH:
            return True
        depth = sums[-1]
    return False


def loads_bounded(
    data: bytes | str, source: str, parse_constant: Callable[[str], Any] | None = None
) -> Any:
    """The parsed JSON value of untrusted ``data``, or ``InputError(source, reason)``.

    Strings must be valid Unicode: an escaped lone surrogate is refused (``invalid_unicode``),
    so what comes out can always be encoded again.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    problem = json_problem(raw)
    if problem is not None:
        raise InputError(source, problem)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(source, "not_utf8") from None
    try:
        value = json.loads(text, parse_constant=parse_constant)
    except (ValueError, RecursionError, MemoryError):
        raise InputError(source, "invalid_json") from None
    if "\\u" in text and not _encodable(value):
        raise InputError(source, "invalid_unicode")
    return value


def _encodable(value: Any) -> bool:
    # Depth is bounded by now, so json.dumps cannot recurse far; it walks the value in C.
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return False
    return True
