"""The status endpoint without a web framework: the pure responder, then a real socket."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.daemon.http import respond
from gateway.status import StatusSnapshot
from tests.status_support import make_snapshot


def snapshot() -> StatusSnapshot:
    return make_snapshot(readings=3, pending=1, sealed=0)


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, body = response.split(b"\r\n\r\n", 1)
    line, *fields = head.decode().split("\r\n")
    return line, dict(f.split(": ", 1) for f in fields), body


def test_routes_methods_and_errors() -> None:
    line, headers, body = _split(respond(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n", snapshot))
    assert line == "HTTP/1.1 200 OK" and json.loads(body)["readings_total"] == 3
    assert headers["Content-Length"] == str(len(body)) and headers["Connection"] == "close"
    line, _, body = _split(respond(b"GET /healthz?x=1 HTTP/1.0\r\n\r\n", snapshot))
    assert (line, body) == ("HTTP/1.1 200 OK", b"ok\n")
    line, headers, body = _split(respond(b"HEAD /status HTTP/1.1\r\n\r\n", snapshot))
    assert line.endswith("200 OK") and body == b"" and int(headers["Content-Length"]) > 0
    assert respond(b"GET /nope HTTP/1.1\r\n\r\n", snapshot).startswith(b"HTTP/1.1 404 ")
    assert respond(b"POST /status HTTP/1.1\r\n\r\n", snapshot).startswith(b"HTTP/1.1 405 ")
    assert respond(b"\xff\xfe garbage\r\n\r\n", snapshot).startswith(b"HTTP/1.1 400 ")


_SCENARIO = """
import asyncio, sys
from tests.test_status_http import snapshot
from gateway.daemon.http import start_status_server

async def main():
    server = await start_status_server(snapshot, "127.0.0.1", 0)
    port = server.server.sockets[0].getsockname()[1]
    before = "prometheus_client" in sys.modules
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n")
    data = await reader.read()
    writer.close()
    await server.cleanup()
    print(before, "prometheus_client" in sys.modules, b"depin_gateway_readings_total 3.0" in data,
          data.split(b" ")[1].decode())

asyncio.run(main())
"""


def test_metrics_over_a_real_socket_and_prometheus_client_only_then() -> None:
    """A real client over loopback, in a fresh interpreter: prometheus_client (~12 MB) is
    imported by the first /metrics request, not by starting the server."""
    result = subprocess.run([sys.executable, "-c", _SCENARIO], capture_output=True, text=True,
                            check=True, timeout=60)  # fmt: skip
    assert result.stdout.split() == ["False", "True", "True", "200"], result.stderr
