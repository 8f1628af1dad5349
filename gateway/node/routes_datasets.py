"""Data-set routes (Curio's PDP data-set API) over ``datasets.DataSetOps``; 501 on a node with
no chain configured. Open to anyone, as in Curio: the client's EIP-712 ``extraData`` is what
authorises each operation, checked on chain by the record keeper (FWSS)."""

from __future__ import annotations

from aiohttp import web

from gateway.node.client_error import ClientError
from gateway.node.http_common import read_json
from gateway.node.service import NodeService

__all__ = ["DataSetRoutes"]

_ID = r"{set_id:[0-9]{1,78}}"
_TX = "{tx_hash:0x[0-9a-fA-F]{64}}"


def _int(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    if value >= 2**256:
        raise ClientError(404, "not_found", f"{name} out of range")
    return value


class DataSetRoutes:
    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.body_timeout = service.config.body_timeout

    def routes(self) -> list[web.RouteDef]:
        base = "/pdp/data-sets"
        return [
            web.post(base, self.create),
            web.post(f"{base}/create-and-add", self.create_and_add),
            web.get(f"{base}/created/{_TX}", self.created),
            web.get(f"{base}/{_ID}", self.get),
            web.post(f"{base}/{_ID}/terminate", self.terminate),
            web.get(f"{base}/{_ID}/terminate", self.terminated),
            web.post(f"{base}/{_ID}/pieces", self.add),
            web.get(f"{base}/{_ID}/pieces/added/{_TX}", self.added),
            web.get(base + "/" + _ID + "/pieces/{piece_id:[0-9]{1,78}}", self.piece),
            web.delete(base + "/" + _ID + "/pieces/{piece_id:[0-9]{1,78}}", self.delete),
        ]

    @staticmethod
    def _created(location: str, tx_hash: str) -> web.Response:
        return web.json_response({"txHash": tx_hash}, status=201, headers={"Location": location})

    async def create(self, request: web.Request) -> web.Response:
        self.service.require_chain()
        tx = await self.service.create_data_set(await read_json(request, self.body_timeout))
        return self._created(f"/pdp/data-sets/created/{tx}", tx)

    async def create_and_add(self, request: web.Request) -> web.Response:
        self.service.require_chain()
        tx = await self.service.create_and_add(await read_json(request, self.body_timeout))
        return self._created(f"/pdp/data-sets/created/{tx}", tx)

    async def created(self, request: web.Request) -> web.Response:
        return web.json_response(await self.service.creation_status(request.match_info["tx_hash"]))

    async def get(self, request: web.Request) -> web.Response:
        view = await self.service.data_set(_int(request, "set_id"))
        pieces = [
            {"pieceId": pid, "pieceCid": cid, "subPieceCid": cid, "subPieceOffset": 0}
            for pid, cid in view.pieces
        ]
        body = {"id": view.id, "nextChallengeEpoch": view.next_challenge_epoch, "pieces": pieces}
        return web.json_response(body)

    async def piece(self, request: web.Request) -> web.Response:
        view = await self.service.data_set(_int(request, "set_id"))
        wanted = _int(request, "piece_id")
        for pid, cid in view.pieces:
            if pid == wanted:
                subs = [{"subPieceCid": cid, "subPieceOffset": 0}]
                return web.json_response({"pieceId": pid, "pieceCid": cid, "subPieces": subs})
        raise ClientError(404, "not_found", f"no piece {wanted} in data set {view.id}")

    async def add(self, request: web.Request) -> web.Response:
        self.service.require_chain()
        set_id = _int(request, "set_id")
        tx = await self.service.add_pieces(set_id, await read_json(request, self.body_timeout))
        return self._created(f"/pdp/data-sets/{set_id}/pieces/added/{tx}", tx)

    async def added(self, request: web.Request) -> web.Response:
        set_id, tx = _int(request, "set_id"), request.match_info["tx_hash"]
        return web.json_response(await self.service.addition_status(set_id, tx))

    async def delete(self, request: web.Request) -> web.Response:
        self.service.require_chain()
        set_id, piece_id = _int(request, "set_id"), _int(request, "piece_id")
        data = await read_json(request, self.body_timeout) if request.can_read_body else {}
        tx = await self.service.remove_pieces(set_id, piece_id, data)
        return web.json_response({"txHash": tx})

    async def terminate(self, request: web.Request) -> web.Response:
        self.service.require_chain()
        set_id = _int(request, "set_id")
        tx = await self.service.terminate(set_id, await read_json(request, self.body_timeout))
        return web.json_response({"terminationTxHash": tx}, status=202)

    async def terminated(self, request: web.Request) -> web.Response:
        return web.json_response(await self.service.termination_status(_int(request, "set_id")))
