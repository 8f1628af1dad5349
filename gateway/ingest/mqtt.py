"""MQTT ingest: our MQTT 5 client (``mqtt_codec`` + ``mqtt_conn``) feeding the ingest sink.

Each PUBLISH is checked (size, declared format), handed to the sink, and acknowledged only after
the sink made it durable: QoS 1 with PUBACK, QoS 2 with PUBREC (then PUBCOMP answers the
broker's PUBREL), so QoS 2 subscriptions are real: nothing is acknowledged from memory. The
session is persistent (fixed client id, clean start false, session expiry) and CONNECT carries
Receive Maximum, so the broker keeps unacknowledged and new messages while the gateway is down
and keeps a window of ``receive_maximum`` in flight while it runs.

Retained messages: subscribed with retain handling 1 (send only for a new subscription), so
the broker does not resend them on every reconnect of the persistent session; a delivery with
RETAIN set counts as a redelivery for deduplication (README, "Exactly once"). A QoS 2 PUBLISH
resent before our PUBREC (DUP set) is a redelivery too: deduplication drops it, and it is
acknowledged again once the group holding the original is durable.

The acknowledgements of one durable group leave as one write (``_flush_acks``, run by the sink
after the group's acks), queued to the connection's thread; those of an older connection are
dropped (the broker may have reused their packet ids and redelivers the messages anyway).
``gateway.ingest.mqtt_paho`` is the paho-mqtt adapter this replaced (``[mqtt] client = "paho"``).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import Counter

from gateway.config import MqttConfig
from gateway.errors import ConfigError
from gateway.ingest.dedup import mqtt_key
from gateway.ingest.mqtt_codec import Publish, encode_puback, encode_pubrec
from gateway.ingest.mqtt_conn import ConnectOptions, MqttConnection
from gateway.ingest.payload import validate_payload
from gateway.ingest.sink import IngestSink
from gateway.ingest.topics import FormatTable
from gateway.status import MqttStatus

__all__ = ["MqttIngest", "validate_payload"]

log = logging.getLogger(__name__)

SOURCE = "mqtt"


def tls_context(c: MqttConfig) -> ssl.SSLContext | None:
    """Verify the broker (CA file or the system store, and its host name); our certificate if
    configured. A file that cannot be read is a config error naming the key, not a retry loop."""
    if not c.tls:
        return None
    for key, file in (("ca_file", c.ca_file), ("cert_file", c.cert_file), ("key_file", c.key_file)):
        try:
            if file is not None:
                file.open("rb").close()
        except OSError as exc:
            raise ConfigError(f"mqtt.{key}", f"cannot read {file}: {exc.strerror}",
                              "check the path and its permissions") from None  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(c.ca_file) if c.ca_file else None)
        if c.cert_file is not None:
            keyfile = str(c.key_file) if c.key_file else None
            context.load_cert_chain(str(c.cert_file), keyfile)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError("mqtt.ca_file", f"TLS setup failed: {exc}",
                          "check ca_file, cert_file and key_file") from exc  # fmt: skip
    return context


class MqttIngest:
    def __init__(self, config: MqttConfig, sink: IngestSink) -> None:
        self.config = config
        self.sink = sink
        self._lock = threading.Lock()
        self.connected = False
        self.received = 0
        self.connects = 0
        self.disconnects = 0
        self.rejected: Counter[str] = Counter()
        self.last_error: str | None = None
        self._formats = FormatTable(config.topics)
        self._acks: list[tuple[int, bytes]] = []  # (generation, packet) of the group being acked
        c = config
        options = ConnectOptions(
            host=c.host, port=c.port, client_id=c.client_id,
            filters=tuple((rule.filter, c.qos) for rule in c.topics),
            keepalive=c.keepalive, session_expiry=c.session_expiry,
            receive_maximum=c.receive_maximum, username=c.username, password=c.password,
            tls=tls_context(c), reconnect_min=c.reconnect_min, reconnect_max=c.reconnect_max,
        )  # fmt: skip
        self.connection = MqttConnection(options, self)
        sink.on_durable.append(self._flush_acks)

    def start(self) -> None:
        self.connection.start()

    def stop(self) -> None:
        self.connection.stop()

    @property
    def network_thread(self) -> threading.Thread | None:
        """The connection's thread, for supervision: only a bug ends it (errors reconnect)."""
        return self.connection.thread

    # -- connection callbacks (the connection's thread) --------------------------------------

    def on_connected(self, generation: int, session_present: bool) -> None:
        with self._lock:
            self.connected = True
            self.connects += 1
        log.info("connected to %s:%d, subscribed to %s (session %s)", self.config.host,
                 self.config.port, ", ".join(rule.filter for rule in self.config.topics),
                 "resumed" if session_present else "new")  # fmt: skip

    def on_refused(self, reason: str) -> None:
        error = f"broker refused connection: {reason}"
        if error != self.last_error:
            log.error("%s", error)
        self.last_error = error

    def on_subscribe_refused(self, filters: list[str]) -> None:
        self.last_error = "broker refused subscription to " + ", ".join(filters)
        log.error("%s", self.last_error)

    def on_lost(self, reason: str, stage: str) -> None:
        where = f"{self.config.host}:{self.config.port}"
        with self._lock:
            was_connected, self.connected = self.connected, False
        if stage == "refused":  # on_refused said why; the close that follows adds nothing
            return
        if was_connected:
            self.disconnects += 1
            error = f"disconnected: {reason}"
            log.warning("disconnected from broker (%s); reconnecting", reason)
        elif stage == "handshake":  # e.g. a TLS alert: the broker did not want our certificate
            error = (f"connection to {where} closed before the broker accepted it ({reason}); "
                     "the broker's log says why (client certificate?)")  # fmt: skip
        else:
            error = f"cannot connect to {where}: {reason}"
        if error != self.last_error and not was_connected:  # once per cause, not per retry
            log.warning("%s; retrying", error)
        self.last_error = error

    def on_publish(self, generation: int, message: Publish) -> None:
        self.received += 1
        topic, payload, qos = message.topic, message.payload, message.qos
        ack = (self._ack, (generation, message.packet_id, qos)) if qos else None
        reason = validate_payload(payload, self._formats.format_for(topic), self.config.max_payload)
        if reason is not None:
            self.rejected[reason] += 1
            self.sink.reject(SOURCE, topic, payload[: self.config.max_payload], reason, ack)
            return
        # A retained delivery (RETAIN set on a message sent for a subscription) is an old
        # message sent again, like a DUP redelivery: identical bytes already seen are dropped.
        again = message.dup or message.retain
        self.sink.submit(
            SOURCE, topic, payload, ack, key=mqtt_key(topic, payload), redelivered=again
        )

    # -- committer thread --------------------------------------------------------------------

    def _ack(self, token: tuple[int, int, int]) -> None:
        generation, packet_id, qos = token
        packet = encode_puback(packet_id) if qos == 1 else encode_pubrec(packet_id)
        with self._lock:
            self._acks.append((generation, packet))

    def _flush_acks(self, _count: int) -> None:
        """Send the group's acknowledgements (all durable now) as one write, in order."""
        with self._lock:
            acks, self._acks = self._acks, []
        by_generation: dict[int, list[bytes]] = {}
        for generation, packet in acks:
            by_generation.setdefault(generation, []).append(packet)
        for generation, packets in by_generation.items():
            self.connection.send(generation, b"".join(packets))

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
