"""The node's HTTP API (aiohttp): routes of API.md, thin over ``NodeService``.

Authentication: every POST and PUT carries an RFC 9421 signature (``gateway.market.httpsig``),
except ``POST /market/v1/prove``, which is a read. Reads are open on purpose: pieces are
ciphertext (only owners hold the keys; DESIGN section 2), proofs only reveal 32-byte leaves of
that ciphertext, and anyone auditing a node (a gateway, a repair worker, an owner restoring
without the gateway's state) must be able to fetch and check without a deal of their own. Every
request is also rate-limited per remote address, and signed ones per client key.

Errors are ``{"error", "code"}`` JSON with a 4xx status; a 500 would be a bug (and is logged).
A malformed request is the client's fault: one rate-limited WARNING line (``quietlog``), never
an ERROR with a traceback. Bodies are read within ``body_timeout`` and parsed by ``bodies``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import IO, Any

from aiohttp import ClientPayloadError, web
from aiohttp.typedefs import Middleware

from gateway.errors import GatewayError, InputError
from gateway.market.messages import DealProposal, Voucher
from gateway.node.bodies import parse_json_object
from gateway.node.connections import ConnectionGuard
from gateway.node.quietlog import LogLimiter
from gateway.node.ranges import RangeNotSatisfiable, parse_range
from gateway.node.service import ClientError, NodeService
from gateway.node.status import node_status, prometheus_text

__all__ = ["make_app"]

log = logging.getLogger(__name__)
MAX_JSON_BODY = 1 << 20
_READ_CHUNK = 1 << 18
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, retry_after: float = 0.0) -> web.Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if status == 429 else None
    return web.json_response({"error": message, "code": code}, status=status, headers=headers)


def _path(request: web.Request) -> tuple[str, str]:
    return request.rel_url.raw_path, request.rel_url.raw_query_string


def _json(body: bytes) -> dict[str, Any]:
    try:
        return parse_json_object(body, MAX_JSON_BODY)
    except InputError as exc:
        raise ClientError(400, "bad_json", exc.reason) from None


async def _read(request: web.Request, seconds: float) -> bytes:
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise ClientError(408, "timeout", f"body not received within {seconds:g} s") from None


async def _write_within(
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


_LOGGED = frozenset({400, 408, 413})  # malformed, not merely refused (401, 404, 409, 429)
# Whatever a parser deep down raises on bytes it could not take is still the client's bytes.
_PARSE_ERRORS = (InputError, ValueError, UnicodeError, RecursionError, OverflowError)


_TYPES = {"str": (str,), "int": (int,), "bool": (bool,)}


def _check_types(wire: dict[str, Any], message: type[DealProposal | Voucher]) -> None:
    """Field types of a signed message body (the market dataclasses check ranges, not types)."""
    body = wire.get("body")
    if not isinstance(body, dict):
        return  # open() reports it
    for f in fields(message):
        value = body.get(f.name)
        kinds = _TYPES.get(str(f.type))
        if f.name not in body or kinds is None or f.name in message.AMOUNTS:
            continue
        if not isinstance(value, kinds) or (kinds == (int,) and isinstance(value, bool)):
            raise ClientError(400, "bad_request", f"{message.__name__}.{f.name} must be {f.type}")


def _guarded(
    service: NodeService, limiter: LogLimiter, connections: ConnectionGuard | None
) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if connections is not None:
            connections.request_started(request.transport)
        try:
            response = await _answer(request, handler)
        finally:
            if connections is not None:
                connections.request_done(request.transport)
        return response

    def refused(request: web.Request, status: int, code: str, message: str) -> None:
        service.refusals[code] += 1
        if status in _LOGGED:
            # one line whatever the client put in the message (no forged log lines)
            flat = " ".join(message.split())[:200]
            limiter.warning(
                log, "refused %s %.80r from %s: %s", request.method, request.path,
                request.remote, flat,
            )  # fmt: skip

    async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            service.limit_requests(f"ip:{request.remote}")
            return await handler(request)
        except ClientError as exc:
            refused(request, exc.status, exc.code, exc.message)
            return _error(exc.status, exc.code, exc.message, exc.retry_after)
        except web.HTTPRequestEntityTooLarge:
            refused(request, 413, "too_large", "body too large")
            return _error(413, "too_large", f"request body over {MAX_JSON_BODY} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(
                exc.status, "not_found" if exc.status == 404 else "bad_request", exc.reason
            )
        except (ConnectionError, ClientPayloadError) as exc:
            return _error(400, "bad_request", f"request body interrupted: {exc}")
        except _PARSE_ERRORS as exc:
            message = f"request not understood ({type(exc).__name__})"
            refused(request, 400, "bad_request", f"{message}: {exc}")
            return _error(400, "bad_request", message)
        except GatewayError as exc:
            log.error("%s %s failed: %s", request.method, request.path, exc)
            return _error(503, "unavailable", str(exc))

    return guard


class _Routes:
    """The handlers of API.md, thin over ``NodeService``."""

    def __init__(self, service: NodeService, connections: ConnectionGuard | None) -> None:
        self.service = service
        self.connections = connections
        self.body_timeout = service.config.body_timeout

    async def signed_json(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        body = await _read(request, self.body_timeout)
        path, query = _path(request)
        client = self.service.authenticate(request.method, path, query, request.headers, body)
        return client, _json(body)

    async def ping(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def pdp_piece_post(self, request: web.Request) -> web.Response:
        client, data = await self.signed_json(request)
        text = data.get("pieceCid", data.get("pieceCID"))
        location = self.service.pdp_piece(text, client)
        if location is None:
            return web.json_response({"pieceCid": text})
        return web.json_response(
            {"uploadUrl": location}, status=201, headers={"Location": location}
        )

    async def pdp_piece_get(self, request: web.Request) -> web.Response:
        text = request.query.get("pieceCid", "")
        cid, _ = self.service.lookup_piece(text)
        return web.json_response({"pieceCid": cid})

    async def upload(self, request: web.Request) -> web.Response:
        claimed = request.headers.get("Content-Digest")
        if not claimed:
            raise ClientError(400, "bad_request", "uploads need a signed Content-Digest header")
        path, query = _path(request)
        client = self.service.authenticate("PUT", path, query, request.headers, b"", claimed)
        record = self.service.upload_deal(request.match_info["upload_id"])
        limit = self.service.check_upload(record, client, request.content_length)
        chunks = request.content.iter_chunked(_READ_CHUNK)
        await self.service.upload(record, client, claimed, chunks, limit)
        return web.Response(status=204)

    async def piece(self, request: web.Request) -> web.StreamResponse:
        cid, info = self.service.lookup_piece(request.match_info["cid"])
        size = info.payload_size
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "ETag": f'"{cid}"',
            "Cache-Control": "public, max-age=31536000, immutable",
        }
        try:
            span = parse_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        start, end = span if span is not None else (0, size - 1)
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        headers["Content-Length"] = str(length)
        response = web.StreamResponse(status=206 if span else 200, headers=headers)
        handle: IO[bytes] = await asyncio.to_thread(open, self.service.store.piece_path(cid), "rb")
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                await asyncio.to_thread(handle.seek, start)
                while length > 0:
                    chunk = await asyncio.to_thread(handle.read, min(_READ_CHUNK, length))
                    if not chunk:
                        break
                    length -= len(chunk)
                    slow = self.body_timeout, self.connections
                    if not await _write_within(request, response, chunk, *slow):
                        return response
            await response.write_eof()
        finally:
            await asyncio.to_thread(handle.close)
        return response

    async def ask(self, _request: web.Request) -> web.Response:
        return web.json_response(self.service.ask())

    async def propose(self, request: web.Request) -> web.Response:
        client, data = await self.signed_json(request)
        _check_types(data, DealProposal)
        status, acceptance = await self.service.propose(data, client, request.remote or "")
        return web.json_response(acceptance, status=status)

    async def voucher(self, request: web.Request) -> web.Response:
        client, data = await self.signed_json(request)
        _check_types(data, Voucher)
        result = await self.service.voucher(request.match_info["deal_id"], data, client)
        return web.json_response(result)

    async def deal(self, request: web.Request) -> web.Response:
        return web.json_response(self.service.deal_json(request.match_info["deal_id"]))

    async def prove(self, request: web.Request) -> web.Response:
        data = _json(await _read(request, self.body_timeout))
        return web.json_response(await self.service.prove(data.get("pieceCid"), data.get("leaves")))

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response(node_status(self.service))

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=prometheus_text(self.service),
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )


def make_app(
    service: NodeService,
    connections: ConnectionGuard | None = None,
    limiter: LogLimiter | None = None,
) -> web.Application:
    routes = _Routes(service, connections)
    middleware = _guarded(service, limiter or LogLimiter(), connections)
    app = web.Application(middlewares=[middleware], client_max_size=MAX_JSON_BODY)
    app.add_routes(
        [
            web.get("/pdp/ping", routes.ping),
            web.post("/pdp/piece", routes.pdp_piece_post),
            web.get("/pdp/piece", routes.pdp_piece_get),
            web.get("/pdp/piece/", routes.pdp_piece_get),
            web.put("/pdp/piece/upload/{upload_id}", routes.upload),
            web.get("/piece/{cid}", routes.piece),
            web.get("/market/v1/ask", routes.ask),
            web.post("/market/v1/deals", routes.propose),
            web.post("/market/v1/deals/{deal_id}/vouchers", routes.voucher),
            web.get("/market/v1/deals/{deal_id}", routes.deal),
            web.post("/market/v1/prove", routes.prove),
            web.get("/status", routes.status),
            web.get("/metrics", routes.metrics),
        ]
    )
    return app
