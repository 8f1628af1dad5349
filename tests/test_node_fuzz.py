"""Property: whatever body a signed client POSTs to any endpoint, the node never answers 5xx."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gateway.market.epoch import epoch_at
from gateway.market.httpsig import sign_request
from gateway.market.messages import seal_signed
from gateway.node import NodeThread
from gateway.testing.node_client import make_node_config, make_proposal

KEY = SigningKey.generate()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeThread]:
    with NodeThread(make_node_config(Path(tmp_path_factory.mktemp("fuzz")))) as running:
        yield running


def post(url: str, path: str, body: bytes) -> int:
    headers = sign_request("POST", path, "", body, KEY, int(time.time()), secrets.token_hex(12))
    request = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        exc.close()
        return int(exc.code)


def endpoints(node: NodeThread) -> list[str]:
    return ["/pdp/piece", "/market/v1/deals", "/market/v1/prove", "/market/v1/deals/00ff/vouchers"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_bodies_never_500(node: NodeThread, body: bytes) -> None:
    for path in endpoints(node):
        assert post(node.url, path, body) < 500


FIELDS = [
    "piece_cid",
    "piece_size",
    "verified_deal",
    "client",
    "provider",
    "label",
    "start_epoch",
    "end_epoch",
    "storage_price_per_epoch",
    "nonce",
]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=json_values, kind=st.sampled_from(["deal", "voucher"]))
def test_signed_messages_with_any_field_value_never_500(
    node: NodeThread, field: str, value: Any, kind: str
) -> None:
    """Correctly signed messages whose fields hold values of any type or size: a 4xx each."""
    assert node.node is not None
    provider = node.node.provider
    wire = make_proposal(KEY, provider, b"z" * 200, epoch_at(time.time()))
    if kind == "voucher":
        body: dict[str, Any] = {"deal_id": "00ff", "lane": 0, "nonce": 1, "amount": "1"}
        body[list(body)[FIELDS.index(field) % len(body)]] = value
        try:
            wire = seal_signed("depin/voucher/v1", body, KEY)
        except Exception:  # values DAG-CBOR cannot sign are not interesting here
            return
        path = "/market/v1/deals/00ff/vouchers"
    else:
        wire["body"][field] = value
        try:
            wire = seal_signed(wire["kind"], wire["body"], KEY)
        except Exception:
            return
        path = "/market/v1/deals"
    assert post(node.url, path, json.dumps(wire).encode()) < 500
