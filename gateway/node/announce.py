"""Announce the node's signed ask, retained, on the fleet broker (paho-mqtt 2.x, own thread).

Topic ``depin/v1/nodes/<provider-id>/ask``, QoS 1, retained, republished every
``announce_interval`` and on every (re)connect, so a gateway subscribing at any time finds the
latest ask; gateways verify the signature and the expiry before trusting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["Announcer", "ask_topic"]

log = logging.getLogger(__name__)


def ask_topic(provider_id: str) -> str:
    return f"depin/v1/nodes/{provider_id}/ask"


class Announcer:
    def __init__(
        self,
        make_ask: Callable[[], dict[str, Any]],
        provider_id: str,
        host: str,
        port: int,
        interval: float,
    ) -> None:
        self.make_ask = make_ask
        self.topic = ask_topic(provider_id)
        self.host = host
        self.port = port
        self.interval = interval
        self.published = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"depin-node-{provider_id}",
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused connection: {reason}"
            return
        self._loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=60)
        self.client.loop_start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            if not self.client.is_connected():
                continue
            info = self.client.publish(self.topic, json.dumps(self.make_ask()), qos=1, retain=True)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                self.published += 1
            else:
                self.last_error = f"publish failed: {paho.error_string(info.rc)}"
                log.warning("ask announcement: %s", self.last_error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._disconnect)

    def _disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
