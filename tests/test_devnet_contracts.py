"""The FWSS stand-in on a real anvil: it accepts exactly the signatures gateway/foc/eip712.py
makes (the published FilOzone vectors included, on calibration's chain id and FWSS address),
every revert path of its listener callbacks, and the artifacts rebuild byte-identical."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi.abi import encode

from gateway.chain import build
from gateway.chain.abi import load_artifact
from gateway.chain.prover import Prover
from gateway.chain.tx import TxSender
from gateway.errors import TransactionReverted
from gateway.foc.eip712 import MetadataEntry, SchedulePieceRemovals
from gateway.foc.extradata import (
    CreateExtra,
    encode_create,
    encode_signature_only,
    schedule_removals_extra,
)
from gateway.keys.wallet import wallet_from_secret
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.testing.focnet import USDFC, FocChain, deposit_with_permit
from tests.devnet_support import (
    FWSS,
    PAY,
    PDP,
    PROVING,
    TOKEN,
    add_extra,
    add_pieces,
    chain_fixture,
    cids_of,
    create_extra,
    create_set,
    data_set_with,
    domain,
    funded_client,
    registered_provider,
    snapshot_fixture,
    view,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "foc" / "fwss_external_signatures.json").read_text()
)


def lc(address: str) -> str:
    return address.lower()  # eth-abi decodes addresses in lower case


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    yield from chain_fixture(tmp_path_factory)


@pytest.fixture(autouse=True)
def fresh(chain: FocChain) -> Iterator[None]:
    yield from snapshot_fixture(chain)


def test_committed_artifacts_are_what_the_pinned_solc_builds() -> None:
    for name, artifact in build.compile_contracts().items():
        assert build.render(artifact) == (build.ARTIFACTS / f"{name}.json").read_text(), name
    assert sorted(p.stem for p in build.ARTIFACTS.glob("*.json")) == sorted(
        build.compile_contracts()
    )


def test_create_and_add_with_our_signatures_record_the_data_set(
    chain: FocChain, capsys: pytest.CaptureFixture[str]
) -> None:
    provider, provider_id = registered_provider(chain)
    client = funded_client(chain)
    data = PDP.calldata(
        "createDataSet", chain.deployment.fwss, create_extra(chain, provider.address, client)
    )
    created = provider.send(chain.deployment.pdp_verifier, data, value=10**17)
    set_id = 1
    cids = cids_of([secrets.token_bytes(1000)])
    add_gas = add_pieces(chain, provider, set_id, cids, add_extra(chain, client, cids))
    info = view(chain, FWSS, chain.deployment.fwss, "getDataSet", set_id)[0]
    assert (info[3], info[4], info[5]) == (
        lc(client.address),
        lc(provider.address),
        lc(provider.address),
    )
    assert (info[7], info[9], info[10]) == (7, provider_id, set_id)
    assert view(chain, FWSS, chain.deployment.fwss, "getDataSetMetadata", set_id, "source") == (
        True,
        "devnet",
    )
    assert view(chain, FWSS, chain.deployment.fwss, "clientDataSets", client.address) == (
        (set_id,),
    )
    rail = view(chain, PAY, chain.deployment.filecoin_pay, "getRail", info[0])[0]
    fwss = lc(chain.deployment.fwss)
    assert (rail[1], rail[2], rail[3], rail[4]) == (
        lc(client.address),
        lc(provider.address),
        fwss,
        fwss,
    )
    with capsys.disabled():
        print(f"\ncreateDataSet: {created.gas_used} gas; addPieces (1 piece): {add_gas} gas")


def test_create_data_set_reverts(chain: FocChain) -> None:
    provider, _ = registered_provider(chain)
    client = funded_client(chain)
    stranger = chain.new_wallet()
    cases = [
        (
            create_extra(chain, provider.address, stranger, payer=client.address),
            "signature is not the payer's",
        ),
        (
            create_extra(chain, stranger.address, client),
            "signature is not the payer's",
        ),  # signed for another payee
        (encode_create(CreateExtra(client.address, 7, (), bytes(65))), "invalid signature"),
        (
            encode_create(CreateExtra(client.address, 7, (), b"\x01" * 64)),
            "invalid signature length",
        ),
    ]
    for extra, reason in cases:
        with pytest.raises(TransactionReverted, match=reason):
            create_set(chain, provider, extra)
    with pytest.raises(TransactionReverted, match="sybil fee not met"):
        create_set(chain, provider, create_extra(chain, provider.address, client), value=0)
    unfunded = funded_client(chain, deposit=0)
    with pytest.raises(TransactionReverted, match="operator not approved by payer"):
        create_set(chain, provider, create_extra(chain, provider.address, unfunded))
    create_set(chain, provider, create_extra(chain, provider.address, client))
    with pytest.raises(TransactionReverted, match="clientDataSetId already used"):
        create_set(chain, provider, create_extra(chain, provider.address, client))
    with pytest.raises(TransactionReverted, match="only the PDP verifier"):
        data = FWSS.calldata(
            "dataSetCreated", 9, provider.address, create_extra(chain, provider.address, client, 8)
        )
        provider.send(chain.deployment.fwss, data)


def test_unregistered_and_unapproved_providers_are_refused(chain: FocChain) -> None:
    client = funded_client(chain)
    unregistered = chain.new_wallet()
    with pytest.raises(TransactionReverted, match="provider not registered"):
        create_set(chain, unregistered, create_extra(chain, unregistered.address, client))
    unapproved, provider_id = registered_provider(chain, approve=False)
    with pytest.raises(TransactionReverted, match="provider not approved"):
        create_set(chain, unapproved, create_extra(chain, unapproved.address, client))
    assert view(chain, FWSS, chain.deployment.fwss, "isProviderApproved", provider_id) == (False,)
    with pytest.raises(TransactionReverted, match="only the owner"):
        unapproved.send(chain.deployment.fwss, FWSS.calldata("addApprovedProvider", provider_id))


def test_add_pieces_reverts(chain: FocChain) -> None:
    provider, client, set_id = data_set_with(chain, [secrets.token_bytes(127)])
    cids = cids_of([secrets.token_bytes(200)])
    with pytest.raises(TransactionReverted, match="signature is not the payer's"):
        add_pieces(
            chain, provider, set_id, cids, add_extra(chain, chain.new_wallet(), cids, nonce=2)
        )
    with pytest.raises(
        TransactionReverted, match="signature is not the payer's"
    ):  # signed other CIDs
        add_pieces(
            chain, provider, set_id, cids, add_extra(chain, client, cids_of([b"x" * 127]), nonce=2)
        )
    with pytest.raises(TransactionReverted, match="nonce already used"):
        add_pieces(chain, provider, set_id, cids, add_extra(chain, client, cids, nonce=1))
    with pytest.raises(TransactionReverted, match="only the storage provider"):
        add_pieces(chain, chain.new_wallet(), set_id, cids, add_extra(chain, client, cids, nonce=3))
    with pytest.raises(TransactionReverted, match="not a piece CID v2"):
        add_pieces(chain, provider, set_id, (b"\x01\x55" + bytes(40),), b"")
    data = PDP.calldata(
        "addPieces",
        set_id,
        provider.address,
        [(c,) for c in cids],
        add_extra(chain, client, cids, 4),
    )
    with pytest.raises(TransactionReverted, match="listener address mismatch"):
        provider.send(chain.deployment.pdp_verifier, data)
    add_pieces(chain, provider, set_id, cids, add_extra(chain, client, cids, nonce=5))


def test_piece_removal_needs_the_payers_signature_and_takes_effect_next_period(
    chain: FocChain,
) -> None:
    payloads = [secrets.token_bytes(127), secrets.token_bytes(1000)]
    provider, client, set_id = data_set_with(chain, payloads)
    removal = SchedulePieceRemovals(7, (0,))
    bad = encode_signature_only(bytes(65))
    for extra, reason in (
        (bad, "invalid signature"),
        (
            schedule_removals_extra(domain(chain), removal, chain.new_wallet().wallet),
            "not the payer's",
        ),
    ):
        with pytest.raises(TransactionReverted, match=reason):
            provider.send(
                chain.deployment.pdp_verifier,
                PDP.calldata("schedulePieceDeletions", set_id, [0], extra),
            )
    extra = schedule_removals_extra(domain(chain), removal, client.wallet)
    provider.send(
        chain.deployment.pdp_verifier, PDP.calldata("schedulePieceDeletions", set_id, [0], extra)
    )
    assert view(chain, PDP, chain.deployment.pdp_verifier, "getScheduledRemovals", set_id) == (
        (0,),
    )
    fetch = {str(piece_cid_v2(commp(p))): p for p in payloads}
    Prover(provider, chain.deployment, PROVING, fetch.__getitem__).step()
    leaves = view(chain, PDP, chain.deployment.pdp_verifier, "getDataSetLeafCount", set_id)[0]
    assert (
        leaves == view(chain, PDP, chain.deployment.pdp_verifier, "getPieceLeafCount", set_id, 1)[0]
    )
    assert view(chain, PDP, chain.deployment.pdp_verifier, "pieceLive", set_id, 0) == (False,)


CALIBRATION_FWSS = "0x02925630df557F957f70E112bA06e50965417CA0"  # the vectors' verifyingContract
# anvil dev account 1 (public): the vectors' payee 0x7099...79C8
ANVIL_KEY_1 = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
VECTOR_KEY = "1234567890" * 6 + "1234"  # tests/vectors/foc/SOURCE.md


def _vector_chain(chain: FocChain) -> tuple[TxSender, TxSender]:
    """Our FWSS code at calibration's FWSS address, its payee registered and approved there, the
    vectors' signer funded and FWSS approved as its operator: (provider, signer)."""
    code = chain.rpc.call("eth_getCode", [chain.deployment.fwss, "latest"])
    chain.rpc.call("anvil_setCode", [CALIBRATION_FWSS, code])  # immutables travel with the code
    payee = chain.sender(wallet_from_secret(bytes.fromhex(ANVIL_KEY_1)))
    _, provider_id = registered_provider(chain, approve=False, sender=payee)
    chain.deployer.send(CALIBRATION_FWSS, FWSS.calldata("addApprovedProvider", provider_id))
    signer = chain.sender(wallet_from_secret(bytes.fromhex(VECTOR_KEY)))
    assert signer.address == VECTORS["signer"]
    chain.rpc.call("anvil_setBalance", [signer.address, hex(10**19)])
    chain.deployer.send(chain.deployment.usdfc, TOKEN.calldata("mint", signer.address, 10 * USDFC))
    deposit_with_permit(chain, signer, 10 * USDFC, operator=CALIBRATION_FWSS)
    return payee, signer


def _add_vector_extra(nonce: int, signature: bytes) -> bytes:
    return encode(
        ["uint256", "string[][]", "string[][]", "bytes"], [nonce, [[], []], [[], []], signature]
    )


def test_the_published_fwss_vectors_are_accepted_on_chain(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The FilOzone fixture signatures (chain 314159, calibration FWSS) pass our FWSS's checks
    byte for byte; one flipped bit does not."""
    gen = chain_fixture(tmp_path_factory, chain_id=314159)
    chain = next(gen)
    try:
        provider, signer = _vector_chain(chain)
        c, a = VECTORS["createDataSet"], VECTORS["addPieces"]
        entries = tuple(MetadataEntry(m["key"], m["value"]) for m in c["metadata"])
        signature = bytes.fromhex(c["signature"][2:])
        extra = encode_create(CreateExtra(signer.address, c["clientDataSetId"], entries, signature))
        data = PDP.calldata("createDataSet", CALIBRATION_FWSS, extra)
        provider.send(chain.deployment.pdp_verifier, data, value=10**17)
        pieces = [(bytes.fromhex(x[2:]),) for x in a["pieceCidBytes"]]
        signature = bytes.fromhex(a["signature"][2:])
        add = _add_vector_extra(a["nonce"], signature)
        data = PDP.calldata("addPieces", 1, CALIBRATION_FWSS, pieces, add)
        provider.send(chain.deployment.pdp_verifier, data)
        assert view(chain, PDP, chain.deployment.pdp_verifier, "getNextPieceId", 1) == (2,)
        flipped = signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]
        data = PDP.calldata("addPieces", 1, CALIBRATION_FWSS, pieces, _add_vector_extra(2, flipped))
        with pytest.raises(TransactionReverted, match="signature"):
            provider.send(chain.deployment.pdp_verifier, data)
    finally:
        gen.close()


def test_artifacts_load_as_package_data() -> None:
    artifact = load_artifact("PDPVerifier")
    assert (
        artifact["compiler"] == "solc 0.8.37" and artifact["settings"]["evmVersion"] == "shanghai"
    )
