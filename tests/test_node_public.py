"""Uploads without a deal (Curio's "public" caller), against a real node on 127.0.0.1:0 with a
settable clock: both upload flows, the keep window, claims by a deal, the caps on unclaimed bytes
per address and node-wide, and the parked deadline surviving a restart."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nacl.signing import SigningKey

from gateway.node import RunningNode, start_node
from gateway.testing.node_client import (
    FakeClock,
    SigningClient,
    make_node_config,
    make_proposal,
    piece_of,
)

KEEP = 7200.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _config(tmp_path: Path, **settings: Any) -> Any:
    caps = {"max_unclaimed": "256KiB", "max_unclaimed_per_address": "128KiB"}
    return make_node_config(tmp_path, capacity="4MiB", **{**caps, **settings})


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    running = await start_node(_config(tmp_path), clock)
    yield running
    await running.stop()


async def _send(
    url: str, method: str, path: str, body: bytes | None = None, local: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """An unauthenticated request, as the Synapse client sends them."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0) if local else None)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, url + path, data=body) as response,
    ):
        return response.status, await response.read(), dict(response.headers)


async def _post_piece(node: RunningNode, data: bytes, local: str | None = None) -> tuple[int, str]:
    body = b'{"pieceCid": "%s"}' % piece_of(data).encode()
    status, _, headers = await _send(node.url, "POST", "/pdp/piece", body, local)
    return status, headers.get("Location", "")


async def _upload(node: RunningNode, data: bytes, local: str | None = None) -> int:
    status, location = await _post_piece(node, data, local)
    assert status == 201, status
    return (await _send(node.url, "PUT", location, data, local))[0]


async def _found(node: RunningNode, cid: str) -> int:
    return (await _send(node.url, "GET", f"/pdp/piece?pieceCid={cid}"))[0]


async def test_an_unclaimed_upload_is_served_then_deleted_after_the_keep_window(
    node: RunningNode, clock: FakeClock
) -> None:
    data = os.urandom(3000)
    assert await _upload(node, data) == 204
    cid = piece_of(data)
    assert await _found(node, cid) == 200
    assert (await _post_piece(node, data))[0] == 200  # held: nothing to send
    clock.advance(KEEP - 1)
    await node.service.collect_garbage()
    assert await _found(node, cid) == 200
    clock.advance(1)
    assert (await node.service.collect_garbage())["unclaimed_deleted"] == 1
    assert await _found(node, cid) == 404
    assert not (node.service.config.data_dir / "pieces" / cid).exists()
    assert not (node.service.config.data_dir / "parked" / f"{cid}.json").exists()


async def test_a_deal_claims_a_parked_piece_so_the_keep_window_does_not_delete_it(
    node: RunningNode, clock: FakeClock
) -> None:
    data = os.urandom(3000)
    assert await _upload(node, data) == 204
    client = SigningClient(node.url, SigningKey.generate(), clock)
    try:
        wire = make_proposal(client.key, node.provider, data, clock.epoch)
        status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
        assert status == 200 and body["body"]["accepted"]
    finally:
        await client.close()
    clock.advance(KEEP + 60)
    await node.service.collect_garbage()
    assert await _found(node, piece_of(data)) == 200


async def test_streaming_upload_finalised_with_the_right_cid_is_parked(node: RunningNode) -> None:
    data = os.urandom(5000)
    status, _, headers = await _send(node.url, "POST", "/pdp/piece/uploads")
    assert status == 201 and headers["Location"].startswith("/pdp/piece/uploads/")
    location = headers["Location"]
    assert (await _send(node.url, "PUT", location, data))[0] == 204
    assert await _found(node, piece_of(data)) == 404  # not a piece until it is named
    wrong = b'{"pieceCid": "%s"}' % piece_of(data[:-1]).encode()
    status, text, _ = await _send(node.url, "POST", location, wrong)
    assert status == 400 and b"piece CID is" in text
    assert (await _send(node.url, "POST", location, wrong))[0] == 404  # the session is gone


async def test_streaming_upload_finalise_answers_200_with_the_cid(node: RunningNode) -> None:
    data = os.urandom(5000)
    location = (await _send(node.url, "POST", "/pdp/piece/uploads"))[2]["Location"]
    assert (await _send(node.url, "PUT", location, data))[0] == 204
    body = b'{"pieceCid": "%s"}' % piece_of(data).encode()
    status, answer, _ = await _send(node.url, "POST", location, body)
    assert status == 200 and piece_of(data).encode() in answer
    assert await _found(node, piece_of(data)) == 200


async def test_a_wrong_body_for_the_announced_piece_is_400_and_not_stored(
    node: RunningNode,
) -> None:
    data = os.urandom(3000)
    status, location = await _post_piece(node, data)
    assert status == 201
    status, text, headers = await _send(node.url, "PUT", location, os.urandom(3000))
    assert b"piece CID is" in text
    assert status == 400 and headers["Content-Type"].startswith("text/plain")
    assert await _found(node, piece_of(data)) == 404


async def test_unclaimed_bytes_are_capped_per_address_and_node_wide(node: RunningNode) -> None:
    """128 KiB per address, 256 KiB in all (padded sizes): 127 B..32 KiB pieces fill them."""
    piece = 32 * 1024 * 127 // 128  # payload of a 32 KiB padded piece
    for _ in range(4):
        assert await _upload(node, os.urandom(piece), "127.0.0.2") == 204
    status, _ = await _post_piece(node, os.urandom(piece), "127.0.0.2")
    assert status == 429
    for _ in range(4):
        assert await _upload(node, os.urandom(piece), "127.0.0.3") == 204
    status, _ = await _post_piece(node, os.urandom(piece), "127.0.0.4")
    assert status == 429  # a fresh address, but the node-wide cap is reached


async def test_a_stream_is_cut_off_when_it_would_pass_the_cap(node: RunningNode) -> None:
    location = (await _send(node.url, "POST", "/pdp/piece/uploads", local="127.0.0.5"))[2][
        "Location"
    ]
    status, _, _ = await _send(node.url, "PUT", location, os.urandom(200_000), "127.0.0.5")
    assert status == 429
    assert not list((node.service.config.data_dir / "tmp").iterdir())


async def test_an_open_session_lapses_after_reservation_ttl(
    node: RunningNode, clock: FakeClock
) -> None:
    data = os.urandom(3000)
    status, location = await _post_piece(node, data)
    assert status == 201
    clock.advance(node.service.config.reservation_ttl)
    assert (await node.service.collect_garbage())["sessions_lapsed"] == 1
    assert (await _send(node.url, "PUT", location, data))[0] == 404


async def test_the_keep_window_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    config = _config(tmp_path)
    node = await start_node(config, clock)
    data = os.urandom(3000)
    try:
        assert await _upload(node, data) == 204
    finally:
        await node.stop()
    clock.advance(KEEP)
    node = await start_node(config, clock)  # recover() collects garbage on start
    try:
        assert await _found(node, piece_of(data)) == 404
    finally:
        await node.stop()


async def test_piece_status_has_curio_fields(node: RunningNode, clock: FakeClock) -> None:
    data = os.urandom(3000)
    assert await _upload(node, data) == 204
    cid = piece_of(data)
    status, body, _ = await _send(node.url, "GET", f"/pdp/piece/{cid}/status")
    assert status == 200
    fields = json.loads(body)
    assert fields == {
        "pieceCid": cid,
        "status": "pending",
        "indexed": False,
        "advertised": False,
        "retrieved": False,
        "retrievedAt": None,
    }
    assert (await _send(node.url, "GET", f"/piece/{cid}"))[0] == 200
    fields = json.loads((await _send(node.url, "GET", f"/pdp/piece/{cid}/status"))[1])
    assert fields["status"] == "retrieved" and fields["retrievedAt"].endswith("Z")


async def test_ping_answers_curio_pdp(node: RunningNode) -> None:
    status, body, _ = await _send(node.url, "GET", "/pdp/ping")
    assert (status, body) == (200, b"curio-pdp")
