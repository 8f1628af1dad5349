"""The thin I/O around ``mqtt_codec``: one thread, one socket (TCP or TLS), reconnect with backoff.

The thread connects, sends CONNECT, waits for CONNACK, subscribes, then loops on a selector over
the socket and a wake-up socketpair: whatever ``recv`` returns (up to 256 KiB, so a backlog
arrives as hundreds of packets per call) goes through ``Decoder.feed`` and each event to the
handler. Other threads never touch the socket: ``send`` queues bytes for the current connection
and wakes the loop, which writes them (an SSL socket must not be read and written from two
threads at once). Bytes queued for an older connection are dropped: the broker may have reused
their packet ids, and it redelivers those messages anyway.

A socket or protocol error ends the connection (the handler hears why) and the thread reconnects
after a jittered, doubling delay; anything else (a bug in a handler) ends the thread, and the
supervisor reports it (``gateway.supervise``).
"""

from __future__ import annotations

import contextlib
import random
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from gateway.ingest.mqtt_codec import (
    ConnAck,
    Decoder,
    Disconnect,
    Event,
    MqttProtocolError,
    Publish,
    PubRel,
    SubAck,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_pubcomp,
    encode_subscribe,
)
from gateway.ingest.mqtt_reasons import connack_reason
from gateway.supervise import SupervisedThread, spawn

__all__ = ["ConnectOptions", "Handler", "MqttConnection"]

_RECV = 256 * 1024
_SUBSCRIBE_ID = 1


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    host: str
    port: int
    client_id: str
    filters: tuple[tuple[str, int], ...]
    keepalive: int
    session_expiry: int
    receive_maximum: int
    username: str | None
    password: str | None
    tls: ssl.SSLContext | None
    reconnect_min: float
    reconnect_max: float
    retain_handling: int = 1  # retained messages only for a new subscription


class Handler(Protocol):
    def on_connected(self, generation: int, session_present: bool) -> None: ...
    def on_publish(self, generation: int, message: Publish) -> None: ...
    def on_refused(self, reason: str) -> None: ...
    def on_subscribe_refused(self, filters: list[str]) -> None: ...
    def on_lost(self, reason: str, stage: str) -> None:
        """The connection ended in ``stage``: "connect" (TCP, TLS), "handshake" (before
        CONNACK), "refused" (the CONNACK said no; ``on_refused`` heard why) or "connected"."""


class _Closed(Exception):
    """The connection ended normally (stop requested)."""


class MqttConnection:
    def __init__(self, options: ConnectOptions, handler: Handler) -> None:
        self.options = options
        self.handler = handler
        self.generation = 0
        self._lock = threading.Lock()
        self._out: list[bytes] = []
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: SupervisedThread | None = None
        self.pings = 0
        self._stage = "connect"
        self._decoder = Decoder()
        self._early: list[Event] = []

    @property
    def thread(self) -> SupervisedThread | None:
        return self._thread

    def start(self) -> None:
        self._thread = spawn(self._run, "mqtt")

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(10)
        if self._thread is None or not self._thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    def send(self, generation: int, data: bytes) -> None:
        """Queue ``data`` for the connection ``generation`` (any thread); dropped if it ended."""
        with self._lock:
            if generation != self.generation:
                return
            self._out.append(data)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\x00")
        except BlockingIOError:  # already awake: the pair's buffer is full of wake-ups
            pass
        except OSError:  # closed by stop(): nobody is left to wake
            pass

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.options.reconnect_min
        while not self._stop.is_set():
            self._stage = "connect"
            try:
                with self._open() as sock:
                    self._stage = "handshake"
                    self._session(sock)
                    self._stage = "connected"
                    self._serve(sock)
            except _Closed:
                return
            except (OSError, MqttProtocolError) as exc:
                reason = str(exc) or type(exc).__name__
                with self._lock:
                    self.generation += 1
                    self._out.clear()
                self.handler.on_lost(reason, self._stage)
            if self._stage == "connected":
                delay = self.options.reconnect_min
            # Jittered, so a fleet restarted together does not reconnect in lockstep.
            self._stop.wait(delay * random.uniform(1.0, 2.0))
            delay = min(self.options.reconnect_max, delay * 2)

    def _open(self) -> socket.socket:
        o = self.options
        sock = socket.create_connection((o.host, o.port), timeout=max(5.0, o.keepalive))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if o.tls is not None:
                sock = o.tls.wrap_socket(sock, server_hostname=o.host)
        except BaseException:
            sock.close()
            raise
        return sock

    def _session(self, sock: socket.socket) -> None:
        """CONNECT, CONNACK, SUBSCRIBE."""
        o = self.options
        sock.sendall(encode_connect(o.client_id, keepalive=o.keepalive, clean_start=False,
                                    session_expiry=o.session_expiry,
                                    receive_maximum=o.receive_maximum,
                                    username=o.username, password=o.password))  # fmt: skip
        self._decoder = Decoder()
        while True:
            data = sock.recv(_RECV)
            if not data:
                raise ConnectionError("connection closed before the broker accepted it")
            events = self._decoder.feed(data)
            if events:
                break
        first, self._early = events[0], events[1:]
        if not isinstance(first, ConnAck):
            raise MqttProtocolError(f"expected CONNACK, got {type(first).__name__}")
        if first.reason >= 0x80:
            self._stage = "refused"
            self.handler.on_refused(connack_reason(first))
            raise ConnectionRefusedError(f"broker refused connection: {first.reason:#04x}")
        filters = [(f, q) for f, q in o.filters]
        sock.sendall(encode_subscribe(_SUBSCRIBE_ID, filters, o.retain_handling))
        with self._lock:
            self.generation += 1
            generation = self.generation
        self.handler.on_connected(generation, first.session_present)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(max(5.0, self.options.keepalive))  # bounds a sendall the broker stalls
        keepalive = self.options.keepalive
        last_sent = time.monotonic()
        ping_sent: float | None = None
        self._dispatch(self._early)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                ready = selector.select(max(0.0, last_sent + keepalive * 0.75 - now))
                if self._stop.is_set():
                    self._goodbye(sock)
                if any(key.fileobj is sock for key, _ in ready):
                    self._receive(sock)
                    ping_sent = None  # anything from the broker shows it is alive
                with self._lock:
                    out, self._out = self._out, []
                with_wake = any(key.fileobj is self._wake_r for key, _ in ready)
                if with_wake:
                    self._drain_wake()
                now = time.monotonic()
                if not out and now - last_sent >= keepalive * 0.75:
                    if ping_sent is not None and now - ping_sent > keepalive:
                        raise TimeoutError(f"no answer from the broker for {keepalive} s")
                    out, ping_sent = [encode_pingreq()], ping_sent or now
                    self.pings += 1
                if out:
                    sock.sendall(b"".join(out))
                    last_sent = now

    def _receive(self, sock: socket.socket) -> None:
        data = sock.recv(_RECV)
        if not data:
            raise ConnectionError("connection closed by the broker")
        # TLS may hold decrypted bytes the selector cannot see.
        while isinstance(sock, ssl.SSLSocket) and sock.pending():
            data += sock.recv(_RECV)
        self._dispatch(self._decoder.feed(data))

    def _dispatch(self, events: list[Event]) -> None:
        generation = self.generation
        on_publish = self.handler.on_publish
        for event in events:
            if type(event) is Publish:
                on_publish(generation, event)
            elif isinstance(event, PubRel):
                # PUBREC went only after the fsync, so the message is durable: complete it.
                self.send(generation, encode_pubcomp(event.packet_id))
            elif isinstance(event, SubAck):
                refused = [f for (f, _), code in zip(self.options.filters, event.reasons,
                                                     strict=False) if code >= 0x80]  # fmt: skip
                if refused:
                    self.handler.on_subscribe_refused(refused)
            elif isinstance(event, Disconnect):
                raise ConnectionResetError(f"broker sent DISCONNECT, reason {event.reason:#04x}")
            elif isinstance(event, ConnAck):
                raise MqttProtocolError("second CONNACK")

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _goodbye(self, sock: socket.socket) -> None:
        with self._lock:
            out, self._out = self._out, []
        with contextlib.suppress(OSError):  # the broker may be gone already
            sock.sendall(b"".join(out) + encode_disconnect())
        raise _Closed
