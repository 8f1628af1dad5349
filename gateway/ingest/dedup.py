"""Exactly once in the restored data: which incoming messages are duplicates (pure).

The rule (also in README, "Exactly once"):

* An MQTT message whose JSON payload has a top-level ``"seq"`` or ``"id"`` member is a duplicate
  when an earlier message in the window had the same topic and byte-identical payload (which
  includes the same id). This catches broker redeliveries and publishers' own retries.
* A message without such a member is a duplicate only when the broker flagged it as a
  redelivery (DUP) and an earlier message in the window had the same topic and identical bytes:
  two identical readings sent on purpose are both kept.
* A message whose id was seen but whose bytes differ (a sensor whose counter restarted) is kept.
* Firmware-bridge frames use the driver's key (device id, boot nonce, seq).

Keys are stored with each reading, so the window is rebuilt from the spool after a crash and
``restore`` drops any ``id:`` key it meets twice.
"""

from __future__ import annotations

import hashlib
from collections import deque

from gateway.errors import InputError
from gateway.ingest.payload import ID_MEMBER
from gateway.jsonsafe import loads_bounded

__all__ = ["DedupWindow", "has_top_level_id", "mqtt_key"]


def has_top_level_id(payload: bytes) -> bool:
    """Whether a JSON object payload has a top-level "seq" or "id" member.

    Fast path for flat objects (no nested braces before the match); nested payloads are parsed
    within ``gateway.ingest.payload``'s bounds, and one beyond them has no id (it is quarantined
    before it gets here; this must not crash whoever asks anyway).
    """
    match = ID_MEMBER.search(payload)
    if match is None:
        return False
    prefix = payload[: match.start()]
    if prefix.lstrip().startswith(b"{") and not any(c in prefix[1:] for c in b"{}[]"):
        return True
    try:
        document = loads_bounded(payload, "dedup")
    except InputError:
        return False
    return isinstance(document, dict) and ("seq" in document or "id" in document)


def mqtt_key(topic: str, payload: bytes) -> str:
    """``id:<hash>`` or ``h:<hash>`` of topic and payload bytes (see the module rule)."""
    digest = hashlib.blake2b(payload, digest_size=16, key=topic.encode("utf-8")[:64]).hexdigest()
    return ("id:" if has_top_level_id(payload) else "h:") + digest


def is_duplicate_candidate(key: str, redelivered: bool) -> bool:
    """Whether a seen key means "drop": always for ``id:`` keys, only on redelivery otherwise."""
    return redelivered or key.startswith("id:")


def _compact(key: str) -> str | int:
    """The same key, smaller in memory: ``id:``/``h:`` plus 32 hex digits as one int tagged
    with its prefix (~48 bytes instead of ~84 for the string; the window holds 100,000 of them
    by default). Any other key stays as it is. Distinct keys stay distinct."""
    prefix, _, digest = key.partition(":")
    tag = {"id": 1, "h": 2}.get(prefix)
    if tag is None or len(digest) != 32:
        return key
    try:
        return int(digest, 16) << 2 | tag
    except ValueError:
        return key


class DedupWindow:
    """The last ``size`` keys, oldest forgotten first (O(1) per message)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._order: deque[str | int] = deque()
        self._keys: set[str | int] = set()

    def __contains__(self, key: str) -> bool:
        return _compact(key) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        self._add(_compact(key))

    def _add(self, compact: str | int) -> None:
        if self.size <= 0 or compact in self._keys:
            return
        self._keys.add(compact)
        self._order.append(compact)
        if len(self._order) > self.size:
            self._keys.discard(self._order.popleft())

    def seen(self, key: str, redelivered: bool) -> bool:
        """True if this message must be dropped as a duplicate; otherwise remembers it."""
        compact = _compact(key)
        if compact in self._keys and is_duplicate_candidate(key, redelivered):
            return True
        self._add(compact)
        return False
