"""Which MQTT payloads are quarantined (pure); the JSON bounds are ``gateway.jsonsafe``'s.

Quarantine rule (``validate_payload``; README, "Guarantees"):

* ``json`` topics: the payload must be UTF-8 JSON within the bounds, else it is quarantined with
  the reason (``oversized``, ``empty``, ``not_utf8``, ``too_deep``, ``number_too_long``,
  ``invalid_unicode``, ``invalid_json``) and acked.
* ``any`` topics take opaque bytes, except that a payload which carries a ``"seq"``/``"id"``
  member must be looked into by deduplication; when that is beyond the bounds it is quarantined
  (``too_deep``/``number_too_long``) rather than guessed at.
"""

from __future__ import annotations

import re

from gateway.errors import InputError
from gateway.jsonsafe import json_problem, loads_bounded

__all__ = ["ID_MEMBER", "may_carry_id", "validate_payload"]

ID_MEMBER = re.compile(rb'"(?:seq|id)"\s*:\s*(?:-?\d|")')


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
