"""Hostile and odd storage nodes never cause data loss or a hang, and earn a bad reputation.

Small fake nodes (aiohttp, in a thread) that accept deals and then: answer proofs with garbage,
claim to hold pieces they never stored (lying about commP), stall every request, close the
connection in the middle of an upload, or serve only pieces (Curio-like, no prove endpoint) with
wrong bytes. An honest Curio-like node is proven by HTTP Range reads. Real honest nodes
(gateway/node) are there too; the malicious ones are the cheapest, so they are chosen first.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from nacl.signing import SigningKey

from gateway.deals import StorageService
from gateway.deals.reputation import TRUSTED
from gateway.keys import create_owner_key, format_gateway_public
from gateway.market.epoch import epoch_at
from gateway.market.messages import Ask, DealAcceptance, DealProposal
from gateway.node.runner import NodeThread
from gateway.restore.network import restore_from_network
from gateway.seal import Vault
from gateway.seal.synthetic import SensorFleet
from gateway.testing.node_client import make_node_config
from tests.test_deals_service import IDENTITY, _config, _seal, _wait

MODES = ("garbage_proofs", "commp_liar", "slow", "dropper", "curio_liar")


class FakeNode:
    """A storage node speaking our API with one kind of misbehaviour (``mode``)."""

    def __init__(self, mode: str, price: int = 1000) -> None:
        self.mode = mode
        self.price = price
        self.key = SigningKey.generate()
        self.provider = format_gateway_public(self.key.verify_key)
        self.pieces: dict[str, bytes] = {}
        self.uploads: dict[str, str] = {}
        self.url = ""
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/market/v1/ask", self.ask)
        app.router.add_post("/market/v1/deals", self.deal)
        app.router.add_post("/market/v1/deals/{deal}/vouchers", self.voucher)
        app.router.add_put("/pdp/piece/upload/{id}", self.upload)
        app.router.add_get("/pdp/piece/", self.holds)
        app.router.add_get("/piece/{cid}", self.piece)
        if not self.mode.startswith("curio"):
            app.router.add_post("/market/v1/prove", self.prove)
        return app

    async def ask(self, _request: web.Request) -> web.Response:
        ask = Ask(
            self.provider,
            self.url,
            self.price,
            128,
            1 << 30,
            1 << 30,
            10**6,
            epoch_at(time.time()) + 1000,
            1,
        )
        return web.json_response(ask.sign(self.key))

    async def deal(self, request: web.Request) -> web.Response:
        self.requests += 1
        proposal, _ = DealProposal.open(await request.json())
        upload = uuid.uuid4().hex
        self.uploads[upload] = proposal.piece_cid
        acceptance = DealAcceptance(
            proposal.deal_id(),
            proposal.piece_cid,
            proposal.client,
            self.provider,
            True,
            "",
            f"/pdp/piece/upload/{upload}",
            epoch_at(time.time()),
        )
        return web.json_response(acceptance.sign(self.key))

    async def voucher(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    async def upload(self, request: web.Request) -> web.Response:
        self.requests += 1
        piece = self.uploads[request.match_info["id"]]
        if self.mode == "slow":
            await asyncio.sleep(30)
        if self.mode == "dropper":
            await request.content.read(100)
            assert request.transport is not None
            request.transport.close()  # hang up in the middle of the body
            return web.Response(status=204)
        body = await request.read()
        if self.mode != "commp_liar":  # the liar claims to store it, and keeps nothing
            self.pieces[piece] = body
        return web.Response(status=204)

    async def holds(self, request: web.Request) -> web.Response:
        held = request.query.get("pieceCid", "") in self.pieces or self.mode == "commp_liar"
        return web.json_response({}, status=200 if held else 404)

    async def prove(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.mode == "slow":
            await asyncio.sleep(30)
        body = await request.json()
        leaves = [
            {"index": i, "leaf": os.urandom(32).hex(), "path": [os.urandom(32).hex()] * 3}
            for i in body["leaves"]
        ]
        return web.json_response({"pieceCid": body["pieceCid"], "leaves": leaves})

    async def piece(self, request: web.Request) -> web.Response:
        self.requests += 1
        data = self.pieces.get(request.match_info["cid"])
        if data is None:
            return web.Response(status=404)
        if self.mode == "curio_liar":
            data = os.urandom(len(data))
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("Range", ""))
        if match:
            start, end = int(match[1]), min(int(match[2]) + 1, len(data))
            return web.Response(
                status=206,
                body=data[start:end],
                headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
            )
        return web.Response(body=data)


class FakeNodes:
    """Run fake nodes on one event loop in a background thread."""

    def __init__(self, nodes: list[FakeNode]) -> None:
        self.nodes = nodes
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []

    async def _start(self) -> None:
        for node in self.nodes:
            runner = web.AppRunner(node.app(), access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            node.url = f"http://127.0.0.1:{port}"
            self.runners.append(runner)

    async def _stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:  # stalled handlers of the slow node
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> FakeNodes:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def honest(tmp_path: Path) -> Iterator[list[NodeThread]]:
    started = []
    for i in range(6):
        node = NodeThread(make_node_config(tmp_path / f"n{i}", min_duration="60s"))
        node.start()
        started.append(node)
    yield started
    for node in started:
        node.stop()


def test_malicious_nodes_never_lose_data_never_hang_and_lose_reputation(
    tmp_path: Path, honest: list[NodeThread]
) -> None:
    fakes = [FakeNode(mode) for mode in MODES]
    curio = FakeNode("curio_honest", price=2000)
    with FakeNodes([*fakes, curio]):
        owner_path = tmp_path / "owner.key"
        owner = create_owner_key(owner_path)
        urls = [n.url for n in honest] + [f.url for f in fakes] + [curio.url]
        config = _config(tmp_path, urls, owner, request_timeout="1s")
        vault = Vault(config.state_dir)
        readings = _seal(vault, SensorFleet(seed=6), owner, 3)
        service = StorageService(config, vault, IDENTITY)
        service.start()
        try:

            def settled() -> bool:
                stats = service.stats()
                return (
                    stats["batches_evicted"] == 3
                    and stats["ledger_head_batches"] == 3
                    and stats["batches_fully_redundant"] == 3
                    and all(service.book.nodes.get(f.provider) for f in fakes)
                )

            _wait(settled, 60, service.stats)
            by_provider = service.book.nodes
            for fake in fakes:  # every hostile node was tried, failed, and is distrusted
                assert by_provider[fake.provider].reputation < TRUSTED, fake.mode
                held = [
                    p
                    for p in service.book.placements.values()
                    if p.provider == fake.provider and p.held
                ]
                assert not [p for p in held if p.state == "proven"], fake.mode
            assert curio.provider in service.engine.range_only  # type: ignore[union-attr]
            assert by_provider[curio.provider].proofs_passed > 0  # proven by Range reads
            head = service.stats()["ledger_head"]
            stopped = time.monotonic()
        finally:
            service.stop()
        assert time.monotonic() - stopped < 10  # no hang on the way out either
        out = io.StringIO()
        summary = restore_from_network(
            format_gateway_public(IDENTITY.verify_key), head, urls, str(owner_path), out
        )
        assert summary.readings == readings
        assert len(out.getvalue().splitlines()) == readings
        assert json.loads(out.getvalue().splitlines()[0])["batch"] == 0
