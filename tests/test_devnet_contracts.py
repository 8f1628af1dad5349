"""Our FOC stand-in contracts on a real anvil: happy paths, every revert path, byte-identical
artifacts, and the Python prover and EIP-712 signer against the contracts' own checks."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.chain.abi import abi_of
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import (
    PdpOffering,
    ProvingConfig,
    approve_provider,
    register_provider,
)
from gateway.chain.prover import Prover
from gateway.chain.tx import TxSender
from gateway.foc.eip712 import (
    AddPieces,
    CreateDataSet,
    Domain,
    MetadataEntry,
)
from gateway.foc.extradata import (
    add_pieces_extra,
    create_data_set_extra,
)
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.testing.focnet import FIL, USDFC, FocChain, deposit_with_permit, start_foc_chain

PDP, FWSS, PAY, REG, TOKEN = (
    abi_of("PDPVerifier"),
    abi_of("FilecoinWarmStorageService"),
    abi_of("FilecoinPay"),
    abi_of("ServiceProviderRegistry"),
    abi_of("MockUSDFC"),
)
PROVING = ProvingConfig(challenge_finality=2, max_proving_period=20, challenge_window=5)
SYBIL_FEE = FIL // 10


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    node = Anvil(tmp_path_factory.mktemp("anvil"))
    node.start()
    try:
        yield start_foc_chain(node.url, node.chain_id, PROVING)
    finally:
        node.stop()
        assert node.process is None


@pytest.fixture(autouse=True)
def fresh(chain: FocChain) -> Iterator[None]:
    """Each test starts from the freshly deployed chain (evm_snapshot / evm_revert)."""
    snapshot = chain.rpc.call("evm_snapshot")
    yield
    assert chain.rpc.call("evm_revert", [snapshot]) is True
    chain.deployer._nonce = None  # the revert rolled the deployer's nonce back too


def view(chain: FocChain, abi: Any, to: str, function: str, *args: Any) -> tuple[Any, ...]:
    return tuple(abi.decode(function, chain.deployer.call(to, abi.calldata(function, *args))))


def mine(chain: FocChain, blocks: int) -> None:
    chain.rpc.call("anvil_mine", [hex(blocks)])


def block_number(chain: FocChain) -> int:
    return int(str(chain.rpc.call("eth_blockNumber")), 16)


def provider_and_client(chain: FocChain, approve: bool = True) -> tuple[TxSender, TxSender, int]:
    provider = chain.new_wallet()
    offering = PdpOffering("http://127.0.0.1:9/", payment_token=chain.deployment.usdfc)
    provider_id = register_provider(provider, chain.deployment, "sp-1", offering)
    if approve:
        approve_provider(chain.deployer, chain.deployment, provider_id)
    client = chain.new_wallet(usdfc=100 * USDFC)
    deposit_with_permit(chain, client, 10 * USDFC)
    return provider, client, provider_id


def domain(chain: FocChain) -> Domain:
    return Domain(chain.chain_id, chain.deployment.fwss)


def create_set(
    chain: FocChain, provider: TxSender, client: TxSender, client_set_id: int = 7, **kw: Any
) -> int:
    message = CreateDataSet(client_set_id, provider.address, (MetadataEntry("source", "devnet"),))
    extra = kw.get("extra") or create_data_set_extra(
        domain(chain), message, kw.get("signer", client).wallet
    )
    data = PDP.calldata("createDataSet", chain.deployment.fwss, extra)
    receipt = provider.send(
        chain.deployment.pdp_verifier, data, value=kw.get("value", SYBIL_FEE), what="create"
    )
    event = next(log for log in receipt.logs if log.topics[0] == PDP.topic("DataSetCreated"))
    set_id: int = PDP.decode_log("DataSetCreated", list(event.topics), event.data)["setId"]
    return set_id


def add_pieces(
    chain: FocChain,
    provider: TxSender,
    client: TxSender,
    set_id: int,
    payloads: list[bytes],
    nonce: int = 1,
) -> int:
    cids = tuple(bytes(piece_cid_v2(commp(p))) for p in payloads)
    extra = add_pieces_extra(domain(chain), AddPieces(7, nonce, cids), client.wallet)
    data = PDP.calldata("addPieces", set_id, chain.deployment.fwss, [(c,) for c in cids], extra)
    return provider.send(chain.deployment.pdp_verifier, data, what="addPieces").gas_used


def test_smoke_full_cycle(chain: FocChain) -> None:
    provider, client, _ = provider_and_client(chain)
    set_id = create_set(chain, provider, client)
    payloads = [b"a" * 127, secrets.token_bytes(1000), secrets.token_bytes(4097)]
    add_pieces(chain, provider, client, set_id, payloads)
    fetch = {str(piece_cid_v2(commp(p))): p for p in payloads}
    prover = Prover(provider, chain.deployment, PROVING, fetch.__getitem__)
    assert [r.action for r in prover.step()] == ["scheduled"]
    challenge = view(chain, PDP, chain.deployment.pdp_verifier, "getNextChallengeEpoch", set_id)[0]
    mine(chain, challenge - block_number(chain))
    results = prover.step()
    assert [r.action for r in results] == ["proven"], results
