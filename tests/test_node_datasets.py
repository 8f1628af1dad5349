"""The Curio data-set routes: JSON shapes and status codes, with the node's chain port replaced
by the in-process fake ``gateway.testing.pdp_chain.FakePdpChain`` (route-shape tests only: it
verifies no signature; real transactions are the devnet's test). The node is real (127.0.0.1:0),
and so is the client of the last test: synapse-core's own data-set calls, run by Node.js."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.node import RunningNode, start_node
from gateway.node.client_error import ClientError
from gateway.node.dataset_wire import parse_record_keeper
from gateway.testing.node_client import FakeClock, make_node_config, piece_of
from gateway.testing.pdp_chain import FakePdpChain

ROOT = Path(__file__).resolve().parents[1]
FWSS = "0x02925630df557F957f70E112bA06e50965417CA0"  # calibration FWSS proxy (FOC.md 1.1)
EXTRA = "0x" + "ab" * 64


@pytest.fixture
def chain() -> FakePdpChain:
    return FakePdpChain()


@pytest.fixture
async def node(tmp_path: Path, chain: FakePdpChain) -> AsyncIterator[RunningNode]:
    config = make_node_config(tmp_path, capacity="4MiB")
    running = await start_node(config, FakeClock(), chain=chain)
    yield running
    await running.stop()


async def _call(
    node: RunningNode, method: str, path: str, body: Any = None
) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, node.url + path, data=data) as response,
    ):
        raw = await response.read()
        parsed = json.loads(raw) if response.content_type == "application/json" else raw
        return response.status, parsed, dict(response.headers)


async def _piece(node: RunningNode) -> str:
    data = os.urandom(2000)
    async with aiohttp.ClientSession() as session:
        body = json.dumps({"pieceCid": piece_of(data)}).encode()
        async with session.post(node.url + "/pdp/piece", data=body) as response:
            location = response.headers["Location"]
        async with session.put(node.url + location, data=data) as response:
            assert response.status == 204
    return piece_of(data)


def _pieces(*cids: str) -> list[dict[str, Any]]:
    return [{"pieceCid": c, "subPieces": [{"subPieceCid": c}]} for c in cids]


async def test_create_and_add_then_poll_created_and_added(
    node: RunningNode, chain: FakePdpChain
) -> None:
    cid = await _piece(node)
    body = {"recordKeeper": FWSS, "extraData": EXTRA, "pieces": _pieces(cid)}
    status, answer, headers = await _call(node, "POST", "/pdp/data-sets/create-and-add", body)
    tx = answer["txHash"]
    assert status == 201 and headers["Location"] == f"/pdp/data-sets/created/{tx}"
    status, pending, _ = await _call(node, "GET", headers["Location"])
    assert pending == {
        "createMessageHash": tx,
        "dataSetCreated": False,
        "service": "public",
        "txStatus": "pending",
        "ok": None,
    }
    chain.mine()
    _, created, _ = await _call(node, "GET", headers["Location"])
    assert created["dataSetCreated"] is True and created["ok"] is True
    assert (created["txStatus"], created["dataSetId"]) == ("confirmed", 1)
    _, added, _ = await _call(node, "GET", f"/pdp/data-sets/1/pieces/added/{tx}")
    assert added == {
        "txHash": tx,
        "txStatus": "confirmed",
        "dataSetId": 1,
        "pieceCount": 1,
        "addMessageOk": True,
        "piecesAdded": True,
        "confirmedPieceIds": [0],
    }
    _, view, _ = await _call(node, "GET", "/pdp/data-sets/1")
    assert view == {
        "id": 1,
        "nextChallengeEpoch": 1000,
        "pieces": [{"pieceId": 0, "pieceCid": cid, "subPieceCid": cid, "subPieceOffset": 0}],
    }
    _, one, _ = await _call(node, "GET", "/pdp/data-sets/1/pieces/0")
    assert one == {
        "pieceId": 0,
        "pieceCid": cid,
        "subPieces": [{"subPieceCid": cid, "subPieceOffset": 0}],
    }


async def test_add_pieces_remove_and_terminate(node: RunningNode, chain: FakePdpChain) -> None:
    first, second = await _piece(node), await _piece(node)
    _, answer, _ = await _call(node, "POST", "/pdp/data-sets", {"recordKeeper": FWSS})
    chain.mine()
    status, created, _ = await _call(node, "GET", f"/pdp/data-sets/created/{answer['txHash']}")
    set_id = created["dataSetId"]
    body = {"pieces": _pieces(first, second), "extraData": EXTRA}
    status, answer, headers = await _call(node, "POST", f"/pdp/data-sets/{set_id}/pieces", body)
    assert status == 201
    assert headers["Location"] == f"/pdp/data-sets/{set_id}/pieces/added/{answer['txHash']}"
    _, pending, _ = await _call(node, "GET", headers["Location"])
    assert (pending["piecesAdded"], pending["addMessageOk"], pending["pieceCount"]) == (
        False, None, 2,
    )  # fmt: skip
    chain.mine()
    _, added, _ = await _call(node, "GET", headers["Location"])
    assert added["confirmedPieceIds"] == [0, 1]
    status, removal, _ = await _call(
        node, "DELETE", f"/pdp/data-sets/{set_id}/pieces/0", {"extraData": EXTRA}
    )
    assert status == 200 and removal["txHash"].startswith("0x")
    status, ended, _ = await _call(
        node, "POST", f"/pdp/data-sets/{set_id}/terminate", {"extraData": EXTRA}
    )
    assert status == 202
    chain.mine()
    _, state, _ = await _call(node, "GET", f"/pdp/data-sets/{set_id}/terminate")
    assert state["terminationTxHash"] == ended["terminationTxHash"]
    assert state["fwssTerminated"] is True


async def test_pieces_in_a_data_set_outlive_the_keep_window_until_removed(
    tmp_path: Path, chain: FakePdpChain
) -> None:
    clock = FakeClock()
    node = await start_node(make_node_config(tmp_path, capacity="4MiB"), clock, chain=chain)
    try:
        cid = await _piece(node)
        body = {"recordKeeper": FWSS, "extraData": EXTRA, "pieces": _pieces(cid)}
        _, answer, _ = await _call(node, "POST", "/pdp/data-sets/create-and-add", body)
        chain.mine()
        await _call(node, "GET", f"/pdp/data-sets/created/{answer['txHash']}")
        clock.advance(3 * 3600)
        await node.service.collect_garbage()
        assert cid in node.service.pieces  # claimed by the data set
        assert (await _call(node, "DELETE", "/pdp/data-sets/1/pieces/0", {}))[0] == 200
        chain.mine()
        assert await node.service.settle_pending() == 1  # what the gc loop does first
        await node.service.collect_garbage()
        assert cid in node.service.pieces  # parked again: a fresh keep window
        clock.advance(2 * 3600)
        await node.service.collect_garbage()
        assert cid not in node.service.pieces
    finally:
        await node.stop()


async def test_refusals_have_curio_statuses(node: RunningNode, chain: FakePdpChain) -> None:
    missing = piece_of(os.urandom(500))
    body = {"recordKeeper": FWSS, "extraData": EXTRA, "pieces": _pieces(missing)}
    status, err, _ = await _call(node, "POST", "/pdp/data-sets/create-and-add", body)
    assert status == 400 and err["code"] == "piece_not_found"
    cid = await _piece(node)
    too_many = {"recordKeeper": FWSS, "extraData": EXTRA, "pieces": _pieces(*[cid] * 41)}
    assert (await _call(node, "POST", "/pdp/data-sets/create-and-add", too_many))[0] == 400
    aggregate = _pieces(cid)
    aggregate[0]["subPieces"] = [{"subPieceCid": missing}]
    body = {"recordKeeper": FWSS, "extraData": EXTRA, "pieces": aggregate}
    assert (await _call(node, "POST", "/pdp/data-sets/create-and-add", body))[0] == 400
    chain.refuse_next = "invalid signature"
    status, err, _ = await _call(node, "POST", "/pdp/data-sets", {"recordKeeper": FWSS})
    assert (status, err["code"]) == (400, "chain_refused")
    status, _, _ = await _call(node, "GET", "/pdp/data-sets/created/0x" + "00" * 32)
    assert status == 404
    assert (await _call(node, "GET", "/pdp/data-sets/99"))[0] == 404


def test_record_keepers_not_named_in_config_are_403_and_bad_addresses_400() -> None:
    assert parse_record_keeper(FWSS.lower(), ()) == FWSS  # no list: any keeper
    assert parse_record_keeper(FWSS, (FWSS,)) == FWSS
    with pytest.raises(ClientError) as refused:
        parse_record_keeper("0x" + "11" * 20, (FWSS,))
    assert (refused.value.status, refused.value.code) == (403, "record_keeper_not_allowed")
    with pytest.raises(ClientError) as bad:
        parse_record_keeper("0x12", ())
    assert bad.value.status == 400


async def test_a_node_without_a_chain_answers_501_on_every_data_set_route(tmp_path: Path) -> None:
    node = await start_node(make_node_config(tmp_path), FakeClock())
    tx = "0x" + "11" * 32
    try:
        for method, path in [
            ("POST", "/pdp/data-sets"),
            ("POST", "/pdp/data-sets/create-and-add"),
            ("GET", f"/pdp/data-sets/created/{tx}"),
            ("GET", "/pdp/data-sets/1"),
            ("POST", "/pdp/data-sets/1/pieces"),
            ("GET", f"/pdp/data-sets/1/pieces/added/{tx}"),
            ("GET", "/pdp/data-sets/1/pieces/2"),
            ("DELETE", "/pdp/data-sets/1/pieces/2"),
            ("POST", "/pdp/data-sets/1/terminate"),
            ("GET", "/pdp/data-sets/1/terminate"),
        ]:
            status, err, _ = await _call(node, method, path, {} if method != "GET" else None)
            assert status == 501, (method, path)
            assert err["code"] == "not_a_foc_provider" and "chain_rpc" in err["message"]
    finally:
        await node.stop()


async def test_synapse_core_data_set_calls_accept_our_answers(tmp_path: Path) -> None:
    """createDataSetAndAddPiecesApiRequest + waitForCreateDataSetAddPieces, getDataSet,
    addPiecesApiRequest + waitForAddPieces, createDataSetApiRequest + waitForCreateDataSet and
    deletePiece: Synapse's zod schemas parse every answer (the chain is the fake)."""
    chain = FakePdpChain(pending_polls=1)
    node = await start_node(make_node_config(tmp_path, capacity="4MiB"), FakeClock(), chain=chain)
    try:
        first, second = await _piece(node), await _piece(node)
        script = ROOT / "tests" / "js" / "synapse_datasets.mjs"
        process = await asyncio.create_subprocess_exec(
            "node", str(script), node.url + "/", FWSS, first, second,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, stderr.decode()[-4000:]
        out = json.loads(stdout.decode().strip().splitlines()[-1])
    finally:
        await node.stop()
    assert out["createAndAdd"]["hash"] == out["createAndAdd"]["txHash"]
    assert out["createAndAdd"]["dataSetId"] == "1" and out["createAndAdd"]["pieceIds"] == ["0"]
    assert out["getDataSet"] == {"id": "1", "nextChallengeEpoch": 1000, "pieces": [["0", first]]}
    assert out["addPieces"] == {"txStatus": "confirmed", "pieceIds": ["1"]}
    assert out["createDataSet"] == {"dataSetCreated": True, "id": "2"}
    assert out["deletePiece"]["hash"].startswith("0x")
