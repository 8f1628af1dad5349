"""Bounded JSON for untrusted bytes (pure): the one place that decides what may be parsed.

``json.loads`` recurses once per nesting level (a RecursionError at about 1,000 levels, raised in
whatever thread was parsing: paho's, for MQTT), converts integer literals in time quadratic in
their length (a ValueError past 4,300 digits) and accepts escaped lone surrogates (``"\\ud800"``)
that no UTF-8 encoder takes back. So every parser of bytes from a publisher, a sensor, a storage
node or the fleet broker goes through ``loads_bounded`` (or ``json_problem`` first): a linear scan
refuses nesting deeper than ``MAX_DEPTH`` and number literals longer than ``MAX_NUMBER`` digits
*before* ``json.loads`` runs, and no exception but ``InputError`` ever leaves.

Quarantine rule for MQTT (``validate_payload``; README, "Guarantees"):

* ``json`` topics: the payload must be UTF-8 JSON within the bounds, else it is quarantined with
  the reason (``oversized``, ``empty``, ``not_utf8``, ``too_deep``, ``number_too_long``,
  ``invalid_unicode``, ``invalid_json``) and acked.
* ``any`` topics take opaque bytes, except that a payload which carries a ``"seq"``/``"id"``
  member must be looked into by deduplication; when that is beyond the bounds it is quarantined
  (``too_deep``/``number_too_long``) rather than guessed at.

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

__all__ = [
    "ID_MEMBER",
    "MAX_DEPTH",
    "MAX_NUMBER",
    "json_problem",
    "loads_bounded",
    "may_carry_id",
    "validate_payload",
]

MAX_DEPTH = 64  # far above any reading's shape, far below the interpreter's recursion limit
MAX_NUMBER = 1000  # digits in one number literal; int() itself refuses above 4,300

# A whole string (escapes skipped; possibly unterminated). Possessive quantifiers keep the engine
# linear, and it runs in C: strings are replaced, not iterated over in Python.
_STRING = re.compile(rb'"(?:[^"\\]++|\\[\x00-\xff])*+"?')
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % (MAX_NUMBER + 1))
ID_MEMBER = re.compile(rb'"(?:seq|id)"\s*:\s*(?:-?\d|")')
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


def may_carry_id(payload: bytes) -> bool:
    """Whether the payload has something that looks like a ``"seq"``/``"id"`` member."""
    return ID_MEMBER.search(payload) is not None


def validate_payload(payload: bytes, fmt: str, max_payload: int) -> str | None:
    """The quarantine reason for a payload, or None if it is acceptable (module rule)."""
    if len(payload) > max_payload:
        return "oversized"
    if fmt == "any":
        problem = json_problem(payload)  # cheap first: almost always None
        return problem if problem is not None and may_carry_id(payload) else None
    if not payload:
        return "empty"
    if fmt == "json":
        try:
            loads_bounded(payload, "mqtt")
        except InputError as exc:
            return exc.reason
        return None
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    return None
