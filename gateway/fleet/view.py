"""The fleet view: classify retained heartbeats and render them. Pure: bytes and a clock in.

A message is trusted only if it is a ``depin/heartbeat/v1`` message whose Ed25519 signature
verifies, whose signer is the ``public_key`` it claims, and whose ``gateway_id`` is the one in its
topic. Anything else, however garbled, is shown as UNSIGNED and never raises::

    verified, online=false                       -> OFFLINE   (clean shutdown or last will)
    verified, online=true, now - sent_at > stale -> STALE     (publisher silent, no will seen)
    verified, online=true                        -> ONLINE
    anything else                                -> UNSIGNED  (reason says why)

A valid signature proves which key sent a heartbeat, not that the key belongs to that gateway:
``gateway.fleet.pins`` then turns a verified entry signed by a key other than the pinned one
into KEY CHANGED (and drops its body).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.fleet.heartbeat import HEARTBEAT_KIND
from gateway.jsonsafe import loads_bounded
from gateway.market.messages import open_signed

__all__ = [
    "KEY_CHANGED",
    "STATES",
    "FleetEntry",
    "classify",
    "classify_all",
    "gateway_id_from_topic",
    "render_table",
]

ONLINE, OFFLINE, STALE, UNSIGNED = "ONLINE", "OFFLINE", "STALE", "UNSIGNED"
KEY_CHANGED = "KEY CHANGED"  # set by gateway.fleet.pins: verified, but not by the pinned key
STATES = (ONLINE, OFFLINE, STALE, UNSIGNED, KEY_CHANGED)
DEFAULT_STALE_S = 180.0  # three default heartbeat intervals
_SHOWN = ("readings_total", "spool_pending", "batches_sealed", "batches_durable", "quarantined",
          "backpressure", "ledger_head", "version", "uptime_s", "clock_synced", "sources",
          "errors", "sent_at", "since", "public_key", "last_error", "proof_failures",
          "spent_attofil")  # fmt: skip


@dataclass(frozen=True, slots=True)
class FleetEntry:
    """One gateway as the fleet sees it; ``body`` holds verified fields only (empty if UNSIGNED)."""

    gateway_id: str
    state: str
    age_s: float | None = None
    reason: str = ""
    body: Mapping[str, Any] = field(default_factory=dict)
    pinned_key: str | None = None  # the key the fleet trusts for this id, when pinned

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"gateway_id": self.gateway_id, "state": self.state}
        data["age_s"] = None if self.age_s is None else round(self.age_s, 1)
        if self.reason:
            data["reason"] = self.reason
        if self.pinned_key is not None:
            data["pinned_key"] = self.pinned_key
        return data | {k: self.body[k] for k in _SHOWN if k in self.body}


def gateway_id_from_topic(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) == 5 and parts[:3] == ["depin", "v1", "gateways"] and parts[4] == "status":
        return parts[3]
    return topic


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _verify(topic_id: str, payload: bytes) -> dict[str, Any]:
    """The verified body; raises ValueError (or anything, on hostile input) if not trusted."""
    body, signer = open_signed(loads_bounded(payload, "heartbeat"), HEARTBEAT_KIND)
    if body.get("public_key") != "ed25519:" + bytes(signer).hex():
        raise ValueError("signer is not the body's public_key")
    if body.get("gateway_id") != topic_id:
        raise ValueError("gateway_id does not match the topic")
    if not isinstance(body.get("online"), bool):
        raise ValueError("online must be true or false")
    if not _number(body.get("sent_at" if body["online"] else "since")):
        raise ValueError("sent_at/since must be unix seconds")
    return body


def classify(topic: str, payload: bytes, now: float, stale_after: float) -> FleetEntry:
    topic_id = gateway_id_from_topic(topic)
    try:
        body = _verify(topic_id, payload)
    except Exception as exc:  # untrusted bytes: every failure, whatever its type, is UNSIGNED
        return FleetEntry(topic_id, UNSIGNED, reason=str(exc)[:120] or type(exc).__name__)
    if not body["online"]:
        return FleetEntry(topic_id, OFFLINE, now - float(body["since"]), body=body)
    age = now - float(body["sent_at"])
    return FleetEntry(topic_id, STALE if age > stale_after else ONLINE, age, body=body)


def classify_all(
    messages: Mapping[str, bytes], now: float, stale_after: float = DEFAULT_STALE_S
) -> list[FleetEntry]:
    return [classify(t, messages[t], now, stale_after) for t in sorted(messages)]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _head(value: Any) -> str:
    text = _cell(value)
    return text if len(text) <= 16 else f"{text[:8]}..{text[-6:]}"


def _age(age: float | None) -> str:
    if age is None:
        return "-"
    seconds = max(0, round(age))
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def render_table(entries: Iterable[FleetEntry]) -> str:
    header = ("GATEWAY", "STATE", "READINGS", "SPOOL", "SEALED/DURABLE", "BACKPRESSURE",
              "LEDGER_HEAD", "AGE")  # fmt: skip
    rows = [header]
    for e in entries:
        b = e.body
        sealed = f"{_cell(b.get('batches_sealed'))}/{_cell(b.get('batches_durable'))}"
        rows.append((e.gateway_id[:40], e.state, _cell(b.get("readings_total")),
                     _cell(b.get("spool_pending")), sealed if b.get("online") else "-",
                     _cell(b.get("backpressure")), _head(b.get("ledger_head")),
                     _age(e.age_s)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)
