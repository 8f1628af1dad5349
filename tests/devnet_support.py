"""Shared by the devnet contract tests: a module-scoped anvil with our stand-ins, a snapshot per
test, and the client / provider steps of the FOC flow as small functions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.chain.abi import abi_of
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import PdpOffering, ProvingConfig, approve_provider, register_provider
from gateway.chain.tx import TxSender
from gateway.foc.eip712 import AddPieces, CreateDataSet, Domain, MetadataEntry
from gateway.foc.extradata import add_pieces_extra, create_data_set_extra
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
CLIENT_SET = 7


def chain_fixture(
    tmp_path_factory: pytest.TempPathFactory, chain_id: int = 31415926
) -> Iterator[FocChain]:
    node = Anvil(tmp_path_factory.mktemp("anvil"), chain_id=chain_id)
    node.start()
    try:
        yield start_foc_chain(node.url, node.chain_id, PROVING)
    finally:
        node.stop()


def snapshot_fixture(chain: FocChain) -> Iterator[None]:
    """Each test starts from the freshly deployed chain (evm_snapshot / evm_revert)."""
    snapshot = chain.rpc.call("evm_snapshot")
    yield
    assert chain.rpc.call("evm_revert", [snapshot]) is True
    chain.deployer._nonce = None  # the revert rolled the deployer's nonce back too


def view(chain: FocChain, abi: Any, to: str, function: str, *args: Any) -> tuple[Any, ...]:
    return tuple(abi.decode(function, chain.deployer.call(to, abi.calldata(function, *args))))


def mine(chain: FocChain, blocks: int) -> None:
    if blocks > 0:
        chain.rpc.call("anvil_mine", [hex(blocks)])


def block_number(chain: FocChain) -> int:
    return int(str(chain.rpc.call("eth_blockNumber")), 16)


def registered_provider(
    chain: FocChain, approve: bool = True, sender: TxSender | None = None
) -> tuple[TxSender, int]:
    provider = sender or chain.new_wallet()
    offering = PdpOffering("http://127.0.0.1:9/", payment_token=chain.deployment.usdfc)
    provider_id = register_provider(provider, chain.deployment, "sp", offering)
    if approve:
        approve_provider(chain.deployer, chain.deployment, provider_id)
    return provider, provider_id


def funded_client(chain: FocChain, deposit: int = 10 * USDFC) -> TxSender:
    client = chain.new_wallet(usdfc=100 * USDFC)
    if deposit:
        deposit_with_permit(chain, client, deposit)
    return client


def domain(chain: FocChain) -> Domain:
    return Domain(chain.chain_id, chain.deployment.fwss)


def create_extra(
    chain: FocChain,
    payee: str,
    signer: TxSender,
    client_set: int = CLIENT_SET,
    payer: str | None = None,
) -> bytes:
    message = CreateDataSet(client_set, payee, (MetadataEntry("source", "devnet"),))
    return create_data_set_extra(domain(chain), message, signer.wallet, payer)


def create_set(chain: FocChain, provider: TxSender, extra: bytes, value: int = SYBIL_FEE) -> int:
    data = PDP.calldata("createDataSet", chain.deployment.fwss, extra)
    receipt = provider.send(chain.deployment.pdp_verifier, data, value=value, what="createDataSet")
    event = next(log for log in receipt.logs if log.topics[0] == PDP.topic("DataSetCreated"))
    set_id: int = PDP.decode_log("DataSetCreated", list(event.topics), event.data)["setId"]
    return set_id


def cids_of(payloads: list[bytes]) -> tuple[bytes, ...]:
    return tuple(bytes(piece_cid_v2(commp(p))) for p in payloads)


def add_extra(chain: FocChain, signer: TxSender, cids: tuple[bytes, ...], nonce: int = 1) -> bytes:
    return add_pieces_extra(domain(chain), AddPieces(CLIENT_SET, nonce, cids), signer.wallet)


def add_pieces(
    chain: FocChain, provider: TxSender, set_id: int, cids: tuple[bytes, ...], extra: bytes
) -> int:
    data = PDP.calldata("addPieces", set_id, chain.deployment.fwss, [(c,) for c in cids], extra)
    return provider.send(chain.deployment.pdp_verifier, data, what="addPieces").gas_used


def data_set_with(chain: FocChain, payloads: list[bytes]) -> tuple[TxSender, TxSender, int]:
    """A provider, a funded client, and a data set holding ``payloads`` (one addPieces)."""
    provider, _ = registered_provider(chain)
    client = funded_client(chain)
    set_id = create_set(chain, provider, create_extra(chain, provider.address, client))
    cids = cids_of(payloads)
    add_pieces(chain, provider, set_id, cids, add_extra(chain, client, cids))
    return provider, client, set_id
