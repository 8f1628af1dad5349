"""Piece routes (Curio's PDP piece API, both upload flows, and ``GET /piece/{cid}``).

Open to anyone, as in Curio (the "public" caller): an upload without a deal is parked and
deleted unless claimed within ``unclaimed_keep`` (``public``, ``unclaimed``). A request that
carries a signature or a Bearer token is verified (401 if it does not), and a signed
``POST /pdp/piece`` by a client with an accepted deal for the piece gets that deal's upload URL
(whose ``PUT`` must be signed, with ``Content-Digest``: API.md).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import IO

from aiohttp import web

from gateway.node.client_error import ClientError
from gateway.node.connections import ConnectionGuard
from gateway.node.http_common import parse_json, read_body, request_path, write_within
from gateway.node.ranges import RangeNotSatisfiable, parse_range
from gateway.node.service import NodeService
from gateway.node.unclaimed import Flow

__all__ = ["PieceRoutes"]

_READ_CHUNK = 1 << 18
PING_BODY = "curio-pdp"  # curio pdp.PingOKBody; synapse-core only checks the status


class PieceRoutes:
    def __init__(self, service: NodeService, connections: ConnectionGuard | None) -> None:
        self.service = service
        self.connections = connections
        self.body_timeout = service.config.body_timeout

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/pdp/ping", self.ping),
            web.post("/pdp/piece", self.post_piece),
            web.get("/pdp/piece", self.find_piece),
            web.get("/pdp/piece/", self.find_piece),
            web.put("/pdp/piece/upload/{upload_id}", self.put_piece),
            web.post("/pdp/piece/uploads", self.open_stream),
            web.put("/pdp/piece/uploads/{upload_id}", self.put_stream),
            web.post("/pdp/piece/uploads/{upload_id}", self.finish_stream),
            web.get("/pdp/piece/{cid}/status", self.piece_status),
            web.get("/piece/{cid}", self.piece),
        ]

    async def ping(self, _request: web.Request) -> web.Response:
        return web.Response(text=PING_BODY)

    async def post_piece(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.body_timeout)
        path, query = request_path(request)
        client = self.service.identify(request.method, path, query, request.headers, body)
        text = (data := parse_json(body)).get("pieceCid", data.get("pieceCID"))
        location = self.service.pdp_piece(text, client) if client else ""
        if location == "":
            location = self.service.open_piece_upload(text, request.remote or "")
        if location is None:
            cid, _ = self.service.lookup_piece(str(text))
            return web.json_response({"pieceCid": cid})
        return web.json_response(
            {"uploadUrl": location}, status=201, headers={"Location": location}
        )

    async def find_piece(self, request: web.Request) -> web.Response:
        cid, _ = self.service.lookup_piece(request.query.get("pieceCid", ""))
        return web.json_response({"pieceCid": cid})

    async def put_piece(self, request: web.Request) -> web.Response:
        upload_id = request.match_info["upload_id"]
        if upload_id in self.service.sessions:
            await self._receive(request, Flow.PIECE)
            return web.Response(status=204)
        record = self.service.upload_deal(upload_id)  # 404 when it is no upload at all
        claimed = request.headers.get("Content-Digest")
        if not claimed:
            raise ClientError(400, "bad_request", "deal uploads need a signed Content-Digest")
        path, query = request_path(request)
        client = self.service.authenticate("PUT", path, query, request.headers, b"", claimed)
        limit = self.service.check_upload(record, client, request.content_length)
        chunks = request.content.iter_chunked(_READ_CHUNK)
        await self.service.upload(record, client, claimed, chunks, limit)
        return web.Response(status=204)

    async def _receive(self, request: web.Request, flow: Flow) -> None:
        session = self.service.session(request.match_info["upload_id"], flow)
        limit = self.service.check_session_put(session, request.content_length)
        await self.service.receive(session, request.content.iter_chunked(_READ_CHUNK), limit)

    async def open_stream(self, request: web.Request) -> web.Response:
        await read_body(request, self.body_timeout)  # empty; read so the connection stays usable
        location = self.service.open_stream_upload(request.remote or "")
        return web.json_response(
            {"uploadUrl": location}, status=201, headers={"Location": location}
        )

    async def put_stream(self, request: web.Request) -> web.Response:
        await self._receive(request, Flow.STREAM)
        return web.Response(status=204)

    async def finish_stream(self, request: web.Request) -> web.Response:
        data = parse_json(await read_body(request, self.body_timeout))
        text = data.get("pieceCid", data.get("pieceCID"))
        cid = await self.service.finalize(request.match_info["upload_id"], text)
        return web.json_response({"pieceCid": cid})

    async def piece_status(self, request: web.Request) -> web.Response:
        """Curio's fields; this node does no IPNI indexing or advertising (always false)."""
        cid, _ = self.service.lookup_piece(request.match_info["cid"])
        retrieved_at = self.service.retrieved.get(cid)
        return web.json_response(
            {
                "pieceCid": cid,
                "status": "retrieved" if retrieved_at else "pending",
                "indexed": False,
                "advertised": False,
                "retrieved": retrieved_at is not None,
                "retrievedAt": _rfc3339(retrieved_at) if retrieved_at else None,
            }
        )

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
        headers["Content-Length"] = str(end - start + 1)
        response = web.StreamResponse(status=206 if span else 200, headers=headers)
        path = self.service.store.piece_path(cid)
        handle: IO[bytes] = await asyncio.to_thread(open, path, "rb")
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                if not await self._stream(request, response, handle, start, end - start + 1):
                    return response
                self.service.retrieved[cid] = self.service.clock()
            await response.write_eof()
        finally:
            await asyncio.to_thread(handle.close)
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        handle: IO[bytes],
        start: int,
        length: int,
    ) -> bool:
        await asyncio.to_thread(handle.seek, start)
        while length > 0:
            chunk = await asyncio.to_thread(handle.read, min(_READ_CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            slow = self.body_timeout, self.connections
            if not await write_within(request, response, chunk, *slow):
                return False
        return True


def _rfc3339(unix: float) -> str:
    moment = datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")
