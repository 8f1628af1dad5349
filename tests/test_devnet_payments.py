"""Filecoin Pay, MockUSDFC and the provider registry stand-ins on a real anvil: settlement pays
proven periods only, permits and allowances are enforced, and every revert path is reachable."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.chain.deploy import PdpOffering, register_provider
from gateway.chain.prover import Prover
from gateway.errors import TransactionReverted
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.testing.focnet import USDFC, FocChain, deposit_with_permit
from tests.devnet_support import (
    FWSS,
    PAY,
    PROVING,
    REG,
    TOKEN,
    block_number,
    chain_fixture,
    data_set_with,
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
