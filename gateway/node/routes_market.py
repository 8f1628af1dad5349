"""Market routes (ours: asks, signed deals, vouchers, proofs) and the node's status and metrics."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from aiohttp import web

from gateway.market.messages import DealProposal, Voucher
from gateway.node.client_error import ClientError
from gateway.node.http_common import parse_json, read_body, read_json, request_path
from gateway.node.service import NodeService
from gateway.node.status import node_status, prometheus_text

__all__ = ["MarketRoutes"]

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


class MarketRoutes:
    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.body_timeout = service.config.body_timeout

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/market/v1/ask", self.ask),
            web.post("/market/v1/deals", self.propose),
            web.post("/market/v1/deals/{deal_id}/vouchers", self.voucher),
            web.get("/market/v1/deals/{deal_id}", self.deal),
            web.post("/market/v1/prove", self.prove),
            web.get("/status", self.status),
            web.get("/metrics", self.metrics),
        ]

    async def signed_json(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        body = await read_body(request, self.body_timeout)
        path, query = request_path(request)
        client = self.service.authenticate(request.method, path, query, request.headers, body)
        return client, parse_json(body)

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
        data = await read_json(request, self.body_timeout)
        return web.json_response(await self.service.prove(data.get("pieceCid"), data.get("leaves")))

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response(node_status(self.service))

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=prometheus_text(self.service),
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )
