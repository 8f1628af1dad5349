"""The storage node's HTTP API end to end: a real node on 127.0.0.1:0, a real aiohttp client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from gateway.keys import format_gateway_public
from gateway.market.epoch import EPOCH_SECONDS
from gateway.market.messages import Ask, DealAcceptance, Voucher
from gateway.node import RunningNode, start_node
from gateway.piece import commp, piece_cid_v2, piece_info_from_v2, verify_inclusion
from gateway.testing.node_client import FakeClock, SigningClient, make_node_config, make_proposal


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    # one client may reserve the whole 1 MiB here; tests/test_node_abuse.py covers the caps
    caps = {"max_unpaid_reserved": "1MiB", "max_reserved_per_client": "1MiB"}
    running = await start_node(make_node_config(tmp_path, capacity="1MiB", **caps), clock)
    yield running
    await running.stop()


@pytest.fixture
async def client(node: RunningNode, clock: FakeClock) -> AsyncIterator[SigningClient]:
    c = SigningClient(node.url, SigningKey.generate(), clock)
    yield c
    await c.close()


async def deal_for(
    client: SigningClient, node: RunningNode, data: bytes, **changes: Any
) -> tuple[int, Any]:
    provider = changes.pop("provider", node.provider)
    wire = make_proposal(client.key, provider, data, client.clock.epoch, **changes)
    status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
    return status, body


async def upload(client: SigningClient, url: str, data: bytes) -> tuple[int, Any]:
    status, body, _ = await client.send("PUT", url, data)
    return status, body


async def test_happy_path_ask_deal_upload_read_prove_pay(
    node: RunningNode, client: SigningClient
) -> None:
    """The whole flow a gateway goes through, every message checked against the provider key."""
    status, ask_wire, _ = await client.send("GET", "/market/v1/ask", sign=False)
    assert status == 200
    ask, signer = Ask.open(ask_wire)
    assert format_gateway_public(signer) == ask.provider == node.provider
    assert ask.free_bytes == 1 << 20 and ask.url == node.url

    data = os.urandom(5000)
    cid = str(piece_cid_v2(commp(data)))
    status, wire = await deal_for(client, node, data)
    assert status == 200
    acceptance, _ = DealAcceptance.open(wire, signer=signer)
    assert acceptance.accepted and acceptance.upload_url.startswith("/pdp/piece/upload/")

    status, body, headers = await client.send("POST", "/pdp/piece", json_body={"pieceCid": cid})
    assert status == 201 and headers["Location"] == acceptance.upload_url

    assert (await client.send("GET", f"/pdp/piece/?pieceCid={cid}", sign=False))[0] == 404
    assert await upload(client, acceptance.upload_url, data) == (204, b"")
    status, body, _ = await client.send("GET", f"/pdp/piece/?pieceCid={cid}", sign=False)
    assert (status, body) == (200, {"pieceCid": cid})
    status, body, _ = await client.send("POST", "/pdp/piece", json_body={"pieceCid": cid})
    assert (status, body) == (200, {"pieceCid": cid})

    status, body, headers = await client.send("GET", f"/piece/{cid}", sign=False)
    assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
    status, body, headers = await client.send(
        "GET", f"/piece/{cid}", sign=False, headers={"Range": "bytes=100-199"}
    )
    assert status == 206 and body == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    status, body, _ = await client.send(
        "GET", f"/piece/{cid}", sign=False, headers={"Range": "bytes=-10"}
    )
    assert (status, body) == (206, data[-10:])
    status, _, headers = await client.send(
        "GET", f"/piece/{cid}", sign=False, headers={"Range": "bytes=5000-"}
    )
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"

    info = piece_info_from_v2(cid)
    leaves = [0, 1, 5, 77, (1 << info.height) - 1]
    status, proof, _ = await client.send(
        "POST", "/market/v1/prove", json_body={"pieceCid": cid, "leaves": leaves}, sign=False
    )
    assert status == 200 and [p["index"] for p in proof["leaves"]] == leaves
    for p in proof["leaves"]:
        path = [bytes.fromhex(node_hex) for node_hex in p["path"]]
        assert verify_inclusion(info.root, bytes.fromhex(p["leaf"]), p["index"], path, info.height)

    deal_id = acceptance.deal_id
    for nonce, amount in ((1, 1000), (2, 5000)):
        voucher = Voucher(deal_id=deal_id, lane=0, nonce=nonce, amount=amount).sign(client.key)
        status, body, _ = await client.send(
            "POST", f"/market/v1/deals/{deal_id}/vouchers", json_body=voucher
        )
        assert status == 200
    assert body["paid_total"] == "5000" and body["earned"] == "4000"

    status, deal, _ = await client.send("GET", f"/market/v1/deals/{deal_id}", sign=False)
    assert status == 200 and deal["state"] == "active" and deal["paid_total"] == "5000"
    assert deal["lanes"]["0"] == {"nonce": 2, "amount": "5000", "vouchers": 2}

    status, snap, _ = await client.send("GET", "/status", sign=False)
    assert snap["pieces"] == 1 and snap["deals"]["active"] == 1
    assert snap["used"] == info.padded_size and snap["free"] == (1 << 20) - info.padded_size
    assert snap["earnings"]["total"] == "5000" and snap["earnings"]["vouchers"] == 2
    status, text, _ = await client.send("GET", "/metrics", sign=False)
    assert b'depin_node_deals{state="active"} 1.0' in text
    assert b"depin_node_earned_attofil_total 5000.0" in text


async def test_proposal_for_a_held_piece_is_active_at_once(
    node: RunningNode, client: SigningClient
) -> None:
    data = os.urandom(300)
    _, wire = await deal_for(client, node, data)
    assert await upload(client, wire["body"]["upload_url"], data) == (204, b"")
    status, wire2 = await deal_for(client, node, data)
    assert status == 200 and wire2["body"]["upload_url"] == ""
    assert wire2["body"]["reason"] == "piece already held"
    deal = (await client.send("GET", f"/market/v1/deals/{wire2['body']['deal_id']}"))[1]
    assert deal["state"] == "active"


async def test_reposting_a_proposal_returns_the_same_acceptance(
    node: RunningNode, client: SigningClient
) -> None:
    wire = make_proposal(client.key, node.provider, b"x" * 200, client.clock.epoch)
    first = await client.send("POST", "/market/v1/deals", json_body=wire)
    second = await client.send("POST", "/market/v1/deals", json_body=wire)
    assert first[0] == second[0] == 200 and first[1] == second[1]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"storage_price_per_epoch": 0}, "price_below_ask"),
        ({"end_epoch": None}, "duration_too_long"),
        ({"start_epoch": 0}, "start_in_past"),
        ({"provider": "ed25519:" + "ab" * 32}, "wrong_provider"),
        ({"piece_size": 4096}, "bad_piece"),
    ],
)
async def test_policy_rejections_are_signed_with_a_reason(
    node: RunningNode, client: SigningClient, changes: dict[str, Any], code: str
) -> None:
    """A deal the node will not take gets 422 and a signed acceptance=false naming the rule."""
    epoch = client.clock.epoch
    if changes.get("end_epoch", 0) is None:
        changes = {"end_epoch": epoch + 10 + 541 * 2880}
    if changes.get("start_epoch") == 0:
        changes = {"start_epoch": epoch - 1, "end_epoch": epoch + 3000}
    status, wire = await deal_for(client, node, os.urandom(1000), **changes)
    assert status == 422
    acceptance, _ = DealAcceptance.open(wire)
    assert not acceptance.accepted and acceptance.reason.startswith(code + ":")
    assert acceptance.upload_url == ""
    deal = (await client.send("GET", f"/market/v1/deals/{acceptance.deal_id}", sign=False))[1]
    assert deal["state"] == "rejected" and deal["reason"] == acceptance.reason
    snap = (await client.send("GET", "/status", sign=False))[1]
    assert snap["rejected"][code] == 1


async def test_no_space_counts_reservations_of_pending_deals(
    node: RunningNode, client: SigningClient
) -> None:
    """Capacity 1 MiB: two 512 KiB deals fit (reserved), a third is refused with no_space."""
    pieces = [os.urandom(400_000) for _ in range(3)]
    assert (await deal_for(client, node, pieces[0]))[0] == 200
    assert (await deal_for(client, node, pieces[1]))[0] == 200
    status, wire = await deal_for(client, node, pieces[2])
    assert status == 422 and wire["body"]["reason"].startswith("no_space:")
    ask = (await client.send("GET", "/market/v1/ask", sign=False))[1]
    assert ask["body"]["free_bytes"] == 0


async def test_upload_with_wrong_bytes_is_a_commp_mismatch_and_can_be_retried(
    node: RunningNode, client: SigningClient
) -> None:
    data = os.urandom(3000)
    _, wire = await deal_for(client, node, data)
    url = wire["body"]["upload_url"]
    status, body = await upload(client, url, os.urandom(3000))
    assert status == 400 and body["code"] == "commp_mismatch"
    status, body = await upload(client, url, data[:-1])
    assert status == 400 and body["code"] == "commp_mismatch"
    assert await upload(client, url, data) == (204, b"")
    status, body = await upload(client, url, data)
    assert status == 409 and body["code"] == "duplicate"
    leftovers = await asyncio.to_thread(lambda: list(node.service.store.tmp_dir.iterdir()))
    assert leftovers == [] and not node.service.uploading


async def test_oversized_uploads_are_refused_by_length_and_while_streaming(
    node: RunningNode, client: SigningClient
) -> None:
    """413 from Content-Length, and from a chunked body whose length is not announced."""
    data = os.urandom(2000)
    _, wire = await deal_for(client, node, data)
    url = wire["body"]["upload_url"]
    status, body = await upload(client, url, data + b"more")
    assert status == 413 and body["code"] == "too_large"

    too_long = data + os.urandom(1000)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(too_long), 500):
            yield too_long[i : i + 500]

    headers = client.headers("PUT", url, too_long)
    status, body, _ = await client.send("PUT", url, sign=False, headers=headers, data=chunks())
    assert status == 413 and body["code"] == "too_large"
    assert await upload(client, url, data) == (204, b"")


async def test_chunked_upload_of_the_right_bytes_is_accepted(
    node: RunningNode, client: SigningClient
) -> None:
    data = os.urandom(70_000)
    _, wire = await deal_for(client, node, data)
    url = wire["body"]["upload_url"]

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7000):
            yield data[i : i + 7000]

    headers = client.headers("PUT", url, data)
    status, _, _ = await client.send("PUT", url, sign=False, headers=headers, data=chunks())
    assert status == 204


async def test_prove_limits_and_missing_pieces(node: RunningNode, client: SigningClient) -> None:
    data = os.urandom(500)
    cid = str(piece_cid_v2(commp(data)))
    status, body, _ = await client.send(
        "POST", "/market/v1/prove", json_body={"pieceCid": cid, "leaves": [0]}, sign=False
    )
    assert status == 404
    _, wire = await deal_for(client, node, data)
    await upload(client, wire["body"]["upload_url"], data)
    for leaves in ([], list(range(65)), [1 << 20], [-1], ["0"], [True], None):
        status, body, _ = await client.send(
            "POST", "/market/v1/prove", json_body={"pieceCid": cid, "leaves": leaves}, sign=False
        )
        assert status == 400 and body["code"] == "bad_request", leaves


async def test_piece_by_v1_cid_and_head(node: RunningNode, client: SigningClient) -> None:
    from gateway.piece import v2_to_v1

    data = os.urandom(1500)
    _, wire = await deal_for(client, node, data)
    await upload(client, wire["body"]["upload_url"], data)
    v1, _ = v2_to_v1(wire["body"]["piece_cid"])
    status, body, _ = await client.send("GET", f"/piece/{v1}", sign=False)
    assert (status, body) == (200, data)
    status, body, headers = await client.send("HEAD", f"/piece/{v1}", sign=False)
    assert status == 200 and body == b"" and headers["Content-Length"] == "1500"
    assert (await client.send("GET", "/piece/bafkzcibnotacid", sign=False))[0] == 400


async def test_upload_deadline_fails_the_deal(
    node: RunningNode, client: SigningClient, clock: FakeClock
) -> None:
    data = os.urandom(400)
    _, wire = await deal_for(client, node, data)
    clock.advance(11 * EPOCH_SECONDS)
    status, body = await upload(client, wire["body"]["upload_url"], data)
    assert status == 409 and "deadline" in body["error"]
    await node.service.collect_garbage()
    deal = (await client.send("GET", f"/market/v1/deals/{wire['body']['deal_id']}"))[1]
    assert deal["state"] == "failed"
    assert node.service.reserved_bytes == 0
