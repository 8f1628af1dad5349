"""The node's HTTP API (aiohttp): routes of API.md, thin over ``NodeService``.

Authentication: every POST and PUT carries an RFC 9421 signature (``gateway.market.httpsig``),
except ``POST /market/v1/prove``, which is a read. Reads are open on purpose: pieces are
ciphertext (only owners hold the keys; DESIGN section 2), proofs only reveal 32-byte leaves of
that ciphertext, and anyone auditing a node (a gateway, a repair worker, an owner restoring
without the gateway's state) must be able to fetch and check without a deal of their own. Every
request is also rate-limited per remote address, and signed ones per client key.

Errors are ``{"error", "code"}`` JSON with a 4xx status; a 500 would be a bug (and is logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import IO, Any

from aiohttp import ClientPayloadError, web

from gateway.errors import GatewayError
from gateway.market.messages import DealProposal, Voucher
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
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ClientError(400, "bad_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ClientError(400, "bad_json", "body must be a JSON object")
    return data


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


def make_app(service: NodeService) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            service.limit_requests(f"ip:{request.remote}")
            return await handler(request)
        except ClientError as exc:
            service.refusals[exc.code] += 1
            return _error(exc.status, exc.code, exc.message, exc.retry_after)
        except web.HTTPRequestEntityTooLarge:
            service.refusals["too_large"] += 1
            return _error(413, "too_large", f"request body over {MAX_JSON_BODY} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(
                exc.status, "not_found" if exc.status == 404 else "bad_request", exc.reason
            )
        except (ConnectionError, ClientPayloadError) as exc:
            return _error(400, "bad_request", f"request body interrupted: {exc}")
        except GatewayError as exc:
            log.error("%s %s failed: %s", request.method, request.path, exc)
            return _error(503, "unavailable", str(exc))

    async def signed_json(request: web.Request) -> tuple[str, dict[str, Any]]:
        body = await request.read()
        path, query = _path(request)
        client = service.authenticate(request.method, path, query, request.headers, body)
        return client, _json(body)

    async def ping(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def pdp_piece_post(request: web.Request) -> web.Response:
        client, data = await signed_json(request)
        text = data.get("pieceCid", data.get("pieceCID"))
        location = service.pdp_piece(text, client)
        if location is None:
            return web.json_response({"pieceCid": text})
        return web.json_response(
            {"uploadUrl": location}, status=201, headers={"Location": location}
        )

    async def pdp_piece_get(request: web.Request) -> web.Response:
        text = request.query.get("pieceCid", "")
        cid, _ = service.lookup_piece(text)
        return web.json_response({"pieceCid": cid})

    async def upload(request: web.Request) -> web.Response:
        claimed = request.headers.get("Content-Digest")
        if not claimed:
            raise ClientError(400, "bad_request", "uploads need a signed Content-Digest header")
        path, query = _path(request)
        client = service.authenticate("PUT", path, query, request.headers, b"", claimed)
        record = service.upload_deal(request.match_info["upload_id"])
        limit = service.check_upload(record, client, request.content_length)
        chunks = request.content.iter_chunked(_READ_CHUNK)
        await service.upload(record, client, claimed, chunks, limit)
        return web.Response(status=204)

    async def piece(request: web.Request) -> web.StreamResponse:
        cid, info = service.lookup_piece(request.match_info["cid"])
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
        handle: IO[bytes] = await asyncio.to_thread(open, service.store.piece_path(cid), "rb")
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                await asyncio.to_thread(handle.seek, start)
                while length > 0:
                    chunk = await asyncio.to_thread(handle.read, min(_READ_CHUNK, length))
                    if not chunk:
                        break
                    length -= len(chunk)
                    await response.write(chunk)
            await response.write_eof()
        finally:
            await asyncio.to_thread(handle.close)
        return response

    async def ask(_request: web.Request) -> web.Response:
        return web.json_response(service.ask())

    async def propose(request: web.Request) -> web.Response:
        client, data = await signed_json(request)
        _check_types(data, DealProposal)
        status, acceptance = await service.propose(data, client)
        return web.json_response(acceptance, status=status)

    async def voucher(request: web.Request) -> web.Response:
        client, data = await signed_json(request)
        _check_types(data, Voucher)
        result = await service.voucher(request.match_info["deal_id"], data, client)
        return web.json_response(result)

    async def deal(request: web.Request) -> web.Response:
        return web.json_response(service.deal_json(request.match_info["deal_id"]))

    async def prove(request: web.Request) -> web.Response:
        data = _json(await request.read())
        return web.json_response(await service.prove(data.get("pieceCid"), data.get("leaves")))

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(node_status(service))

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=prometheus_text(service), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    app = web.Application(middlewares=[guard], client_max_size=MAX_JSON_BODY)
    app.add_routes(
        [
            web.get("/pdp/ping", ping),
            web.post("/pdp/piece", pdp_piece_post),
            web.get("/pdp/piece", pdp_piece_get),
            web.get("/pdp/piece/", pdp_piece_get),
            web.put("/pdp/piece/upload/{upload_id}", upload),
            web.get("/piece/{cid}", piece),
            web.get("/market/v1/ask", ask),
            web.post("/market/v1/deals", propose),
            web.post("/market/v1/deals/{deal_id}/vouchers", voucher),
            web.get("/market/v1/deals/{deal_id}", deal),
            web.post("/market/v1/prove", prove),
            web.get("/status", status),
            web.get("/metrics", metrics),
        ]
    )
    return app
