"""The FOC path with real processes: Mosquitto, the gateway daemon (``depin-gateway run`` with
``[storage] backends = ["foc"]``), the devnet chain (anvil + our stand-in contracts), three
Curio-shaped providers (tests/curio_standin.py: they do createDataSet/addPieces on the devnet
for real) proving on chain. Readings go in over MQTT; fragments are uploaded, committed and
proven; a batch's local fragments are evicted only after their first on-chain proof; the
gateway is killed with SIGKILL several times on the way, and the chain shows one data set per
provider and every piece added once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.chain.deploy import fund as give
from gateway.chain.journal import Journal
from gateway.foc.table import FocPiece, PieceState
from gateway.keys.wallet import create_wallet
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.seal.store import Vault
from gateway.testing.broker import Broker
from gateway.testing.focnet import FIL, USDFC, FocChain
from tests.conftest import ROOT, GatewayProcess, Publisher, write_config
from tests.devnet_support import PDP, chain_fixture, mine, view
from tests.foc_support import World, make_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    yield from chain_fixture(tmp_path_factory)


class ProvingLoop:
    """The providers' provers and the block clock, on a thread until stopped."""

    def __init__(self, world: World) -> None:
        self.world, self._stop = world, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for standin, prover in zip(self.world.providers, self.world.provers, strict=True):
                with standin._lock:
                    prover.step()
            mine(self.world.chain, 1)

    def __enter__(self) -> ProvingLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _config(tmp_path: Path, broker: Broker, chain: FocChain) -> Path:
    d = chain.deployment
    extra = f"""
[batch]
max_readings = 40
max_age = "1s"
[storage]
backends = ["foc"]
data_fragments = 2
parity_fragments = 1
[chain]
network = "devnet"
rpc_url = "{chain.rpc.url}"
chain_id = {chain.chain_id}
fwss = "{d.fwss}"
pdp_verifier = "{d.pdp_verifier}"
filecoin_pay = "{d.filecoin_pay}"
service_provider_registry = "{d.service_provider_registry}"
usdfc = "{d.usdfc}"
confirmations = 1
receipt_timeout = "20s"
[foc]
copies = 2
budget = 5
deposit_topup_below = 1
deposit_topup_amount = 3
poll_interval = "0.2s"
request_timeout = "2s"
repair_after = 2
"""
    return write_config(tmp_path, broker.port, extra)


def _pieces(config_dir: Path) -> list[FocPiece]:
    journal = Journal(config_dir / "state" / "foc" / "journal.json")
    return [FocPiece.from_record(r) for _, r in journal.items("piece/")]


def _foc(status: dict[str, Any]) -> dict[str, Any]:
    foc: dict[str, Any] = status["storage"]["backends"]["foc"]
    return foc


def _proven_fragments(tmp_path: Path, seq: int) -> int:
    return sum(
        1
        for p in _pieces(tmp_path)
        if p.key.startswith(f"frag/{seq}/") and p.state is PieceState.PROVEN
    )


def _evicted_only_after_proofs(tmp_path: Path) -> int:
    """Every batch whose local fragments are gone has k = 2 fragments proven on chain."""
    vault = Vault(tmp_path / "state", read_only=True)
    evicted = [seq for seq in vault.seqs() if not vault.fragments(seq)]
    for seq in evicted:
        assert _proven_fragments(tmp_path, seq) >= 2, f"batch {seq} evicted before its proofs"
    return len(evicted)


def _kill_in_each_part_of_the_table(gateway: GatewayProcess, tmp_path: Path) -> None:
    _ = PieceState
    for group in ({_.UPLOADING, _.PARKED}, {_.SIGNED, _.SUBMITTED}, {_.ADDED}):
        gateway.wait_for(
            lambda _s, g=group: any(p.state in g for p in _pieces(tmp_path)), timeout=90
        )
        gateway.kill9()
        gateway.start()


def _one_data_set_per_provider(world: World, chain: FocChain, payer: str, tmp_path: Path) -> None:
    pieces = _pieces(tmp_path)
    payer_sets = world.view().client_data_sets(payer)
    assert len(payer_sets) == len({p.provider_id for p in pieces if p.data_set_id})
    for set_id in payer_sets.values():
        count = view(chain, PDP, chain.deployment.pdp_verifier, "getNextPieceId", set_id)[0]
        assert count == sum(1 for p in pieces if p.data_set_id == set_id)
    for p in (p for p in pieces if p.state is PieceState.PROVEN):
        holder = next(s for s in world.providers if p.piece_cid in s.pieces)
        assert str(piece_cid_v2(commp(holder.pieces[p.piece_cid]))) == p.piece_cid


def _restore(config: Path, out: Path) -> list[Any]:
    command = [
        sys.executable,
        "-m",
        "gateway.cli",
        "restore",
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_readings_go_to_foc_are_proven_on_chain_and_survive_kill_9_without_duplicates(
    tmp_path: Path,
    broker: Broker,
    chain: FocChain,
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    world = make_world(chain, 3)
    for standin in world.providers:
        standin.pending_polls = 3  # commits stay "pending" a little: the kill can land there
    try:
        config = _config(tmp_path, broker, chain)
        wallet = create_wallet(tmp_path / "state" / "wallet.key")
        give(chain.deployer, chain.deployment, wallet.address, 10 * FIL, 20 * USDFC)
        gateway = gateway_process(config)
        with ProvingLoop(world):
            gateway.start()
            sent = [(f"sensors/r{i % 3}", json.dumps({"id": f"r{i}", "t": i})) for i in range(120)]
            publisher = Publisher(broker.port)
            publisher.publish_all(sent)
            publisher.close()
            _kill_in_each_part_of_the_table(gateway, tmp_path)

            def all_evicted(status: dict[str, Any]) -> bool:
                evicted = _evicted_only_after_proofs(tmp_path)  # checked at every poll
                return (
                    status["batches_sealed"] >= 3
                    and status["spool_pending"] == 0
                    and evicted == status["batches_sealed"]
                )

            status = gateway.wait_for(all_evicted, timeout=180)
        assert _foc(status)["spending"] == "ok"
        _one_data_set_per_provider(world, chain, wallet.address, tmp_path)
        assert gateway.stop() == 0
        # Restore from any k: one provider is gone, the evicted fragments come from the others.
        used_urls = {p.url for p in _pieces(tmp_path) if p.state is PieceState.PROVEN}
        next(s for s in world.providers if s.url in used_urls).stop()
        assert len(_restore(config, tmp_path / "restored.jsonl")) == len(sent)
    finally:
        world.stop()


@pytest.mark.parametrize("fault", ["wrong_bytes", "refuse"])
def test_a_lying_provider_never_costs_a_reading(
    tmp_path: Path,
    broker: Broker,
    chain: FocChain,
    gateway_process: Callable[[Path], GatewayProcess],
    fault: str,
) -> None:
    """One of three providers serves other bytes than it stored (or refuses uploads): its
    copies are written off, batches are evicted only once honest copies are proven, and a
    restore with the liar still answering returns every reading."""
    world = make_world(chain, 3)
    liar = world.providers[0]
    liar.faults.add(fault)
    try:
        config = _config(tmp_path, broker, chain)
        wallet = create_wallet(tmp_path / "state" / "wallet.key")
        give(chain.deployer, chain.deployment, wallet.address, 10 * FIL, 20 * USDFC)
        gateway = gateway_process(config)
        with ProvingLoop(world):
            gateway.start()
            sent = [(f"sensors/r{i % 3}", json.dumps({"id": f"r{i}", "t": i})) for i in range(80)]
            publisher = Publisher(broker.port)
            publisher.publish_all(sent)
            publisher.close()

            def all_evicted(status: dict[str, Any]) -> bool:
                evicted = _evicted_only_after_proofs(tmp_path)
                return status["batches_sealed"] >= 2 and evicted == status["batches_sealed"]

            gateway.wait_for(all_evicted, timeout=180)
        proven = [p for p in _pieces(tmp_path) if p.state is PieceState.PROVEN]
        assert proven and all(p.url != liar.url for p in proven)
        assert gateway.stop() == 0
        assert len(_restore(config, tmp_path / "restored.jsonl")) == len(sent)
    finally:
        world.stop()
