"""Who may do what on a node: signatures, replays, clocks, other clients' deals, rate limits,
and garbage bodies (always a clear 4xx, never a 500)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from gateway.keys import format_gateway_public
from gateway.market.messages import Voucher
from gateway.node import RunningNode, start_node
from gateway.testing.node_client import FakeClock, SigningClient, make_node_config, make_proposal

POSTS = ["/pdp/piece", "/market/v1/deals", "/market/v1/deals/abc/vouchers", "/market/v1/prove"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    running = await start_node(make_node_config(tmp_path), clock)
    yield running
    await running.stop()


@pytest.fixture
async def alice(node: RunningNode, clock: FakeClock) -> AsyncIterator[SigningClient]:
    c = SigningClient(node.url, SigningKey.generate(), clock)
    yield c
    await c.close()


@pytest.fixture
async def mallory(node: RunningNode, clock: FakeClock) -> AsyncIterator[SigningClient]:
    c = SigningClient(node.url, SigningKey.generate(), clock)
    yield c
    await c.close()


async def accepted_deal(client: SigningClient, node: RunningNode, data: bytes) -> dict[str, Any]:
    wire = make_proposal(client.key, node.provider, data, client.clock.epoch)
    status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
    assert status == 200
    return dict(body["body"])


async def test_unsigned_and_forged_requests_are_refused(
    node: RunningNode, alice: SigningClient
) -> None:
    wire = make_proposal(alice.key, node.provider, b"a" * 300, alice.clock.epoch)
    body = json.dumps(wire).encode()
    status, err, _ = await alice.send("POST", "/market/v1/deals", body, sign=False)
    assert status == 401 and err["code"] == "unsigned"

    headers = alice.headers("POST", "/market/v1/deals", body)
    tampered = body.replace(b'"label": "test"', b'"label": "evil"')
    status, err, _ = await alice.send(
        "POST", "/market/v1/deals", tampered, sign=False, headers=headers
    )
    assert status == 401 and "Content-Digest" in err["error"]

    headers = alice.headers("POST", "/market/v1/deals", body)
    headers["Signature"] = "sig1=:" + "A" * 86 + "==:"
    status, err, _ = await alice.send("POST", "/market/v1/deals", body, sign=False, headers=headers)
    assert status == 401 and err["code"] == "bad_signature"

    headers = alice.headers("POST", "/market/v1/ask-elsewhere", body)  # signed for another path
    status, err, _ = await alice.send("POST", "/market/v1/deals", body, sign=False, headers=headers)
    assert status == 401 and err["code"] == "bad_signature"


async def test_replayed_request_is_refused(node: RunningNode, alice: SigningClient) -> None:
    wire = make_proposal(alice.key, node.provider, b"b" * 300, alice.clock.epoch)
    body = json.dumps(wire).encode()
    headers = alice.headers("POST", "/market/v1/deals", body, nonce="fixed-nonce-1")
    first = await alice.send("POST", "/market/v1/deals", body, sign=False, headers=headers)
    again = await alice.send("POST", "/market/v1/deals", body, sign=False, headers=headers)
    assert first[0] == 200
    assert again[0] == 401 and again[1]["code"] == "replayed"


async def test_stale_and_future_signatures_are_refused(
    node: RunningNode, alice: SigningClient, clock: FakeClock
) -> None:
    wire = make_proposal(alice.key, node.provider, b"c" * 300, alice.clock.epoch)
    body = json.dumps(wire).encode()
    for offset in (-301, 301):
        clock.advance(offset)
        headers = alice.headers("POST", "/market/v1/deals", body)
        clock.advance(-offset)
        status, err, _ = await alice.send(
            "POST", "/market/v1/deals", body, sign=False, headers=headers
        )
        assert status == 401 and err["code"] == "stale"


async def test_proposal_signed_by_one_key_sent_by_another_is_refused(
    node: RunningNode, alice: SigningClient, mallory: SigningClient
) -> None:
    wire = make_proposal(alice.key, node.provider, b"d" * 300, alice.clock.epoch)
    status, err, _ = await mallory.send("POST", "/market/v1/deals", json_body=wire)
    assert status == 403 and err["code"] == "not_your_deal"


async def test_other_clients_cannot_upload_pay_or_take_over_a_deal(
    node: RunningNode, alice: SigningClient, mallory: SigningClient
) -> None:
    data = os.urandom(1000)
    deal = await accepted_deal(alice, node, data)
    status, err, _ = await mallory.send("PUT", deal["upload_url"], data)
    assert status == 403 and err["code"] == "not_your_deal"
    status, _, headers = await mallory.send(
        "POST", "/pdp/piece", json_body={"pieceCid": deal["piece_cid"]}
    )
    # like anyone without a deal, a public upload of her own, never alice's upload URL
    assert status == 201 and headers["Location"] != deal["upload_url"]

    deal_id = deal["deal_id"]
    own = Voucher(deal_id=deal_id, lane=0, nonce=1, amount=5).sign(mallory.key)
    status, err, _ = await mallory.send(
        "POST", f"/market/v1/deals/{deal_id}/vouchers", json_body=own
    )
    assert status == 403
    stolen = Voucher(deal_id=deal_id, lane=0, nonce=1, amount=5).sign(alice.key)
    status, err, _ = await mallory.send(
        "POST", f"/market/v1/deals/{deal_id}/vouchers", json_body=stolen
    )
    assert status == 403
    forged = Voucher(deal_id=deal_id, lane=0, nonce=1, amount=5).sign(mallory.key)
    forged["signer"] = format_gateway_public(alice.key.verify_key)  # mallory's signature
    status, _, _ = await alice.send(
        "POST", f"/market/v1/deals/{deal_id}/vouchers", json_body=forged
    )
    assert status == 400
    assert (await alice.send("PUT", deal["upload_url"], data))[0] == 204


async def test_vouchers_must_grow(node: RunningNode, alice: SigningClient) -> None:
    deal = await accepted_deal(alice, node, os.urandom(1000))
    path = f"/market/v1/deals/{deal['deal_id']}/vouchers"

    async def pay(lane: int, nonce: int, amount: int) -> tuple[int, Any]:
        wire = Voucher(deal_id=deal["deal_id"], lane=lane, nonce=nonce, amount=amount)
        status, body, _ = await alice.send("POST", path, json_body=wire.sign(alice.key))
        return status, body

    assert (await pay(0, 5, 100))[0] == 200
    assert (await pay(0, 5, 200))[1]["code"] == "bad_voucher"  # same nonce
    assert (await pay(0, 6, 99))[1]["code"] == "bad_voucher"  # amount went down
    assert (await pay(1, 0, 10))[0] == 200  # another lane is independent
    status, body = await pay(0, 7, 100)
    assert status == 200 and body["earned"] == "0" and body["paid_total"] == "110"
    other = Voucher(deal_id="f" * 32, lane=0, nonce=9, amount=1).sign(alice.key)
    status, body, _ = await alice.send("POST", path, json_body=other)
    assert status == 409 and body["code"] == "bad_voucher"
    status, body, _ = await alice.send("GET", "/status", sign=False)
    assert body["earnings"]["clients"][deal["client"]] == {"vouchers": 3, "total": "110"}


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b"[" * 100_000, b'{"a": 1e999}']
)
async def test_garbage_bodies_get_a_clear_400(
    node: RunningNode, alice: SigningClient, path: str, body: bytes
) -> None:
    status, err, _ = await alice.send("POST", path, body)
    assert status in (400, 404), (status, err)
    assert isinstance(err, dict) and err["error"] and err["code"]


async def test_json_bodies_over_the_limit_are_413(node: RunningNode, alice: SigningClient) -> None:
    status, err, _ = await alice.send("POST", "/market/v1/deals", b" " * (2 << 20))
    assert status == 413 and err["code"] == "too_large"


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Path, clock: FakeClock) -> None:
    config = make_node_config(tmp_path, rate_requests=1, rate_burst=3)
    node = await start_node(config, clock)
    client = SigningClient(node.url, SigningKey.generate(), clock)
    try:
        statuses = [(await client.send("GET", "/pdp/ping", sign=False)) for _ in range(5)]
        assert [s[0] for s in statuses] == [200, 200, 200, 429, 429]
        assert int(statuses[3][2]["Retry-After"]) >= 1
        # a Curio route, asked as a Curio client asks: Curio's text/plain error body
        assert statuses[3][1].startswith(b"too many requests")
    finally:
        await client.close()
        await node.stop()
