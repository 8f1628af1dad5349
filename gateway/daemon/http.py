"""The local status endpoint: GET /status (JSON), /metrics (Prometheus), /healthz.

Three fixed GET routes on loopback need no web framework: aiohttp alone was ~25 MB of the
daemon's resident memory (bench/RESULTS.md, "Memory"). ``respond`` is the pure part (request
head in, response bytes out); the asyncio server around it reads one request head per
connection (bounded in size and time), answers it and closes (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from http import HTTPStatus

from gateway.errors import ConfigError
from gateway.status import StatusSnapshot

__all__ = ["StatusServer", "respond", "start_status_server"]

_MAX_HEAD = 8192  # request line and headers; anything longer is refused
_READ_TIMEOUT = 10.0  # a client that never finishes its request does not hold a task for ever


def _response(code: int, content_type: str, body: bytes, head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    return head.encode("ascii") + (b"" if head_only else body)


def respond(head: bytes, snapshot: Callable[[], StatusSnapshot]) -> bytes:
    """The whole response to one request head (request line + headers, CRLF-terminated)."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return _response(400, "text/plain; charset=utf-8", b"bad request\n")
    method, target, _version = parts
    path = target.split("?", 1)[0]
    routes = {"/status", "/metrics", "/healthz"}
    if path not in routes:
        return _response(404, "text/plain; charset=utf-8", b"not found\n")
    if method not in ("GET", "HEAD"):
        return _response(405, "text/plain; charset=utf-8", b"method not allowed\n")
    head_only = method == "HEAD"
    if path == "/status":
        body = json.dumps(snapshot().to_json()).encode()
        return _response(200, "application/json; charset=utf-8", body, head_only)
    if path == "/metrics":
        from gateway.status.prometheus import prometheus_text

        return _response(200, "text/plain; version=0.0.4; charset=utf-8",
                         prometheus_text(snapshot()), head_only)  # fmt: skip
    code, text = snapshot().healthz()
    return _response(code, "text/plain; charset=utf-8", (text + "\n").encode(), head_only)


class StatusServer:
    """The asyncio adapter around ``respond``."""

    def __init__(self, server: asyncio.Server, snapshot: Callable[[], StatusSnapshot]) -> None:
        self.server = server
        self.snapshot = snapshot

    async def cleanup(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _handle(snapshot: Callable[[], StatusSnapshot], reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:  # fmt: skip
    try:
        async with asyncio.timeout(_READ_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        writer.write(respond(head, snapshot))
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        writer.write(_response(400, "text/plain; charset=utf-8", b"bad request\n"))
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()
            await writer.wait_closed()


async def start_status_server(
    snapshot: Callable[[], StatusSnapshot], host: str, port: int
) -> StatusServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(snapshot, reader, writer)

    try:
        server = await asyncio.start_server(handle, host, port, limit=_MAX_HEAD)
    except OSError as exc:  # busy port, or a name that does not resolve (gaierror)
        raise ConfigError(
            "status.listen",
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "choose a free port and an address of this host",
        ) from exc
    return StatusServer(server, snapshot)
