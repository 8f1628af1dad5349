"""The FOC client world of the backend tests: devnet chain, Curio stand-in providers that are
registered and approved, a funded client wallet, and an engine over a journal."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.chain.deploy import PdpOffering, approve_provider, register_provider
from gateway.chain.journal import Journal
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.prover import Prover
from gateway.chain.tx import TxSender
from gateway.foc.chainview import FocAddresses, FocChainView
from gateway.foc.costs import USDFC
from gateway.foc.curio import CurioClient
from gateway.foc.driver import step
from gateway.foc.engine import FocEngine, FocSettings
from gateway.foc.registry import eligible, read_providers
from gateway.foc.table import PieceState
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.testing.focnet import FocChain
from tests.curio_standin import CurioStandIn
from tests.devnet_support import PROVING, funded_client, mine

SETTINGS = FocSettings(
    copies=2, budget=10 * USDFC, horizon=180 * 86400.0, keep_window=7200.0, repair_after=1
)


def addresses(chain: FocChain) -> FocAddresses:
    d = chain.deployment
    return FocAddresses(
        d.fwss, d.pdp_verifier, d.filecoin_pay, d.service_provider_registry, d.usdfc
    )


@dataclass
class World:
    chain: FocChain
    client: TxSender
    providers: list[CurioStandIn]
    provers: list[Prover]
    objects: dict[str, bytes] = field(default_factory=dict)
    cid: dict[str, str] = field(default_factory=dict)

    def view(self) -> FocChainView:
        return FocChainView(RpcClient(self.chain.rpc.url, attempts=1), addresses(self.chain))

    def engine(
        self,
        journal: Journal,
        settings: FocSettings = SETTINGS,
        clock: Callable[[], float] | None = None,
    ) -> FocEngine:
        view = self.view()
        engine = FocEngine(
            journal,
            view,
            self.client.wallet,
            self.chain.chain_id,
            lambda p: CurioClient(p.service_url, timeout=1.0),
            self.objects.get,
            settings,
            **({"clock": clock} if clock else {}),
        )
        found = read_providers(view.rpc, view.a.service_provider_registry, view.a.fwss)
        engine.set_providers(eligible(found, pins=(), max_price=10 * USDFC, usdfc=view.a.usdfc))
        return engine

    def add_object(self, key: str, size: int = 3000) -> tuple[str, int]:
        data = secrets.token_bytes(size)
        self.objects[key] = data
        return str(piece_cid_v2(commp(data))), size

    def prove(self) -> None:
        for prover in self.provers:
            prover.step()
        mine(self.chain, 1)

    def stop(self) -> None:
        for provider in self.providers:
            provider.stop()


def make_world(chain: FocChain, n: int = 3) -> World:
    providers, provers = [], []
    for i in range(n):
        sender = chain.new_wallet()
        standin = CurioStandIn(sender, chain.deployment).start()
        offering = PdpOffering(standin.url, payment_token=chain.deployment.usdfc)
        provider_id = register_provider(sender, chain.deployment, f"sp{i}", offering)
        approve_provider(chain.deployer, chain.deployment, provider_id)
        providers.append(standin)
        provers.append(Prover(sender, chain.deployment, PROVING, standin.fetch))
    return World(chain, funded_client(chain), providers, provers)


def run_until(world: World, engine: FocEngine, done: Callable[[], bool], rounds: int = 200) -> None:
    for _ in range(rounds):
        step(engine)
        if done():
            return
        world.prove()
    states = sorted((p.journal_key, p.state.value, p.reason) for p in engine.pieces())
    raise AssertionError(f"not done after {rounds} rounds: {states} {engine.errors}")


def all_proven(engine: FocEngine, keys: list[str], copies: int = 2) -> Callable[[], bool]:
    return lambda: all(engine.proven_copies(k) >= copies for k in keys)


def states(engine: FocEngine) -> set[PieceState]:
    return {p.state for p in engine.pieces()}
