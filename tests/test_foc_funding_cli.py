"""Filecoin Pay funding through the journaled sender, the top-up rule, ``depin-gateway foc
fund|providers|status`` against the devnet, and FocBackend rounds that stop spending with a
clear status (wrong chain id, fee above the cap) instead of crashing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.chain.abi import abi_of
from gateway.chain.journal import Journal
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.sending import ChainSender, FeePolicy
from gateway.cli.app import main as cli
from gateway.config import load_config
from gateway.foc.backend import FocBackend, foc_paths
from gateway.foc.funding import deposited, fund, top_up
from gateway.keys.wallet import create_wallet
from gateway.status.prometheus import _foc_metrics
from gateway.testing.focnet import USDFC, FocChain
from tests.devnet_support import chain_fixture, mine, snapshot_fixture
from tests.foc_support import addresses, make_world

GWEI = 10**9
FEES = FeePolicy(100 * GWEI, GWEI, confirmations=1, receipt_timeout=20)
PAY = abi_of("FilecoinPay")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    yield from chain_fixture(tmp_path_factory)


@pytest.fixture(autouse=True)
def fresh(chain: FocChain) -> Iterator[None]:
    yield from snapshot_fixture(chain)


def _account(chain: FocChain, owner: str) -> tuple[int, ...]:
    data = PAY.calldata("accounts", chain.deployment.usdfc, owner)
    return tuple(PAY.decode("accounts", chain.rpc.eth_call(chain.deployment.filecoin_pay, data)))


def _approval(chain: FocChain, owner: str) -> bool:
    data = PAY.calldata("operatorApprovals", chain.deployment.usdfc, owner, chain.deployment.fwss)
    reply = chain.rpc.eth_call(chain.deployment.filecoin_pay, data)
    return bool(PAY.decode("operatorApprovals", reply)[0])


def _sender(chain: FocChain, wallet: object, path: Path) -> ChainSender:
    rpc = RpcClient(chain.rpc.url, attempts=1)
    return ChainSender(rpc, wallet, chain.chain_id, Journal(path), FEES, poll=0.02)  # type: ignore[arg-type]


def test_fund_deposits_with_permit_and_approves_fwss_once(chain: FocChain, tmp_path: Path) -> None:
    wallet = chain.new_wallet(usdfc=20 * USDFC).wallet
    sender = _sender(chain, wallet, tmp_path / "tx.json")
    result = fund(sender, addresses(chain), 5 * USDFC)
    assert result.outcome.ok and not result.resumed
    assert _account(chain, wallet.address)[0] == 5 * USDFC
    assert _approval(chain, wallet.address)
    assert deposited(sender) == 5 * USDFC


def test_fund_after_a_crash_resumes_the_unfinished_deposit_and_never_pays_twice(
    chain: FocChain, tmp_path: Path
) -> None:
    wallet = chain.new_wallet(usdfc=20 * USDFC).wallet
    sender = _sender(chain, wallet, tmp_path / "tx.json")
    original = sender.rpc.call

    def crash_on_send(method: str, params: object = ()) -> object:
        if method == "eth_sendRawTransaction":
            raise KeyboardInterrupt  # kill -9 between the checkpoint and the send
        return original(method, params)  # type: ignore[arg-type]

    sender.rpc.call = crash_on_send  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        fund(sender, addresses(chain), 5 * USDFC)
    again = fund(_sender(chain, wallet, tmp_path / "tx.json"), addresses(chain), 5 * USDFC)
    assert again.resumed and again.outcome.ok and again.amount == 5 * USDFC
    assert _account(chain, wallet.address)[0] == 5 * USDFC


def test_top_up_only_below_the_threshold_and_within_the_budget(
    chain: FocChain, tmp_path: Path
) -> None:
    wallet = chain.new_wallet(usdfc=20 * USDFC).wallet
    sender = _sender(chain, wallet, tmp_path / "tx.json")
    a = addresses(chain)
    assert top_up(sender, a, below=USDFC, amount=2 * USDFC, budget=3 * USDFC) is not None
    assert top_up(sender, a, below=USDFC, amount=2 * USDFC, budget=3 * USDFC) is None  # funded
    assert top_up(sender, a, below=10 * USDFC, amount=2 * USDFC, budget=3 * USDFC) is None
    assert _account(chain, wallet.address)[0] == 2 * USDFC


def _config(chain: FocChain, tmp_path: Path, extra: str = "", chain_id: int | None = None) -> Path:
    d = chain.deployment
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    text = f"""
[gateway]
state_dir = "{state}"
[storage]
backends = ["market", "foc"]
[chain]
network = "devnet"
rpc_url = "{chain.rpc.url}"
chain_id = {chain_id or chain.chain_id}
fwss = "{d.fwss}"
pdp_verifier = "{d.pdp_verifier}"
filecoin_pay = "{d.filecoin_pay}"
service_provider_registry = "{d.service_provider_registry}"
usdfc = "{d.usdfc}"
confirmations = 1
receipt_timeout = "20s"
[foc]
budget = 5
deposit_topup_below = 1
deposit_topup_amount = 2
{extra}
"""
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def _funded_wallet(chain: FocChain, config: Path) -> str:
    wallet = create_wallet(load_config(config).state_dir / "wallet.key")
    from gateway.chain.deploy import fund as give

    give(chain.deployer, chain.deployment, wallet.address, 10 * 10**18, 20 * USDFC)
    return wallet.address


def test_cli_fund_providers_and_status(
    chain: FocChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world(chain, 2)
    try:
        config = _config(chain, tmp_path)
        address = _funded_wallet(chain, config)
        assert cli(["foc", "fund", "3", "--config", str(config)]) == 0
        assert "fund #1" in capsys.readouterr().out
        assert _account(chain, address)[0] == 3 * USDFC
        assert cli(["foc", "providers", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert out.count("usable") == 2 and world.providers[0].url in out
        assert cli(["foc", "status", "--config", str(config)]) == 0
        assert "no FOC pieces yet" in capsys.readouterr().out
        assert cli(["foc", "fund", "--config", str(config)]) == 2
    finally:
        world.stop()


def test_a_wrong_chain_id_stops_the_backend_with_a_status_not_a_crash(
    chain: FocChain, tmp_path: Path
) -> None:
    config = _config(chain, tmp_path, chain_id=314159)
    _funded_wallet(chain, config)
    backend = FocBackend(load_config(config), lambda _key: None)
    backend.round()
    stats = backend.stats()
    assert stats["spending"] == "stopped" and "wrong chain id" in stats["stopped"]
    assert not Path(foc_paths(load_config(config).state_dir)[1]).exists()  # nothing signed


def test_a_fee_above_the_cap_stops_spending_with_a_status(chain: FocChain, tmp_path: Path) -> None:
    config = _config(chain, tmp_path)
    address = _funded_wallet(chain, config)
    chain.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])
    mine(chain, 1)
    backend = FocBackend(load_config(config), lambda _key: None)
    backend.round()  # the top-up is due (no deposit yet) but the fee is above 10 gwei
    stats = backend.stats()
    assert stats["spending"] == "stopped" and "max_fee" in stats["stopped"]
    assert _account(chain, address)[0] == 0
    families = {f.name: f for f in _foc_metrics(stats)}
    assert families["depin_gateway_foc_spending_stopped"].samples[0].value == 1
