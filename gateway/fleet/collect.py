"""Collect the retained heartbeats from the fleet broker (thin paho adapter for the CLI)."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.deals.fleet import parse_broker_url
from gateway.errors import RemoteError
from gateway.fleet.heartbeat import STATUS_WILDCARD

__all__ = ["MAX_GATEWAYS", "MAX_HEARTBEAT", "BoundedInbox", "collect_retained"]

# The fleet broker is untrusted: anyone may publish under the status wildcard. A heartbeat is a
# few hundred bytes; keep a little more of a bigger one (it then fails to parse and shows as
# UNSIGNED instead of vanishing) and stop remembering new topics past a fleet no CLI table shows.
MAX_HEARTBEAT = 16 * 1024
MAX_GATEWAYS = 10_000


class BoundedInbox:
    """The newest payload per topic, within the bounds above; an empty payload clears a topic."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: dict[str, bytes] = {}

    def put(self, topic: str, payload: bytes | bytearray) -> bool:
        """False when the message was not kept (a new topic past ``MAX_GATEWAYS``)."""
        with self.lock:
            if not payload:
                self.messages.pop(topic, None)
                return True
            if topic not in self.messages and len(self.messages) >= MAX_GATEWAYS:
                return False
            self.messages[topic] = bytes(payload[: MAX_HEARTBEAT + 1])
            return True

    def snapshot(self) -> dict[str, bytes]:
        with self.lock:
            return dict(self.messages)


def collect_retained(url: str, window: float = 2.0, quiet: float = 0.5) -> dict[str, bytes]:
    """Newest payload per status topic: stops ``quiet`` s after the last message, at most
    ``window`` s after the subscription is acknowledged. Empty payloads (cleared) are dropped."""
    host, port = parse_broker_url(url)
    inbox = BoundedInbox()
    subscribed = threading.Event()
    last = [time.monotonic()]
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"depin-fleet-view-{os.getpid()}-{time.time_ns()}"
    )

    def on_subscribe(*_args: object) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        inbox.put(message.topic, message.payload)
        last[0] = time.monotonic()

    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        raise RemoteError(f"fleet broker {host}:{port}", f"cannot connect: {exc}") from exc
    client.subscribe(STATUS_WILDCARD, qos=1)
    client.loop_start()
    try:
        if not subscribed.wait(5):
            raise RemoteError(f"fleet broker {host}:{port}", "subscription not acknowledged")
        deadline = time.monotonic() + window
        while time.monotonic() < deadline and time.monotonic() - last[0] < quiet:
            time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        client.loop_stop()
    return inbox.snapshot()
