"""Market protocol core: signed messages and request signatures, back to back with no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gateway.errors import InputError
from gateway.keys import format_gateway_public
from gateway.market import (
    DealProposal,
    ReplayCache,
    Voucher,
    epoch_at,
    epoch_start,
    sign_request,
    verify_request,
)

CLIENT, PROVIDER = SigningKey.generate(), SigningKey.generate()
PIECE = "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"


def proposal(**overrides: Any) -> DealProposal:
    fields: dict[str, Any] = {
        "piece_cid": PIECE, "piece_size": 1024, "verified_deal": False,
        "client": format_gateway_public(CLIENT.verify_key),
        "provider": format_gateway_public(PROVIDER.verify_key), "label": "batch 0 fragment 1",
        "start_epoch": 100, "end_epoch": 200, "storage_price_per_epoch": 10**20,
        "provider_collateral": 0, "client_collateral": 0, "nonce": "n1",
    }  # fmt: skip
    fields.update(overrides)
    return DealProposal(**fields)


def test_epochs_follow_mainnet_genesis() -> None:
    assert epoch_at(1_598_306_400) == 0
    assert epoch_at(1_598_306_400 + 29.9) == 0 and epoch_at(1_598_306_400 + 30) == 1
    assert (
        epoch_start(epoch_at(1_700_000_000))
        <= 1_700_000_000
        < epoch_start(epoch_at(1_700_000_000) + 1)
    )


def test_signed_proposal_survives_json_and_amounts_beyond_64_bits() -> None:
    deal = proposal()
    wire = json.loads(json.dumps(deal.sign(CLIENT)))
    assert wire["body"]["storage_price_per_epoch"] == str(10**20)
    opened, signer = DealProposal.open(wire, CLIENT.verify_key)
    assert opened == deal and bytes(signer) == bytes(CLIENT.verify_key)
    assert opened.deal_id() == deal.deal_id()


@pytest.mark.parametrize(
    ("field", "value"),
    [("label", "other"), ("storage_price_per_epoch", "1"), ("end_epoch", 300), ("nonce", "n2")],
)
def test_any_edit_breaks_the_signature(field: str, value: object) -> None:
    wire = proposal().sign(CLIENT)
    wire["body"][field] = value
    with pytest.raises(InputError, match="signature does not verify"):
        DealProposal.open(wire)


def test_wrong_signer_and_malformed_fields_are_input_errors() -> None:
    with pytest.raises(InputError, match="wrong key"):
        DealProposal.open(proposal().sign(CLIENT), PROVIDER.verify_key)
    for field, value in (("piece_cid", None), ("label", 5), ("verified_deal", "no"),
                         ("client", "ed25519:zz"), ("piece_size", 1000)):  # fmt: skip
        body = proposal().body()
        body[field] = value
        with pytest.raises(InputError):
            DealProposal.from_body(body)


def test_voucher_rules() -> None:
    voucher = Voucher(deal_id="d", lane=0, nonce=1, amount=5)
    assert Voucher.open(voucher.sign(CLIENT))[0] == voucher
    with pytest.raises(ValueError, match="lane and nonce"):
        Voucher(deal_id="d", lane=-1, nonce=1, amount=5)


def test_request_signature_rejects_replay_skew_tampering_and_wrong_path() -> None:
    body = b'{"x": 1}'
    headers = sign_request("POST", "/market/v1/deals", "", body, CLIENT, 10_000, "nonce-0001")
    cache = ReplayCache()
    assert bytes(
        verify_request("POST", "/market/v1/deals", "", headers, body, 10_010, cache)
    ) == bytes(CLIENT.verify_key)
    with pytest.raises(InputError, match="replayed"):
        verify_request("POST", "/market/v1/deals", "", headers, body, 10_010, cache)
    with pytest.raises(InputError, match="allowed"):
        verify_request("POST", "/market/v1/deals", "", headers, body, 10_400, ReplayCache())
    with pytest.raises(InputError, match="Content-Digest"):
        verify_request("POST", "/market/v1/deals", "", headers, b"{}", 10_000, ReplayCache())
    with pytest.raises(InputError, match="does not verify"):
        verify_request("POST", "/market/v1/prove", "", headers, body, 10_000, ReplayCache())
    with pytest.raises(InputError, match="unsigned"):
        verify_request("POST", "/market/v1/deals", "", {}, body, 10_000, ReplayCache())


@given(
    st.dictionaries(st.text(max_size=20), st.text(max_size=200), max_size=6), st.binary(max_size=64)
)
def test_garbage_headers_never_verify_and_never_crash(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(InputError):
        verify_request("POST", "/market/v1/deals", "", headers, body, 10_000, ReplayCache())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)


@given(JSON)
def test_garbage_messages_are_input_errors(wire: Any) -> None:
    with pytest.raises(InputError):
        DealProposal.open(wire)
