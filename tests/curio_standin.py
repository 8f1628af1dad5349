"""A tiny Curio-shaped PDP provider for the FOC client tests (our node's data-set routes are
being built on branch foc-node and had not landed on main when these tests were written).

It answers the Curio routes with the JSON shapes of FOC.md 1.3 and does the provider's on-chain
part for real on the devnet: ``createDataSet`` + ``addPieces`` on our PDPVerifier stand-in with
the client's extraData, from its own registered wallet. Faults for the hostile-provider tests:
``refuse`` (HTTP 500 on uploads), ``hang`` (uploads stall past the client timeout),
``wrong_bytes`` (GET /piece returns other bytes), ``drop(cid)`` (forget a piece: proofs fail).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from aiohttp import web

from gateway.chain.abi import abi_of
from gateway.chain.deploy import Deployment
from gateway.chain.tx import TxSender
from gateway.errors import GatewayError
from gateway.foc.extradata import decode_create_and_add
from gateway.piece.cid import Cid, piece_cid_v2
from gateway.piece.commp import commp

PDP = abi_of("PDPVerifier")
SYBIL_FEE = 10**17


class CurioStandIn:
    def __init__(self, sender: TxSender, deployment: Deployment) -> None:
        self.sender, self.deployment = sender, deployment
        self.pieces: dict[str, bytes] = {}
        self.uploads: dict[str, bytes | None] = {}
        self.txs: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self.faults: set[str] = set()
        self.pending_polls = 0  # answer "pending" this many times before "confirmed"
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> CurioStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.add_routes(
            [
                web.post("/pdp/piece", self.post_piece),
                web.put("/pdp/piece/upload/{id}", self.put_upload),
                web.get("/pdp/piece", self.find_piece),
                web.post("/pdp/piece/uploads", self.post_uploads),
                web.put("/pdp/piece/uploads/{id}", self.put_stream),
                web.post("/pdp/piece/uploads/{id}", self.finish_stream),
                web.post("/pdp/data-sets/create-and-add", self.create_and_add),
                web.get("/pdp/data-sets/created/{tx}", self.created),
                web.post("/pdp/data-sets/{set}/pieces", self.add_pieces),
                web.get("/pdp/data-sets/{set}/pieces/added/{tx}", self.added),
                web.get("/piece/{cid}", self.get_piece),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def drop(self, cid: str) -> None:
        self.pieces.pop(cid, None)

    def fetch(self, cid: str) -> bytes:
        """What the devnet prover reads (OSError: this provider lost the piece)."""
        if cid not in self.pieces:
            raise OSError(f"piece {cid} is gone")
        return self.pieces[cid]

    def _count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    # -- piece routes ------------------------------------------------------------------
    async def _fault(self) -> web.Response | None:
        if "refuse" in self.faults:
            return web.Response(status=500, text="refused")
        if "hang" in self.faults:
            await asyncio.sleep(3)  # past the client timeout (1 s in the tests)
        return None

    def _accept(self, data: bytes, cid: str) -> bool:
        if str(piece_cid_v2(commp(data))) != cid:
            return False
        self.pieces[cid] = data
        return True

    async def post_piece(self, request: web.Request) -> web.Response:
        self._count("post_piece")
        cid = (await request.json())["pieceCid"]
        if cid in self.pieces:
            return web.json_response({"pieceCid": cid})
        upload = str(uuid.uuid4())
        self.uploads[upload] = cid.encode()
        return web.Response(status=201, headers={"Location": f"/pdp/piece/upload/{upload}"})

    async def put_upload(self, request: web.Request) -> web.Response:
        fault = await self._fault()
        if fault is not None:
            return fault
        cid = self.uploads.pop(request.match_info["id"], None)
        if cid is None:
            return web.Response(status=404)
        ok = self._accept(await request.read(), cid.decode())
        return web.Response(status=204 if ok else 400)

    async def find_piece(self, request: web.Request) -> web.Response:
        cid = request.query.get("pieceCid", "")
        if cid in self.pieces:
            return web.json_response({"pieceCid": cid})
        return web.Response(status=404)

    async def post_uploads(self, request: web.Request) -> web.Response:
        upload = str(uuid.uuid4())
        self.uploads[upload] = None
        return web.Response(status=201, headers={"Location": f"/pdp/piece/uploads/{upload}"})

    async def put_stream(self, request: web.Request) -> web.Response:
        fault = await self._fault()
        if fault is not None:
            return fault
        self.uploads[request.match_info["id"]] = await request.read()
        return web.Response(status=204)

    async def finish_stream(self, request: web.Request) -> web.Response:
        data = self.uploads.pop(request.match_info["id"], None)
        cid = (await request.json())["pieceCid"]
        if data is None or not self._accept(data, cid):
            return web.Response(status=400)
        return web.json_response({"pieceCid": cid})

    async def get_piece(self, request: web.Request) -> web.Response:
        data = self.pieces.get(request.match_info["cid"])
        if data is None:
            return web.Response(status=404)
        if "wrong_bytes" in self.faults:
            data = bytes(b ^ 0xFF for b in data)
        spec = request.headers.get("Range", "")
        if spec.startswith("bytes="):
            start, end = (int(x) for x in spec[6:].split("-"))
            return web.Response(status=206, body=data[start : end + 1])
        return web.Response(body=data)

    # -- data-set routes: the provider's transactions, for real ------------------------
    def _send(self, function: str, *args: Any, value: int = 0) -> Any:
        with self._lock:
            data = PDP.calldata(function, *args)
            return self.sender.send(self.deployment.pdp_verifier, data, value=value, what=function)

    def _add(self, set_id: int, cids: list[str], extra: bytes) -> tuple[str, list[int]]:
        receipt = self._send(
            "addPieces", set_id, self.deployment.fwss, [(bytes(Cid.parse(c)),) for c in cids], extra
        )
        log = next(x for x in receipt.logs if x.topics[0] == PDP.topic("PiecesAdded"))
        ids = PDP.decode_log("PiecesAdded", list(log.topics), log.data)["pieceIds"]
        return receipt.tx_hash, list(ids)

    async def create_and_add(self, request: web.Request) -> web.Response:
        self._count("create_and_add")
        body = await request.json()
        cids = [p["pieceCid"] for p in body["pieces"]]
        if any(c not in self.pieces for c in cids):
            return web.Response(status=400, text="piece not uploaded")
        create, add = decode_create_and_add(bytes.fromhex(body["extraData"][2:]))
        try:
            receipt = await asyncio.to_thread(
                self._send, "createDataSet", self.deployment.fwss, create, value=SYBIL_FEE
            )
            event = next(x for x in receipt.logs if x.topics[0] == PDP.topic("DataSetCreated"))
            set_id = PDP.decode_log("DataSetCreated", list(event.topics), event.data)["setId"]
            _, ids = await asyncio.to_thread(self._add, set_id, cids, add)
        except GatewayError as exc:
            return web.Response(status=500, text=str(exc))
        # "replaced": the client waits on a hash that was never mined, as after replace-by-fee
        key = "0x" + uuid.uuid4().hex * 2 if "replaced" in self.faults else receipt.tx_hash
        self.txs[key] = {
            "set": set_id,
            "ids": ids,
            "polls": self.pending_polls,
            "confirmed": receipt.tx_hash,
        }
        location = f"/pdp/data-sets/created/{key}"
        return web.Response(status=201, headers={"Location": location})

    def _pending(self, tx: dict[str, Any]) -> bool:
        if tx["polls"] > 0:
            tx["polls"] -= 1
            return True
        return False

    async def created(self, request: web.Request) -> web.Response:
        tx_hash = request.match_info["tx"]
        tx = self.txs.get(tx_hash)
        if tx is None:
            return web.Response(status=404)
        pending = self._pending(tx)
        reply = {
            "createMessageHash": tx_hash,
            "dataSetCreated": not pending,
            "service": "public",
            "txStatus": "pending" if pending else "confirmed",
            "ok": None if pending else True,
        }
        if not pending:
            reply["dataSetId"] = tx["set"]
            if "replaced" in self.faults:  # as after Curio's replace-by-fee
                reply["confirmedTxHash"] = tx["confirmed"]
        return web.json_response(reply)

    async def add_pieces(self, request: web.Request) -> web.Response:
        self._count("add_pieces")
        body = await request.json()
        set_id = int(request.match_info["set"])
        cids = [p["pieceCid"] for p in body["pieces"]]
        if any(c not in self.pieces for c in cids):
            return web.Response(status=400, text="piece not uploaded")
        try:
            extra = bytes.fromhex(body["extraData"][2:])
            tx_hash, ids = await asyncio.to_thread(self._add, set_id, cids, extra)
        except GatewayError as exc:
            return web.Response(status=500, text=str(exc))
        key = "0x" + uuid.uuid4().hex * 2 if "replaced" in self.faults else tx_hash
        self.txs[key] = {
            "set": set_id,
            "ids": ids,
            "polls": self.pending_polls,
            "confirmed": tx_hash,
        }
        location = f"/pdp/data-sets/{set_id}/pieces/added/{key}"
        return web.Response(status=201, headers={"Location": location})

    async def added(self, request: web.Request) -> web.Response:
        tx_hash = request.match_info["tx"]
        tx = self.txs.get(tx_hash)
        if tx is None:
            return web.Response(status=404)
        pending = self._pending(tx)
        reply: dict[str, Any] = {
            "txHash": tx_hash,
            "txStatus": "pending" if pending else "confirmed",
            "dataSetId": tx["set"],
            "pieceCount": len(tx["ids"]),
            "addMessageOk": None if pending else True,
            "piecesAdded": not pending,
        }
        if not pending:
            reply["confirmedPieceIds"] = tx["ids"]
            if "replaced" in self.faults:
                reply["confirmedTxHash"] = tx["confirmed"]
        return web.json_response(reply)
