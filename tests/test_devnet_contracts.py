"""Our FOC stand-ins on a real anvil: FWSS accepts exactly the signatures gateway/foc/eip712.py
makes (the published FilOzone vectors included), every revert path of FWSS, Filecoin Pay, the
registry and MockUSDFC, settlement of proven periods only, and byte-identical artifacts."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi.abi import encode

from gateway.chain import build
from gateway.chain.abi import load_artifact
from gateway.chain.deploy import PdpOffering, register_provider
from gateway.chain.prover import Prover
from gateway.chain.tx import TxSender
from gateway.chain.wallet import wallet_from_secret
from gateway.errors import TransactionReverted
from gateway.foc.eip712 import SchedulePieceRemovals
from gateway.foc.extradata import (
    CreateExtra,
    encode_create,
    encode_signature_only,
    schedule_removals_extra,
)
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.testing.focnet import USDFC, FocChain, deposit_with_permit
from tests.devnet_support import (
    FWSS,
    PAY,
    PDP,
    PROVING,
    REG,
    TOKEN,
    add_extra,
    add_pieces,
    block_number,
    chain_fixture,
    cids_of,
    create_extra,
    create_set,
    data_set_with,
    domain,
    funded_client,
    mine,
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


def _settle(chain: FocChain, set_id: int) -> tuple[int, int]:
    rail_id = view(chain, FWSS, chain.deployment.fwss, "getDataSet", set_id)[0][0]
    until = block_number(chain)
    receipt = chain.deployer.send(
        chain.deployment.filecoin_pay, PAY.calldata("settleRail", rail_id, until)
    )
    event = next(log for log in receipt.logs if log.topics[0] == PAY.topic("RailSettled"))
    settled = PAY.decode_log("RailSettled", list(event.topics), event.data)
    return settled["totalSettledAmount"], settled["settledUpTo"]


def test_settlement_pays_proven_periods_only(chain: FocChain) -> None:
    payloads = [secrets.token_bytes(1000)]
    provider, client, set_id = data_set_with(chain, payloads)
    fetch = {str(piece_cid_v2(commp(p))): p for p in payloads}
    prover = Prover(provider, chain.deployment, PROVING, fetch.__getitem__)
    prover.step()  # period 0 scheduled, never proven
    mine(chain, 2 * PROVING.max_proving_period)
    assert _settle(chain, set_id)[0] == 0  # the unproven period paid nothing
    before = view(
        chain,
        PAY,
        chain.deployment.filecoin_pay,
        "accounts",
        chain.deployment.usdfc,
        provider.address,
    )[0]
    for _ in range(3 * PROVING.max_proving_period):
        if any(r.action == "proven" for r in prover.step()):
            break
        mine(chain, 1)
    mine(chain, PROVING.max_proving_period)
    paid, _ = _settle(chain, set_id)
    rate = view(chain, PAY, chain.deployment.filecoin_pay, "getRail", 1)[0][5]
    assert paid == rate * PROVING.max_proving_period  # exactly one proven period
    after = view(
        chain,
        PAY,
        chain.deployment.filecoin_pay,
        "accounts",
        chain.deployment.usdfc,
        provider.address,
    )[0]
    assert after - before == paid
    with pytest.raises(TransactionReverted, match="cannot settle future epochs"):
        chain.deployer.send(
            chain.deployment.filecoin_pay, PAY.calldata("settleRail", 1, block_number(chain) + 5)
        )
    with pytest.raises(TransactionReverted, match="only Filecoin Pay"):
        client.send(chain.deployment.fwss, FWSS.calldata("validatePayment", 1, 0, 0, 0, 0))


def test_permit_deposit_reverts(chain: FocChain) -> None:
    client = funded_client(chain, deposit=0)
    with pytest.raises(TransactionReverted, match="permit expired"):
        deposit_with_permit(chain, client, USDFC, deadline=int(time.time()) - 3600)
    with pytest.raises(TransactionReverted, match="invalid permit signature"):
        deposit_with_permit(chain, client, USDFC, signer=chain.new_wallet())
    other = chain.new_wallet()
    with pytest.raises(TransactionReverted, match="only into the signer's own account"):
        fields = (chain.deployment.usdfc, client.address, 1, 2**40, 27, bytes(32), bytes(32))
        data = PAY.calldata(
            "depositWithPermitAndApproveOperator", *fields, chain.deployment.fwss, 0, 0, 0
        )
        other.send(chain.deployment.filecoin_pay, data)
    deposit_with_permit(chain, client, USDFC)
    account = view(
        chain,
        PAY,
        chain.deployment.filecoin_pay,
        "accounts",
        chain.deployment.usdfc,
        client.address,
    )
    assert account[0] == USDFC
    approval = view(
        chain,
        PAY,
        chain.deployment.filecoin_pay,
        "operatorApprovals",
        chain.deployment.usdfc,
        client.address,
        chain.deployment.fwss,
    )
    assert approval[0] is True and approval[5] == 2880 * 30


def test_pay_and_token_reverts(chain: FocChain) -> None:
    client = funded_client(chain)
    with pytest.raises(TransactionReverted, match="insufficient unlocked funds"):
        client.send(
            chain.deployment.filecoin_pay,
            PAY.calldata("withdraw", chain.deployment.usdfc, 11 * USDFC),
        )
    with pytest.raises(TransactionReverted, match="operator not approved by payer"):
        client.send(
            chain.deployment.filecoin_pay,
            PAY.calldata(
                "createRail",
                chain.deployment.usdfc,
                chain.deployer.address,
                client.address,
                client.address,
                0,
                client.address,
            ),
        )
    with pytest.raises(TransactionReverted, match="allowance too low"):
        client.send(
            chain.deployment.filecoin_pay,
            PAY.calldata("deposit", chain.deployment.usdfc, client.address, USDFC),
        )
    with pytest.raises(TransactionReverted, match="only the minter mints"):
        client.send(chain.deployment.usdfc, TOKEN.calldata("mint", client.address, 1))
    with pytest.raises(TransactionReverted, match="balance too low"):
        client.send(
            chain.deployment.usdfc, TOKEN.calldata("transfer", chain.deployer.address, 10**30)
        )


def test_registry_reverts_and_views(chain: FocChain) -> None:
    provider, provider_id = registered_provider(chain)
    offering = PdpOffering("http://127.0.0.1:9/", payment_token=chain.deployment.usdfc)
    with pytest.raises(TransactionReverted, match="provider already registered"):
        register_provider(provider, chain.deployment, "again", offering)
    other = chain.new_wallet()
    data = REG.calldata("registerProvider", other.address, "x", "", 0, ["location"], [b"here"])
    with pytest.raises(TransactionReverted, match="PDP product needs serviceURL"):
        other.send(chain.deployment.service_provider_registry, data)
    with pytest.raises(TransactionReverted, match="wrong registration fee"):
        keys, values = offering.capabilities()
        other.send(
            chain.deployment.service_provider_registry,
            REG.calldata("registerProvider", other.address, "x", "", 0, keys, values),
            value=1,
        )
    with pytest.raises(TransactionReverted, match="Provider does not exist"):
        view(chain, REG, chain.deployment.service_provider_registry, "getProvider", 99)
    record = view(
        chain,
        REG,
        chain.deployment.service_provider_registry,
        "getProviderWithProduct",
        provider_id,
        0,
    )[0]
    keys, values = offering.capabilities()
    assert list(record[2][1]) == keys and [bytes(v) for v in record[3]] == values


def test_the_published_fwss_vectors_are_accepted_on_chain(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Calibration's chain id and FWSS address (the vectors' domain) on a second anvil: our FWSS
    code placed at 0x0292...7CA0 accepts the FilOzone fixture signatures byte for byte."""
    gen = chain_fixture(tmp_path_factory, chain_id=314159)
    chain = next(gen)
    try:
        fwss = "0x02925630df557F957f70E112bA06e50965417CA0"
        code = chain.rpc.call("eth_getCode", [chain.deployment.fwss, "latest"])
        chain.rpc.call("anvil_setCode", [fwss, code])
        # anvil account 1: the vectors' payee
        payee = chain.sender(
            wallet_from_secret(
                bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
            )
        )
        _, provider_id = registered_provider(chain, approve=False, sender=payee)
        chain.deployer.send(fwss, FWSS.calldata("addApprovedProvider", provider_id))
        signer = chain.sender(wallet_from_secret(bytes.fromhex("1234567890" * 6 + "1234")))
        assert signer.address == VECTORS["signer"]
        chain.rpc.call("anvil_setBalance", [signer.address, hex(10**19)])
        chain.deployer.send(
            chain.deployment.usdfc, TOKEN.calldata("mint", signer.address, 10 * USDFC)
        )
        deposit_with_permit(chain, signer, 10 * USDFC, operator=fwss)
        c, a = VECTORS["createDataSet"], VECTORS["addPieces"]
        entries = tuple(
            __import__("gateway.foc.eip712", fromlist=["x"]).MetadataEntry(m["key"], m["value"])
            for m in c["metadata"]
        )
        extra = encode_create(
            CreateExtra(
                signer.address, c["clientDataSetId"], entries, bytes.fromhex(c["signature"][2:])
            )
        )
        payee.send(
            chain.deployment.pdp_verifier, PDP.calldata("createDataSet", fwss, extra), value=10**17
        )
        cids = [bytes.fromhex(x[2:]) for x in a["pieceCidBytes"]]
        add = encode(
            ["uint256", "string[][]", "string[][]", "bytes"],
            [a["nonce"], [[], []], [[], []], bytes.fromhex(a["signature"][2:])],
        )
        payee.send(
            chain.deployment.pdp_verifier,
            PDP.calldata("addPieces", 1, fwss, [(x,) for x in cids], add),
        )
        assert view(chain, PDP, chain.deployment.pdp_verifier, "getNextPieceId", 1) == (2,)
        flipped = bytes.fromhex(a["signature"][2:])
        flipped = flipped[:10] + bytes([flipped[10] ^ 1]) + flipped[11:]
        add = encode(
            ["uint256", "string[][]", "string[][]", "bytes"], [2, [[], []], [[], []], flipped]
        )
        with pytest.raises(TransactionReverted):
            payee.send(
                chain.deployment.pdp_verifier,
                PDP.calldata("addPieces", 1, fwss, [(x,) for x in cids], add),
            )
    finally:
        gen.close()


def test_artifacts_load_as_package_data() -> None:
    artifact = load_artifact("PDPVerifier")
    assert (
        artifact["compiler"] == "solc 0.8.37" and artifact["settings"]["evmVersion"] == "shanghai"
    )
    assert isinstance(TxSender, type)
