"""``depin-gateway fleet --serve``: a live subscription to the fleet broker and a small HTTP
server for the page (GET /) and its data (GET /fleet.json). Thin adapters around monitor.py.

The HTTP side is the standard library's threading server: a fleet page has a handful of
viewers, and it keeps the command free of an event loop. Requests carry no input beyond the
path, so there is nothing to parse but that.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.deals.fleet import parse_broker_url
from gateway.errors import GatewayError
from gateway.fleet.heartbeat import STATUS_WILDCARD
from gateway.fleet.monitor import FleetMonitor
from gateway.fleet.page import render_page

__all__ = ["FleetSubscription", "serve_fleet"]

log = logging.getLogger(__name__)


class FleetSubscription:
    """Keeps ``monitor`` fed from the broker; paho reconnects (and we resubscribe) by itself."""

    def __init__(self, url: str, monitor: FleetMonitor) -> None:
        self.host, self.port = parse_broker_url(url)
        self.monitor = monitor
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"depin-fleet-page-{os.getpid()}-{time.time_ns()}",
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object,
                    _p: object) -> None:  # fmt: skip
        client.subscribe(STATUS_WILDCARD, qos=1)  # also after every reconnect
        self.connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.monitor.receive(message.topic, message.payload)
        except Exception:  # one odd message must not stop the subscription thread
            log.exception("fleet message on %s not handled", message.topic[:200])

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def _handler(monitor: FleetMonitor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a slow or idle client cannot hold a thread for long

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(render_page(monitor.report()), "text/html; charset=utf-8")
            elif path == "/fleet.json":
                self._send(json.dumps(monitor.report()).encode(), "application/json")
            else:
                self._send(b"not found\n", "text/plain", 404)

        def _send(self, body: bytes, content_type: str, code: int = 200) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            # the page loads nothing from elsewhere; say so to the browser too
            self.send_header("Content-Security-Policy",
                             "default-src 'self'; style-src 'unsafe-inline'; "
                             "script-src 'unsafe-inline'; connect-src 'self'")  # fmt: skip
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("fleet page: " + format, *args)

    return Handler


def serve_fleet(url: str, monitor: FleetMonitor, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT; prints the page's address on stderr."""
    try:
        server = ThreadingHTTPServer((host, port), _handler(monitor))
    except OSError as exc:
        raise GatewayError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    server.daemon_threads = True
    subscription = FleetSubscription(url, monitor)
    subscription.start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    print(f"fleet page on http://{bound_host!s}:{bound_port}/ (data: /fleet.json)",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        subscription.stop()
        server.server_close()
    return 0
