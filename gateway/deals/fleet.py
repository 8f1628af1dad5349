"""Asks from the fleet broker: subscribe to ``depin/v1/nodes/+/ask`` (retained) with paho.

A thin adapter: every message's payload goes to ``on_ask`` (called on paho's network thread);
verification and "newest seq wins" happen in ``discovery.AskBook``. Connecting is asynchronous
and retried by paho, so an absent broker never blocks the gateway.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.deals.discovery import ASK_TOPIC
from gateway.errors import ConfigError

__all__ = ["AskSubscriber", "parse_broker_url"]

log = logging.getLogger(__name__)


def parse_broker_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else "mqtt://" + url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ConfigError("fleet.broker", f"{url!r} is not mqtt://host:port", "e.g. mqtt://h:1883")
    return parts.hostname, parts.port or 1883


class AskSubscriber:
    def __init__(self, url: str, client_id: str, on_ask: Callable[[bytes], None]) -> None:
        self.host, self.port = parse_broker_url(url)
        self.on_ask = on_ask
        self.received = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 5)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(ASK_TOPIC, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        try:
            self.on_ask(bytes(message.payload))
        except Exception:  # never let one bad ask kill paho's thread
            log.exception("ask from %s not handled", message.topic)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
