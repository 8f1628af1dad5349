"""The node's real chain port (``chain_pdp``, ``chain_sender``) against a real anvil: what a
provider operator meets first — a wrong chain id, a missing wallet, an address that is no
PDPVerifier, an unfunded wallet — each a clear error, never a crash or a 500. (Transactions to
the PDPVerifier stand-in need the devnet contracts of branch foc-devnet.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.chain.anvil import DEVNET_CHAIN_ID, Anvil
from gateway.chain.jsonrpc import RpcClient
from gateway.errors import ConfigError, KeyMaterialError, WrongChainId
from gateway.keys.wallet import create_wallet
from gateway.node import NodeConfig, node_config_from_string, start_node
from gateway.node.chain_sender import NodeTxSender
from gateway.node.chainport import ChainRefused
from gateway.testing.node_client import FakeClock, make_node_config

NOT_A_CONTRACT = "0x" + "42" * 20


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    with Anvil(tmp_path / "anvil") as running:
        yield running


def _chain_config(tmp_path: Path, anvil: Anvil, **more: object) -> NodeConfig:
    wallet = tmp_path / "wallet.key"
    if not wallet.exists() and more.pop("create_wallet", True):
        create_wallet(wallet)
    return make_node_config(
        tmp_path,
        chain_rpc=anvil.url,
        pdp_verifier=NOT_A_CONTRACT,
        wallet=str(wallet),
        record_keepers=[NOT_A_CONTRACT],
        **more,
    )


async def test_a_wrong_chain_id_stops_the_node_at_start(tmp_path: Path, anvil: Anvil) -> None:
    config = _chain_config(tmp_path, anvil, chain_id=314)
    with pytest.raises(WrongChainId):
        await start_node(config, FakeClock())


async def test_a_missing_wallet_is_a_clear_error(tmp_path: Path, anvil: Anvil) -> None:
    config = _chain_config(tmp_path, anvil, create_wallet=False)
    with pytest.raises(KeyMaterialError, match="wallet init"):
        await start_node(config, FakeClock())


async def test_an_address_that_is_no_pdp_verifier_is_503_not_500(
    tmp_path: Path, anvil: Anvil
) -> None:
    config = _chain_config(tmp_path, anvil, chain_id=DEVNET_CHAIN_ID)
    node = await start_node(config, FakeClock())
    try:
        body = {"recordKeeper": NOT_A_CONTRACT}
        async with (
            aiohttp.ClientSession() as session,
            session.post(node.url + "/pdp/data-sets", json=body) as response,
        ):
            assert response.status == 503
            assert "is it a PDPVerifier" in (await response.json())["message"]
    finally:
        await node.stop()


def test_an_unfunded_wallet_is_refused_before_anything_is_signed(
    tmp_path: Path, anvil: Anvil
) -> None:
    rpc = RpcClient(anvil.url)
    sender = NodeTxSender(rpc, b"\x01" * 32, DEVNET_CHAIN_ID)  # no FIL on the devnet
    with pytest.raises(ChainRefused, match="nsufficient funds"):
        sender.send(NOT_A_CONTRACT, b"", value=10**18)
    assert "01" * 8 not in repr(sender)


def test_a_funded_wallet_sends_and_its_receipt_is_read(tmp_path: Path, anvil: Anvil) -> None:
    rpc = RpcClient(anvil.url)
    sender = NodeTxSender(rpc, b"\x02" * 32, DEVNET_CHAIN_ID)
    rpc.call("anvil_setBalance", [sender.address, hex(10**18)])
    tx_hash = sender.send(NOT_A_CONTRACT, b"\x00hello", value=1)
    receipt = sender.wait(tx_hash)
    assert receipt["status"] == "0x1" and receipt["transactionHash"] == tx_hash
    second = sender.send(NOT_A_CONTRACT, b"", value=1)  # the nonce moved on
    assert sender.wait(second)["status"] == "0x1"


def test_chain_keys_come_together_or_not_at_all(tmp_path: Path) -> None:
    plain = node_config_from_string(f'[node]\ndata_dir = "{tmp_path}"\n')
    assert plain.chain is None and plain.unclaimed_keep == 7200
    text = f'[node]\ndata_dir = "{tmp_path}"\nchain_rpc = "http://127.0.0.1:1"\n'
    with pytest.raises(ConfigError, match=r"node\.pdp_verifier: is required"):
        node_config_from_string(text)
    text += f'pdp_verifier = "{NOT_A_CONTRACT}"\nwallet = "w.key"\n'
    for keepers in ("[]", '["0x12"]', '["0x' + "00" * 20 + '"]'):
        with pytest.raises(ConfigError, match=r"node\.record_keepers"):
            node_config_from_string(text + f"record_keepers = {keepers}\n")
    config = node_config_from_string(text + f'record_keepers = ["{NOT_A_CONTRACT}"]\n')
    assert config.chain is not None and config.chain.record_keepers == (NOT_A_CONTRACT,)
