"""Hostile shapes in node request bodies never give a 500 (a real node process), and the pieces
of the abuse fixes that need a clock we can move: reservations that lapse unless paid, deals
that end when their vouchers stop, the persisted replay cache's bounds, and the new config keys.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gateway.errors import ConfigError, InputError
from gateway.market.epoch import EPOCH_SECONDS, epoch_at
from gateway.market.httpsig import sign_request
from gateway.market.messages import Voucher, seal_signed
from gateway.node import node_config_from_string, start_node
from gateway.node.replaylog import PersistentReplayCache
from gateway.testing.node_client import (
    FakeClock,
    NodeProcess,
    SigningClient,
    make_node_config,
    make_proposal,
)

KEY = SigningKey.generate()
KEYID = "ed25519:" + bytes(KEY.verify_key).hex()
AMOUNT_FIELDS = ["storage_price_per_epoch", "provider_collateral", "client_collateral", "amount"]
ENDPOINTS = ["/pdp/piece", "/market/v1/deals", "/market/v1/prove", "/market/v1/deals/00/vouchers"]

hostile_text = st.one_of(
    st.integers(1_000, 100_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1_000, 100_000).map(lambda n: "[" * n),
    st.integers(100, 20_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(4_300, 6_000).map(lambda n: "9" * n),
    st.integers(4_300, 6_000).map(lambda n: "-" + "1" * n + ".5e" + "9" * 5),
    st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" * 80 + ".0"]),
    st.integers(65_536, 70_000).map(lambda n: json.dumps("x" * n)),
    st.sampled_from(['"\\ud800"', '"\\udfff\\ud800"', '"a\\u0000b"', '"\\udc00x"', '"\\ud83d"']),
)
hostile_amounts = st.one_of(
    st.integers(41, 6_000).map(lambda n: "9" * n),
    st.sampled_from(["\u00b2", "\u0663", " 1", "1_000", "-1", "0x10", "", "1e9"]),
)
hostile_bytes = st.sampled_from(
    [b'"\xed\xa0\x80"', b'"\x00"', b"\x00", b'"\xff\xfe"', b'"\xc0\x80"']
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    running = NodeProcess(tmp_path_factory.mktemp("hostile"))
    running.start()
    yield running
    assert running.stop() == 0
    assert "Traceback" not in running.log() and "ERROR" not in running.log()


def _post(url: str, path: str, body: bytes) -> int:
    return _exchange(url, path, body)[0]


def _exchange(url: str, path: str, body: bytes) -> tuple[int, bytes]:
    headers = sign_request("POST", path, "", body, KEY, int(time.time()), secrets.token_hex(12))
    request = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        answer = exc.read()
        exc.close()
        return int(exc.code), answer


@pytest.fixture(scope="module")
def deal_id(node: NodeProcess) -> str:
    """A deal of KEY's on the node, so vouchers reach the amount parser."""
    wire = make_proposal(KEY, node.provider, os.urandom(300), epoch_at(time.time()))
    status, answer = _exchange(node.url, ENDPOINTS[1], json.dumps(wire).encode())
    assert status == 200, answer
    return str(json.loads(answer)["body"]["deal_id"])


def _templates(provider: str) -> list[bytes]:
    """Valid bodies with one hole each: top level, a field value, a list item, a key."""
    wire = make_proposal(KEY, provider, b"z" * 200, epoch_at(time.time()))
    proposal = json.dumps(wire).replace('"label": "test"', '"label": HOLE')
    voucher = json.dumps(Voucher(deal_id="00", lane=0, nonce=1, amount=5).sign(KEY))
    return [
        b"HOLE",
        b'{"pieceCid": HOLE}',
        b'{"pieceCid": "bafkzcibcaapao", "leaves": [0, HOLE]}',
        proposal.encode(),
        voucher.replace('"lane": 0', '"lane": HOLE').encode(),
        b'{"body": {"x": [HOLE]}, "kind": HOLE}',
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hole=hostile_text.map(str.encode) | hostile_bytes, which=st.integers(0, 5))
def test_hostile_bodies_never_give_a_500(node: NodeProcess, hole: bytes, which: int) -> None:
    """Deep nesting, 4,300+ digit numbers, 70 kB strings, lone surrogates and NUL, anywhere in
    a correctly signed body, on every endpoint that parses one: always a 4xx (or a 2xx)."""
    body = _templates(node.provider)[which].replace(b"HOLE", hole)
    for path in ENDPOINTS:
        assert _post(node.url, path, body) < 500, (path, body[:80])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amount=hostile_amounts, field=st.sampled_from(AMOUNT_FIELDS))
def test_hostile_amounts_in_correctly_signed_messages_never_give_a_500(
    node: NodeProcess, deal_id: str, amount: str, field: str
) -> None:
    """Amounts are decimal strings: 4,300+ digits, non-ASCII digits ("\u00b2" passes isdigit),
    signs and separators, all signed properly so they reach the amount parser."""
    if field == "amount":
        body = {"deal_id": deal_id, "lane": 0, "nonce": 1, "amount": amount}
        wire = seal_signed("depin/voucher/v1", body, KEY)
        path = f"/market/v1/deals/{deal_id}/vouchers"
    else:
        proposal = make_proposal(KEY, node.provider, b"z" * 200, epoch_at(time.time()))
        proposal["body"][field] = amount
        wire, path = seal_signed(proposal["kind"], proposal["body"], KEY), ENDPOINTS[1]
    assert _post(node.url, path, json.dumps(wire).encode()) == 400


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=hostile_text | st.text(max_size=30))
def test_hostile_object_keys_and_paths_never_give_a_500(node: NodeProcess, key: str) -> None:
    body = b"{" + json.dumps(key[:70_000]).encode() + b": 1}"
    assert _post(node.url, "/market/v1/deals", body) < 500
    quoted = urllib.request.quote(key[:2000].encode("utf-8", "surrogatepass"))
    for path in (
        f"/piece/{quoted}",
        f"/market/v1/deals/{quoted}",
        f"/pdp/piece/?pieceCid={quoted}",
    ):
        try:
            with urllib.request.urlopen(node.url + path, timeout=30) as response:
                assert response.status < 500
        except urllib.error.HTTPError as exc:
            exc.close()
            assert exc.code < 500, path


async def test_reservations_hold_only_while_paid_and_active_deals_end_when_payments_stop(
    tmp_path: Path,
) -> None:
    """Unpaid: the reservation lapses after reservation_ttl and its upload is refused. Paid for
    the reserved epochs: it holds. Active, vouchers more than payment_grace behind: ended and
    the piece deleted; a deal that keeps paying stays."""
    clock = FakeClock()
    config = make_node_config(tmp_path, reservation_ttl="60s", payment_grace="1h")
    node = await start_node(config, clock)
    client = SigningClient(node.url, KEY, clock)
    try:
        unpaid, paid, paying = os.urandom(1000), os.urandom(1100), os.urandom(1200)
        start_epoch = clock.epoch + 10  # make_proposal's
        urls, ids = {}, {}
        for data in (unpaid, paid, paying):
            wire = make_proposal(KEY, node.provider, data, clock.epoch)
            body = (await client.send("POST", "/market/v1/deals", json_body=wire))[1]["body"]
            urls[data], ids[data] = body["upload_url"], body["deal_id"]
        for data, amount in ((paid, 10 * 10**9), (paying, 10 * 10**9)):
            voucher = Voucher(deal_id=ids[data], lane=0, nonce=1, amount=amount).sign(KEY)
            path = f"/market/v1/deals/{ids[data]}/vouchers"
            assert (await client.send("POST", path, json_body=voucher))[0] == 200
        clock.advance(61)
        assert node.service.reserved_bytes == 2 * 2048  # the two paid reservations
        status, body, _ = await client.send("PUT", urls[unpaid], unpaid)
        assert status == 409 and "reservation lapsed" in body["error"]
        for data in (paid, paying):
            assert (await client.send("PUT", urls[data], data))[0] == 204

        # the reservation's 10 epochs paid, then 120 epochs of grace, then 15 unpaid ones
        clock.advance((10 + 120 + 15) * EPOCH_SECONDS)
        owed = (clock.epoch - start_epoch) * 10**9
        voucher = Voucher(deal_id=ids[paying], lane=0, nonce=2, amount=owed).sign(KEY)
        path = f"/market/v1/deals/{ids[paying]}/vouchers"
        assert (await client.send("POST", path, json_body=voucher))[0] == 200
        await node.service.collect_garbage()
        states = {d: node.service.deals[ids[d]].state.value for d in (unpaid, paid, paying)}
        assert states == {unpaid: "failed", paid: "removed", paying: "active"}
        assert node.service.deals[ids[paid]].reason.startswith("payment lapsed")
        assert len(node.service.pieces) == 1
    finally:
        await client.close()
        await node.stop()


def test_replay_cache_is_bounded_and_drops_whole_old_segments(tmp_path: Path) -> None:
    now = 1_000_000
    cache = PersistentReplayCache(tmp_path, 300, now, max_entries=3)
    for i in range(3):
        cache.check_and_add(KEYID, f"nonce-{i:04}", now, now, 300)
    with pytest.raises(InputError, match="cache full"):
        cache.check_and_add(KEYID, "nonce-9999", now, now, 300)
    cache.close()
    reopened = PersistentReplayCache(tmp_path, 300, now + 10)
    with pytest.raises(InputError, match="replayed"):
        reopened.check_and_add(KEYID, "nonce-0001", now, now + 10, 300)
    (old,) = tmp_path.iterdir()
    later = now + 5_000  # every signature in the old segment is stale by now
    reopened.check_and_add(KEYID, "nonce-0001", later, later, 300)
    reopened.close()
    assert old not in list(tmp_path.iterdir()) and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('reservation_ttl = "0s"', "node.reservation_ttl"),
        ('reservation_ttl = "30d"', "node.reservation_ttl"),
        ('max_reserved_per_client = "20GiB"', "node.max_reserved_per_client"),
        ('max_reserved_per_address = "1B"', "node.max_reserved_per_address"),
        ('max_unpaid_reserved = "nan"', "node.max_unpaid_reserved"),
        ('payment_grace = "1s"', "node.payment_grace"),
        ('header_timeout = "1h"', "node.header_timeout"),
        ("body_timeout = 1e999", "node.body_timeout"),
        ("max_connections = 1", "node.max_connections"),
        ("max_connections = 99999999999999999999999", "node.max_connections"),
    ],
)
def test_abuse_config_keys_are_range_checked_naming_the_key(line: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        node_config_from_string(f'[node]\ndata_dir = "d"\n{line}\n')


async def test_one_address_cannot_make_unbounded_deals_and_failed_records_are_forgotten(
    tmp_path: Path,
) -> None:
    """Many keys, one address, one piece: the piece is reserved once on disk, yet the address
    may hold at most 4 x max_pending_deals waiting deals; lapsed ones are failed, then their
    records deleted a day later (they never held data), so proposals cannot fill the disk."""
    clock = FakeClock()
    node = await start_node(make_node_config(tmp_path, max_pending_deals=2), clock)
    data = os.urandom(500)
    answers = []
    for _ in range(10):
        key = SigningKey.generate()
        client = SigningClient(node.url, key, clock)
        wire = make_proposal(key, node.provider, data, clock.epoch)
        answers.append((await client.send("POST", "/market/v1/deals", json_body=wire))[1]["body"])
        await client.close()
    try:
        accepted = [a["deal_id"] for a in answers if a["accepted"]]
        assert len(accepted) == 8 and node.service.reserved_bytes == 512
        assert all("8 deals" in a["reason"] for a in answers if not a["accepted"])
        clock.advance(11 * 60)  # past reservation_ttl
        await node.service.collect_garbage()
        assert {node.service.deals[d].state.value for d in accepted} == {"failed"}
        clock.advance(2880 * EPOCH_SECONDS)
        await node.service.collect_garbage()
        assert not any(d in node.service.deals for d in accepted)
        assert not list(node.service.store.deals_dir.iterdir())
    finally:
        await node.stop()
