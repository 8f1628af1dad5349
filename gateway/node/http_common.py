"""What every route module of the node's HTTP API shares: error bodies, bounded reads, paths."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.errors import InputError
from gateway.node.bodies import parse_json_object
from gateway.node.client_error import ClientError
from gateway.node.connections import ConnectionGuard

__all__ = [
    "MAX_JSON_BODY",
    "error_response",
    "parse_json",
    "read_body",
    "read_json",
    "request_path",
    "write_within",
]

MAX_JSON_BODY = 1 << 20


def error_response(status: int, code: str, message: str, retry_after: float = 0.0) -> web.Response:
    """``{"error", "code", "message"}``: ours (``error``) and Curio's (``code``, ``message``)."""
    headers = {"Retry-After": str(max(1, round(retry_after)))} if status == 429 else None
    body = {"error": message, "code": code, "message": message}
    return web.json_response(body, status=status, headers=headers)


def request_path(request: web.Request) -> tuple[str, str]:
    return request.rel_url.raw_path, request.rel_url.raw_query_string


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        return parse_json_object(body, MAX_JSON_BODY)
    except InputError as exc:
        raise ClientError(400, "bad_json", exc.reason) from None


async def read_body(request: web.Request, seconds: float) -> bytes:
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise ClientError(408, "timeout", f"body not received within {seconds:g} s") from None


async def read_json(request: web.Request, seconds: float) -> dict[str, Any]:
    return parse_json(await read_body(request, seconds))


async def write_within(
    request: web.Request,
    response: web.StreamResponse,
    chunk: bytes,
    seconds: float,
    connections: ConnectionGuard | None,
) -> bool:
    """Write, or drop the connection of a client that reads too slowly to take ``chunk`` in
    ``seconds``: a slow reader would otherwise keep a connection busy, never evictable."""
    try:
        async with asyncio.timeout(seconds):
            await response.write(chunk)
    except TimeoutError:
        if connections is not None:
            connections.slow_reader(request.transport)
        elif request.transport is not None:
            request.transport.abort()
        return False
    return True
