"""MQTT ingest through paho-mqtt 2.x (``[mqtt] client = "paho"``; the default is our own client).

paho runs its network loop in its own thread. Each PUBLISH is checked (size, declared format),
handed to the sink, and acknowledged with ``Client.ack`` only after the sink made it durable
(``manual_ack=True``). The session is persistent (fixed client id, clean_start false, session
expiry), so the broker keeps unacknowledged and new messages while the gateway is down.

QoS 2 is accepted from publishers but subscribed at QoS 1: paho answers PUBREC before the
application sees a QoS 2 message and keeps that state only in memory, so a crash between PUBREC
and fsync would lose it; QoS 1 plus deduplication gives exactly once in the restored data.

Retained messages: subscribed with retain handling 1 (send only for a new subscription), so
the broker does not resend them on every reconnect of the persistent session; a delivery with
RETAIN set counts as a redelivery for deduplication (README, "Exactly once").

Acks from a previous connection are never sent on a new one: the broker may have reused their
packet ids, and it redelivers those messages anyway (deduplicated, then acked again).

The PUBACKs of one durable group leave as one write (``_flush_acks``, run by the sink after the
group's acks): ``Client.ack`` per message costs a wake-up of paho's loop and a 4-byte ``send``
each, which at a few thousand readings/s took a large share of paho's thread (bench/RESULTS.md).
"""

from __future__ import annotations

import logging
import random
import ssl
import struct
import sys
import threading
from collections import Counter
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config import MqttConfig
from gateway.errors import ConfigError
from gateway.ingest.dedup import mqtt_key
from gateway.ingest.payload import validate_payload
from gateway.ingest.sink import IngestSink
from gateway.status import MqttStatus

__all__ = ["PahoMqttIngest"]

log = logging.getLogger(__name__)

SOURCE = "mqtt"

# PUBACK with remaining length 2 (packet id only): MQTT 5 section 3.4.2.1 lets a sender omit the
# reason code when it is 0x00 (success) and there are no properties. paho sends the same bytes.
_PUBACK = struct.Struct("!BBH")


def _matches(topic_filter: str, topic: str) -> bool:
    return paho.topic_matches_sub(topic_filter, topic)


class PahoMqttIngest:
    def __init__(self, config: MqttConfig, sink: IngestSink) -> None:
        self.config = config
        self.sink = sink
        self._generation = 0
        self._lock = threading.Lock()
        self.connected = False
        self.received = 0
        self.connects = 0
        self.disconnects = 0
        self.rejected: Counter[str] = Counter()
        self.last_error: str | None = None
        self._refused = False  # the broker's CONNACK said no; the disconnect that follows is known
        self._formats: dict[str, str] = {}
        self._pubacks: list[tuple[int, int]] = []  # (generation, mid) of the group being acked
        self.client = self._make_client()
        # paho has no public call to queue raw packets; without it, ack one by one.
        self._queue_packet = getattr(self.client, "_packet_queue", None)
        sink.on_durable.append(self._flush_acks)

    def _make_client(self) -> paho.Client:
        c = self.config
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        client.max_queued_messages_set(0)
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            for key, file in (
                ("ca_file", c.ca_file),
                ("cert_file", c.cert_file),
                ("key_file", c.key_file),
            ):
                try:
                    if file is not None:
                        file.open("rb").close()
                except OSError as exc:
                    raise ConfigError(
                        f"mqtt.{key}",
                        f"cannot read {file}: {exc.strerror}",
                        "check the path and its permissions",
                    ) from None
            try:
                client.tls_set(
                    ca_certs=str(c.ca_file) if c.ca_file else None,
                    certfile=str(c.cert_file) if c.cert_file else None,
                    keyfile=str(c.key_file) if c.key_file else None,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError(
                    "mqtt.ca_file",
                    f"TLS setup failed: {exc}",
                    "check ca_file, cert_file and key_file",
                ) from exc
        client.reconnect_delay_set(
            min_delay=max(1, round(c.reconnect_min)), max_delay=max(1, round(c.reconnect_max))
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry
        # Without this the broker sends at most its default in-flight window and waits for acks
        # that we only send after an fsync: throughput collapses (see bench/RESULTS.md).
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def start(self) -> None:
        c = self.config
        self.client.connect_async(
            c.host,
            c.port,
            keepalive=c.keepalive,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def network_thread(self) -> threading.Thread | None:
        """paho's loop thread, for supervision: paho has no public accessor and clears it when
        the loop ends, and an exception in paho (or in our callbacks) ends that loop for good."""
        return cast("threading.Thread | None", getattr(self.client, "_thread", None))

    # -- paho callbacks (paho's thread) ------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = True
            self.last_error = f"broker refused connection: {reason}"
            log.error("%s", self.last_error)
            return
        with self._lock:
            self._generation += 1
            self.connected = True
            self.connects += 1
        qos = min(self.config.qos, 1)
        # Retained messages only for a subscription the session did not hold yet: our session
        # is persistent, so a restart must not bring every retained reading back (section 2).
        options = SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        subscriptions = [(rule.filter, options) for rule in self.config.topics]
        client.subscribe(subscriptions)
        log.info(
            "connected to %s:%d, subscribed to %s",
            self.config.host,
            self.config.port,
            ", ".join(rule.filter for rule in self.config.topics),
        )

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` around connect (refused, TLS verify failed)
        # without passing the exception; it is still the one being handled.
        error = f"cannot connect to {self.config.host}:{self.config.port}: {sys.exc_info()[1]}"
        if error != self.last_error:  # once per new cause, not on every retry
            log.warning("%s; retrying", error)
        self.last_error = error

    def _on_disconnect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._lock:
            self._generation += 1  # acks still queued for the old connection are now void
            was_connected, self.connected = self.connected, False
        if was_connected:
            self.disconnects += 1
            self.last_error = f"disconnected: {reason}"
            log.warning("disconnected from broker (%s); reconnecting", reason)
        elif reason.is_failure and not self._refused:  # closed before a CONNACK: e.g. TLS alert
            error = (
                f"connection to {self.config.host}:{self.config.port} closed before the broker "
                f"accepted it ({reason}); the broker's log says why (client certificate?)"
            )
            if error != self.last_error:
                log.warning("%s", error)
            self.last_error = error
        self._refused = False
        # Jitter the backoff so a fleet restarted together does not reconnect in lockstep.
        low = max(1, round(self.config.reconnect_min * random.uniform(1.0, 2.0)))
        client.reconnect_delay_set(
            min_delay=low, max_delay=max(low, round(self.config.reconnect_max))
        )

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self.received += 1
        topic = message.topic
        payload = cast(bytes, message.payload)  # paho types it bytes | bytearray; it is bytes
        ack = (self._ack, (self._generation, message.mid, message.qos)) if message.qos else None
        reason = validate_payload(payload, self._format_for(topic), self.config.max_payload)
        if reason is not None:
            self.rejected[reason] += 1
            self.sink.reject(SOURCE, topic, payload[: self.config.max_payload], reason, ack)
            return
        # A retained delivery (RETAIN set on a message sent for a subscription) is an old
        # message sent again, like a DUP redelivery: identical bytes already seen are dropped.
        again = bool(message.dup or message.retain)
        self.sink.submit(
            SOURCE, topic, payload, ack, key=mqtt_key(topic, payload), redelivered=again
        )

    def _format_for(self, topic: str) -> str:
        fmt = self._formats.get(topic)
        if fmt is None:
            fmt = next((r.format for r in self.config.topics if _matches(r.filter, topic)), "any")
            if len(self._formats) < 10_000:
                self._formats[topic] = fmt
        return fmt

    # -- committer thread --------------------------------------------------------------------

    def _ack(self, token: tuple[int, int, int]) -> None:
        generation, mid, qos = token
        if qos == 1 and self._queue_packet is not None:
            with self._lock:
                self._pubacks.append((generation, mid))
        elif generation == self._generation:
            self.client.ack(mid, qos)

    def _flush_acks(self, _count: int) -> None:
        """Send the group's PUBACKs (all durable now) as one packet, in order."""
        with self._lock:
            pubacks, self._pubacks = self._pubacks, []
            current = self._generation
        if not pubacks or self._queue_packet is None:
            return
        pack = _PUBACK.pack
        data = b"".join([pack(paho.PUBACK, 2, mid) for gen, mid in pubacks if gen == current])
        if data:
            self._queue_packet(paho.PUBACK, data, 0, 0)

    def stats(self) -> MqttStatus:
        return MqttStatus(
            connected=self.connected,
            broker=f"{self.config.host}:{self.config.port}",
            received=self.received,
            connects=self.connects,
            disconnects=self.disconnects,
            rejected=dict(self.rejected),
            receive_maximum=self.config.receive_maximum,
            last_error=self.last_error,
        )
