"""FWSS EIP-712: the published FilOzone vectors byte for byte, and the extraData ABI round trips."""

from __future__ import annotations

import json

import pytest
from eth_abi.abi import decode
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.chain.keccak import keccak256
from gateway.chain.networks import NETWORKS
from gateway.foc import eip712, extradata
from gateway.foc.eip712 import (
    AddPieces,
    CreateDataSet,
    Domain,
    MetadataEntry,
    SchedulePieceRemovals,
    TerminateService,
)
from gateway.keys.ethlib import load_eth_account
from gateway.keys.wallet import wallet_from_secret
from tests.conftest import VECTORS

load_eth_account()  # keeps the recursion limit py_ecc raises (see ethlib)
from eth_account import Account  # noqa: E402

VECTOR = json.loads((VECTORS / "foc" / "fwss_external_signatures.json").read_text())
# SOURCE.md next to the vector file: the fixture's signer key and domain (calibration FWSS).
SIGNER = wallet_from_secret(bytes.fromhex("1234567890" * 6 + "1234"))
DOMAIN = Domain(314159, "0x02925630df557F957f70E112bA06e50965417CA0")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def vector_messages() -> dict[str, eip712.Message]:
    c, a = VECTOR["createDataSet"], VECTOR["addPieces"]
    r, t = VECTOR["schedulePieceRemovals"], VECTOR["terminateService"]
    return {
        "createDataSet": CreateDataSet(
            c["clientDataSetId"],
            c["payee"],
            tuple(MetadataEntry(m["key"], m["value"]) for m in c["metadata"]),
        ),
        "addPieces": AddPieces(
            a["clientDataSetId"],
            a["nonce"],
            tuple(bytes.fromhex(h[2:]) for h in a["pieceCidBytes"]),
            tuple(tuple(MetadataEntry(m["key"], m["value"]) for m in ms) for ms in a["metadata"]),
        ),
        "schedulePieceRemovals": SchedulePieceRemovals(r["clientDataSetId"], tuple(r["pieceIds"])),
        "terminateService": TerminateService(t["dataSetId"]),
    }


def test_vector_signer_is_the_published_address() -> None:
    assert SIGNER.address == VECTOR["signer"]


def test_vector_domain_is_the_calibration_fwss_preset() -> None:
    assert NETWORKS["calibration"].contracts.fwss == DOMAIN.verifying_contract
    assert NETWORKS["calibration"].chain_id == DOMAIN.chain_id


@pytest.mark.parametrize("name", sorted(VECTOR.keys() - {"signer"}))
def test_every_published_signature_is_reproduced_byte_for_byte(name: str) -> None:
    signature = eip712.sign(DOMAIN, vector_messages()[name], SIGNER)
    assert _hex(signature) == VECTOR[name]["signature"]


@pytest.mark.parametrize("name", sorted(VECTOR.keys() - {"signer"}))
def test_digest_recovers_the_signer(name: str) -> None:
    """Our digest is what was signed: ECDSA recovery over it yields the vector's signer."""
    digest = eip712.digest(DOMAIN, vector_messages()[name])
    signature = bytes.fromhex(VECTOR[name]["signature"][2:])
    assert Account._recover_hash(digest, signature=signature) == VECTOR["signer"]


def test_vectors_cover_every_message_type() -> None:
    assert {m.primary_type for m in vector_messages().values()} == set(eip712._REFERENCED)


def test_type_hashes_match_encode_type_by_hand() -> None:
    """encodeType appends referenced structs sorted by name (EIP-712 'Definition of encodeType')."""
    add = (
        "AddPieces(uint256 clientDataSetId,uint256 nonce,Cid[] pieceData,"
        "PieceMetadata[] pieceMetadata)Cid(bytes data)MetadataEntry(string key,string value)"
        "PieceMetadata(uint256 pieceIndex,MetadataEntry[] metadata)"
    )
    assert eip712.type_hash("AddPieces") == keccak256(add.encode())
    # AddPieces permission hash published by Curio (FOC.md 1.1, curio PR #1325 upload_auth.go).
    assert eip712.type_hash("AddPieces").hex() == (
        "954bdc254591a7eab1b73f03842464d9283a08352772737094d710a4428fd183"
    )
    assert eip712.type_hash("TerminateService") == keccak256(b"TerminateService(uint256 dataSetId)")


def test_signatures_depend_on_chain_and_contract() -> None:
    """The same message signed for mainnet must not verify on calibration (replay across chains)."""
    mainnet = NETWORKS["mainnet"]
    assert mainnet.contracts.fwss is not None
    other = Domain(mainnet.chain_id, mainnet.contracts.fwss)
    message = vector_messages()["terminateService"]
    assert eip712.sign(other, message, SIGNER) != eip712.sign(DOMAIN, message, SIGNER)


@pytest.mark.parametrize(
    "build",
    [
        lambda: MetadataEntry("k" * 33, "v"),
        lambda: MetadataEntry("", "v"),
        lambda: MetadataEntry("k", "é" * 49),  # 98 UTF-8 bytes > 96
        lambda: CreateDataSet(
            1, "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", (MetadataEntry("a", "1"),) * 2
        ),
        lambda: CreateDataSet(1, "0x70997970C51812dc3A010C7d01b50e0d17dc79c9"),  # bad checksum
        lambda: CreateDataSet(-1, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        lambda: CreateDataSet(2**256, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        lambda: AddPieces(1, 1, ()),
        lambda: AddPieces(1, 1, (b"\x01",) * 41),
        lambda: AddPieces(1, 1, (b"\x01",), ((MetadataEntry("a", "1"),),) * 2),
        lambda: AddPieces(1, 1, (b"\x01",), (tuple(MetadataEntry(str(i), "") for i in range(4)),)),
        lambda: SchedulePieceRemovals(1, ()),
        lambda: TerminateService(True),
    ],
)
def test_messages_fwss_would_reject_are_never_built(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


# ---- extraData ABI ----------------------------------------------------------------------------

_text = st.text(max_size=12)
_key = st.text(min_size=1, max_size=8)
_uint = st.integers(min_value=0, max_value=2**256 - 1)
_sig = st.binary(min_size=65, max_size=65)
_entries = st.dictionaries(_key, _text, max_size=3).map(
    lambda d: tuple(MetadataEntry(k, v) for k, v in d.items())
)
_address = st.binary(min_size=20, max_size=20).map(
    lambda b: Account.from_key(keccak256(b)).address  # any valid EIP-55 address
)


@settings(max_examples=60, deadline=None)
@given(_address, _uint, _entries, _sig)
def test_create_extra_round_trips(
    payer: str, cid: int, meta: tuple[MetadataEntry, ...], sig: bytes
) -> None:
    extra = extradata.CreateExtra(payer, cid, meta, sig)
    data = extradata.encode_create(extra)
    assert extradata.decode_create(data) == extra
    keys, values = [m.key for m in meta], [m.value for m in meta]
    raw = decode(["address", "uint256", "string[]", "string[]", "bytes"], data)
    assert raw == (payer.lower(), cid, tuple(keys), tuple(values), sig)


@settings(max_examples=60, deadline=None)
@given(_uint, st.lists(_entries, min_size=1, max_size=5), _sig)
def test_add_extra_round_trips(
    nonce: int, per_piece: list[tuple[MetadataEntry, ...]], sig: bytes
) -> None:
    extra = extradata.AddExtra(nonce, tuple(per_piece), sig)
    data = extradata.encode_add(extra)
    assert extradata.decode_add(data) == extra
    nonce2, keys, values, sig2 = decode(["uint256", "string[][]", "string[][]", "bytes"], data)
    assert (nonce2, sig2) == (nonce, sig)
    assert [list(k) for k in keys] == [[m.key for m in e] for e in per_piece]
    assert [list(v) for v in values] == [[m.value for m in e] for e in per_piece]


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_create_and_add_round_trips(create: bytes, add: bytes) -> None:
    data = extradata.encode_create_and_add(create, add)
    assert extradata.decode_create_and_add(data) == (create, add)
    assert decode(["bytes", "bytes"], data) == (create, add)


@settings(max_examples=40, deadline=None)
@given(_sig)
def test_signature_only_extra_round_trips(sig: bytes) -> None:
    data = extradata.encode_signature_only(sig)
    assert extradata.decode_signature_only(data) == sig
    assert len(data) == 32 + 32 + 96 <= extradata.MAX_SIGNATURE_EXTRA  # offset, length, 3 words


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_extra_data_is_a_value_error_never_a_crash(data: bytes) -> None:
    for decoder in (extradata.decode_create, extradata.decode_add, extradata.decode_create_and_add):
        try:
            decoder(data)
        except ValueError:
            pass


def test_signed_extra_data_carries_the_vector_signatures() -> None:
    """create-and-add made from the vector messages contains exactly the published signatures."""
    messages = vector_messages()
    create, add = messages["createDataSet"], messages["addPieces"]
    assert isinstance(create, CreateDataSet) and isinstance(add, AddPieces)
    data = extradata.create_and_add_extra(DOMAIN, create, add, SIGNER)
    create_raw, add_raw = extradata.decode_create_and_add(data)
    decoded = extradata.decode_create(create_raw)
    assert decoded.payer == SIGNER.address
    assert decoded.metadata == (MetadataEntry("title", "TestDataSet"),)
    assert _hex(decoded.signature) == VECTOR["createDataSet"]["signature"]
    assert _hex(extradata.decode_add(add_raw).signature) == VECTOR["addPieces"]["signature"]
    removals = messages["schedulePieceRemovals"]
    assert isinstance(removals, SchedulePieceRemovals)
    raw = extradata.schedule_removals_extra(DOMAIN, removals, SIGNER)
    assert (
        _hex(extradata.decode_signature_only(raw)) == VECTOR["schedulePieceRemovals"]["signature"]
    )


def test_create_extra_over_fwss_size_cap_is_refused() -> None:
    meta = tuple(MetadataEntry(f"k{i}", "v" * 96) for i in range(10))
    extra = extradata.CreateExtra(SIGNER.address, 1, meta * 3, bytes(65))
    with pytest.raises(ValueError, match="at most 4096"):
        extradata.encode_create(extra)
