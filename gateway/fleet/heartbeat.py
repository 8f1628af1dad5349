"""Signed heartbeats on the fleet broker (DESIGN section 7): a pure core and a thin paho adapter.

Every ``heartbeat_interval`` the daemon publishes, retained and at QoS 1, on
``depin/v1/gateways/<gateway-id>/status`` a message signed with the gateway identity key
(``gateway.market.messages.seal_signed``: Ed25519 over DAG-CBOR of ``{kind, body}``)::

    {"kind": "depin/heartbeat/v1", "signer": "ed25519:<hex>", "signature": "<hex>",
     "body": {"gateway_id", "public_key", "online": true, "sent_at", ...status subset}}

The same topic carries the MQTT last will, a signed ``{"online": false, "since": <connect time>}``
prepared before every (re)connect, so a crashed or unplugged gateway is marked offline by the
broker; a clean shutdown publishes the same message with ``since`` = the shutdown time.

The adapter never blocks or fails ingest: paho connects and reconnects in its own thread, a
timer thread publishes only while connected (no backlog of stale heartbeats), and every problem
is kept in ``last_error`` for the status page (``last_error["fleet"]``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from gateway.deals.fleet import parse_broker_url
from gateway.keys import format_gateway_public
from gateway.market.messages import seal_signed
from gateway.status import StatusSnapshot
from gateway.supervise import SupervisedThread, spawn

__all__ = [
    "HEARTBEAT_KIND",
    "STATUS_WILDCARD",
    "HeartbeatPublisher",
    "encode",
    "heartbeat_body",
    "offline_body",
    "status_topic",
]

log = logging.getLogger(__name__)

HEARTBEAT_KIND = "depin/heartbeat/v1"
STATUS_WILDCARD = "depin/v1/gateways/+/status"


def status_topic(gateway_id: str) -> str:
    return f"depin/v1/gateways/{gateway_id}/status"


def heartbeat_body(snapshot: StatusSnapshot, sent_at: float) -> dict[str, Any]:
    """The compact, secret-free subset of a status snapshot that a heartbeat carries."""
    details = snapshot.details
    clock = details.get("clock", {})
    sources = details.get("sources", {})
    return {
        "gateway_id": snapshot.gateway_id,
        "public_key": snapshot.public_key,
        "version": snapshot.version,
        "uptime_s": int(snapshot.uptime_s),
        "readings_total": snapshot.readings_total,
        "spool_pending": snapshot.spool_pending,
        "batches_sealed": snapshot.batches_sealed,
        "batches_durable": snapshot.batches_durable,
        "quarantined": snapshot.quarantined,
        "backpressure": snapshot.backpressure,
        "ledger_head": snapshot.ledger_head,
        "clock_synced": bool(clock.get("synced", False)),
        "sources": {str(name): bool(s.get("connected")) for name, s in sources.items()},
        "errors": sorted(str(k) for k in details.get("last_error", {})),
        "last_error": _last_error(details.get("last_error", {})),
        **_storage_summary(details.get("storage", {})),
        "sent_at": int(sent_at),
        "online": True,
    }


# A heartbeat stays a few hundred bytes whatever a component's error says: the fleet page shows
# one line per gateway, and the collector drops (shows as UNSIGNED) anything over 16 KiB.
_ERROR_CHARS = 160


def _last_error(errors: Mapping[str, Any]) -> str | None:
    """The first component's error as one short line (``errors`` lists them all by name)."""
    for name in sorted(errors):
        text = " ".join(str(errors[name]).split())
        return f"{name}: {text}"[:_ERROR_CHARS]
    return None


def _storage_summary(storage: Mapping[str, Any]) -> dict[str, Any]:
    """Proof failures and spend: amounts as decimal strings (attoFIL overflows DAG-CBOR's u64)."""
    nodes = storage.get("nodes", [])
    failures = sum(int(n.get("proofs_failed", 0)) for n in nodes if isinstance(n, Mapping))
    spent = storage.get("fil", {}).get("spent", 0) if storage.get("enabled") else 0
    return {"proof_failures": failures, "spent_attofil": str(int(spent))}


def offline_body(gateway_id: str, public_key: str, since: float) -> dict[str, Any]:
    return {"gateway_id": gateway_id, "public_key": public_key, "online": False,
            "since": int(since)}  # fmt: skip


def encode(body: Mapping[str, Any], key: SigningKey) -> bytes:
    wire = seal_signed(HEARTBEAT_KIND, body, key)
    return json.dumps(wire, separators=(",", ":"), sort_keys=True).encode()


class HeartbeatPublisher:
    """Publishes ``snapshot()`` as a signed heartbeat every ``interval`` seconds (thread-based).

    ``key`` returns the current identity key; ``snapshot`` is called on the timer thread.
    """

    def __init__(
        self,
        url: str,
        key: Callable[[], SigningKey],
        gateway_id: str,
        snapshot: Callable[[], StatusSnapshot],
        interval: float,
        *,
        keepalive: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port = parse_broker_url(url)
        self.key = key  # read at every signing: a key rotation takes effect at once
        self.gateway_id = gateway_id
        self.topic = status_topic(gateway_id)
        self.snapshot = snapshot
        self.interval = interval
        # the broker sends the will 1.5 x keepalive after a silent loss (power cut); a kill or
        # crash closes the socket and the will goes out at once
        self.keepalive = keepalive or int(min(60.0, max(5.0, 2 * interval)))
        self.clock = clock
        self.published = 0
        self.last_error: str | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: SupervisedThread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"depin-gateway-fleet-{gateway_id}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_pre_connect = self._on_pre_connect
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(1, 30)
        self.client.max_queued_messages_set(4)

    def _offline(self) -> bytes:
        key = self.key()
        public = format_gateway_public(key.verify_key)
        return encode(offline_body(self.gateway_id, public, self.clock()), key)

    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        client.will_set(self.topic, self._offline(), qos=1, retain=True)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.last_error = f"fleet broker {self.host}:{self.port} refused: {reason}"
            return
        self.last_error = None
        self._wake.set()  # overwrite the retained will at once

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self.last_error = f"cannot reach fleet broker {self.host}:{self.port}"

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stopping.is_set():
            self.last_error = f"disconnected from fleet broker {self.host}:{self.port}: {reason}"

    def publish_heartbeat(self) -> bool:
        """One heartbeat now, if connected; never raises."""
        if not self.client.is_connected():
            return False
        try:
            key = self.key()
            body = heartbeat_body(self.snapshot(), self.clock())
            body["public_key"] = format_gateway_public(key.verify_key)  # the key that signs
            payload = encode(body, key)
            info = self.client.publish(self.topic, payload, qos=1, retain=True)
        except Exception as exc:  # the heartbeat must never take the daemon down
            self.last_error = f"heartbeat not published: {exc}"
            log.exception("fleet heartbeat failed")
            return False
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.last_error = f"heartbeat not published: {mqtt.error_string(info.rc)}"
            return False
        self.published += 1
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stopping.is_set():
                self.publish_heartbeat()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        self._thread = spawn(self._run, "fleet-heartbeat")

    @property
    def thread(self) -> SupervisedThread | None:
        return self._thread

    @property
    def network_thread(self) -> threading.Thread | None:
        """paho's loop thread (paho has no public accessor; it clears it when the loop ends)."""
        return cast("threading.Thread | None", getattr(self.client, "_thread", None))

    def stop(self, timeout: float = 2.0) -> None:
        """Clean shutdown: publish the signed offline message, then disconnect (no will)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(Exception):
            if self.client.is_connected():
                info = self.client.publish(self.topic, self._offline(), qos=1, retain=True)
                info.wait_for_publish(timeout)
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
