"""The FOC backend on the devnet (anvil + our FWSS/PDPVerifier/Filecoin Pay stand-ins) against
Curio-shaped stand-in providers (tests/curio_standin.py) that do their on-chain part for real:
upload, one data set per provider, proofs on chain, crash at every state, dropped pieces
repaired, lying providers written off, the budget never exceeded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.chain.journal import Journal
from gateway.foc.costs import USDFC
from gateway.foc.driver import step
from gateway.foc.engine import FocEngine, FocSettings
from gateway.foc.table import PieceState
from gateway.testing.focnet import FocChain
from tests.devnet_support import PDP, chain_fixture, snapshot_fixture, view
from tests.foc_support import SETTINGS, World, all_proven, make_world, run_until

_P = PieceState


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    yield from chain_fixture(tmp_path_factory)


@pytest.fixture
def world(chain: FocChain) -> Iterator[World]:
    for _ in snapshot_fixture(chain):
        w = make_world(chain)
        try:
            yield w
        finally:
            w.stop()


def _one_set_per_provider(world: World, engine: FocEngine) -> None:
    on_chain = world.view().client_data_sets(world.client.address)
    sets = engine.sets()
    assert len(on_chain) == len(sets)
    assert sorted(on_chain.values()) == sorted(s.data_set_id for s in sets.values())
    for data_set in sets.values():
        count = view(
            world.chain,
            PDP,
            world.chain.deployment.pdp_verifier,
            "getNextPieceId",
            data_set.data_set_id,
        )[0]
        mine = [p for p in engine.pieces() if p.data_set_id == data_set.data_set_id]
        assert count == len(mine)  # every piece added exactly once


def test_full_path_uploads_commits_and_is_proven_on_chain_before_the_copy_may_go(
    world: World, tmp_path: Path
) -> None:
    engine = world.engine(Journal(tmp_path / "foc.json"))
    keys = [f"frag/1/{i}" for i in range(3)]
    for key in keys:
        engine.offer(key, *world.add_object(key))
    seen_added_unproven = False

    def done() -> bool:
        nonlocal seen_added_unproven
        for p in engine.pieces():
            if p.state is _P.ADDED:
                seen_added_unproven |= engine.proven_copies(p.key) == 0
        return all_proven(engine, keys)()

    run_until(world, engine, done)
    assert seen_added_unproven  # committed on chain is not yet proven: the copy stays
    _one_set_per_provider(world, engine)
    assert len(engine.sets()) == 3 * 2 // 2 or len(engine.sets()) <= 3
    for p in engine.pieces():  # restore from any provider holding a proven copy
        provider = next(s for s in world.providers if p.piece_cid in s.pieces)
        assert provider.pieces[p.piece_cid] == world.objects[p.key]
        assert p.proven_epoch > p.added_epoch
    assert engine.reserved() <= SETTINGS.budget


def test_both_upload_flows_and_more_pieces_go_into_the_same_data_sets(
    world: World, tmp_path: Path
) -> None:
    from dataclasses import replace

    engine = world.engine(Journal(tmp_path / "foc.json"), replace(SETTINGS, streaming=True))
    first = ["frag/1/0"]
    engine.offer(first[0], *world.add_object(first[0]))
    run_until(world, engine, lambda: all(p.state is _P.ADDED for p in engine.pieces()))
    later = [f"frag/2/{i}" for i in range(3)]
    for key in later:
        engine.offer(key, *world.add_object(key))
    run_until(world, engine, all_proven(engine, first + later))
    _one_set_per_provider(world, engine)
    assert sum(s.calls.get("add_pieces", 0) for s in world.providers) >= 1


def test_a_replaced_provider_transaction_is_followed_by_its_confirmed_tx_hash(
    world: World, tmp_path: Path
) -> None:
    """Curio's replace-by-fee: the status route answers confirmedTxHash, which the journal
    keeps; the piece still lands once. (When the status is still pending but the chain shows
    the effect, the chain wins and the data set goes live without waiting.)"""
    for s in world.providers:
        s.faults.add("replaced")
    engine = world.engine(Journal(tmp_path / "foc.json"))
    first, later = "frag/1/0", "frag/2/0"
    engine.offer(first, *world.add_object(first))
    run_until(world, engine, lambda: all(p.state is _P.ADDED for p in engine.pieces()))
    engine.offer(later, *world.add_object(later))
    run_until(world, engine, all_proven(engine, [first, later]))
    mined = {h for s in world.providers for h in (t["confirmed"] for t in s.txs.values())}
    assert all(d.tx_hash in mined for d in engine.sets().values())
    assert all(p.tx_hash in mined for p in engine.pieces() if p.key == later)
    _one_set_per_provider(world, engine)


class Crash(Exception):
    pass


class CrashingJournal(Journal):
    """kill -9 right after the checkpoint ``kind:state`` (the step it enables is not taken)."""

    def __init__(self, path: Path, point: str) -> None:
        super().__init__(path)
        self.kind, self.state = point.split(":")
        self.fired = False

    def put(self, key: str, record: dict[str, Any]) -> None:
        super().put(key, record)
        if not self.fired and key.startswith(self.kind + "/") and record["state"] == self.state:
            self.fired = True
            raise Crash(key)


def _scenario(world: World, engine: FocEngine, first: list[str], then: list[str]) -> None:
    """What the service does, idempotently: offer a batch, let it commit, offer the next one
    (which goes through AddPieces on the existing data sets), wait for every proof."""
    for key in first:
        engine.offer(key, world.objects[key] and world.cid[key], len(world.objects[key]))
    committed = {_P.ADDED, _P.PROVEN}
    run_until(world, engine, lambda: all(p.state in committed for p in engine.pieces()))
    for key in then:
        engine.offer(key, world.cid[key], len(world.objects[key]))
    run_until(world, engine, all_proven(engine, first + then))


@pytest.mark.parametrize(
    "point",
    [
        "piece:planned",
        "piece:uploading",
        "piece:parked",
        "set:signed",
        "piece:signed",
        "set:submitted",
        "set:live",
        "piece:submitted",
        "piece:added",
        "piece:proven",
    ],
)
def test_a_crash_after_every_checkpoint_resumes_without_a_second_data_set_or_add(
    world: World, tmp_path: Path, point: str
) -> None:
    for s in world.providers:
        s.pending_polls = 1  # every commit is seen "pending" once: the submitted states happen
    first, then = ["frag/1/0", "frag/1/1"], ["frag/2/0"]
    for key in first + then:
        world.cid[key] = world.add_object(key)[0]
    with pytest.raises(Crash):
        _scenario(world, world.engine(CrashingJournal(tmp_path / "foc.json", point)), first, then)
    restarted = world.engine(Journal(tmp_path / "foc.json"))
    _scenario(world, restarted, first, then)
    _one_set_per_provider(world, restarted)
    on_chain = world.view().client_data_sets(world.client.address)
    assert len(on_chain) == 2  # two copies: two providers, one data set each


def test_a_provider_that_drops_a_piece_fails_on_chain_and_the_piece_is_repaired_elsewhere(
    world: World, tmp_path: Path
) -> None:
    engine = world.engine(Journal(tmp_path / "foc.json"))
    key = "frag/1/0"
    cid, size = world.add_object(key, 5000)
    engine.offer(key, cid, size)
    run_until(world, engine, all_proven(engine, [key]))
    holders = [s for s in world.providers if cid in s.pieces]
    holders[0].drop(cid)
    run_until(world, engine, lambda: any(p.state is _P.FAILED for p in engine.pieces()), 300)
    run_until(world, engine, all_proven(engine, [key]))
    spare = next(s for s in world.providers if s not in holders)
    assert spare.pieces[cid] == world.objects[key]
    failed = [p for p in engine.pieces() if p.state is _P.FAILED]
    assert len(failed) == 1 and "no proof" in failed[0].reason


@pytest.mark.parametrize("fault", ["refuse", "hang", "wrong_bytes"])
def test_a_lying_provider_is_written_off_and_every_copy_lands_on_honest_ones(
    world: World, tmp_path: Path, fault: str
) -> None:
    liar = world.providers[0]
    liar.faults.add(fault)
    engine = world.engine(Journal(tmp_path / "foc.json"))
    keys = ["frag/1/0", "frag/1/1"]
    for key in keys:
        engine.offer(key, *world.add_object(key))
    run_until(world, engine, all_proven(engine, keys), 300)
    proven = [p for p in engine.pieces() if p.state is _P.PROVEN]
    liar_id = engine.providers and next(
        i for i, pr in engine.providers.items() if pr.service_url == liar.url
    )
    assert all(p.provider_id != liar_id for p in proven)
    assert engine.score(engine.providers[liar_id]) < 1.0  # our reputation of it went down
    assert all(world.objects[k] for k in keys)  # local copies kept throughout


def test_the_usdfc_budget_is_never_exceeded(world: World, tmp_path: Path) -> None:
    from dataclasses import replace

    tight = replace(SETTINGS, budget=USDFC // 4)  # one data set's reservation (0.169) + pieces
    engine = world.engine(Journal(tmp_path / "foc.json"), tight)
    for i in range(4):
        key = f"frag/1/{i}"
        engine.offer(key, *world.add_object(key))
        assert engine.reserved() <= tight.budget
    assert "budget" in engine.blocked
    assert 0 < len(engine.pieces()) < 8


def test_an_unclaimed_upload_is_uploaded_again_before_half_the_keep_window(
    world: World, tmp_path: Path
) -> None:
    now = [1000.0]
    engine = world.engine(Journal(tmp_path / "foc.json"), clock=lambda: now[0])
    key = "frag/1/0"
    engine.offer(key, *world.add_object(key))
    for p in engine.pieces():
        engine.upload(p)
    assert {p.state for p in engine.pieces()} == {_P.PARKED}, engine.errors
    now[0] += SETTINGS.keep_window / 2 + 1
    for s in world.providers:
        s.pieces.clear()  # the provider's GC ran
    step(engine)  # stale parked uploads go back to uploading, nothing is committed
    assert {p.state for p in engine.pieces()} == {_P.UPLOADING}
    assert not engine.sets()
    run_until(world, engine, all_proven(engine, [key]))


del FocSettings
