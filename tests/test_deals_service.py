"""StorageService in-process against real nodes (gateway/node) on 127.0.0.1: placement, proofs,
eviction after proof, ledger snapshot, restore from the network, resume after a restart,
corruption caught by the next proof round and repaired, a budget that is too small, resuming
after an abrupt stop, and vouchers for proven periods."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.config import Config, config_from_string
from gateway.deals import StorageService
from gateway.deals.book import Book
from gateway.deals.eventlog import EventLog
from gateway.keys import create_owner_key, format_gateway_public, format_owner_public
from gateway.node.runner import NodeThread
from gateway.restore.network import restore_from_network
from gateway.seal import Vault, seal_batch
from gateway.seal.synthetic import SensorFleet
from gateway.testing.node_client import make_node_config

IDENTITY = SigningKey(b"\x15" * 32)


def _config(tmp_path: Path, nodes: list[str], owner: PrivateKey, **storage: Any) -> Config:
    settings: dict[str, Any] = {
        "nodes": nodes,
        "deal_duration": "1d",
        "request_timeout": "2s",
        **storage,
    }
    text = "\n".join(
        [
            "[gateway]",
            f'state_dir = "{tmp_path / "state"}"',
            "[owner]",
            f'public_keys = ["{format_owner_public(owner.public_key)}"]',
            "[storage]",
            *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
            "[proving]",
            'interval = "1s"',
            "challenges = 4",
        ]
    )
    return config_from_string(text)


def _seal(vault: Vault, fleet: SensorFleet, owner: PrivateKey, count: int, m: int = 2) -> int:
    readings = 0
    for _ in range(count):
        head = vault.head()
        batch = seal_batch(
            fleet.readings(40),
            identity=IDENTITY,
            owners=[owner.public_key],
            seq=vault.next_seq(),
            prev=head[1] if head else None,
            m=m,
        )
        vault.put(batch)
        readings += batch.signed.header.count
    return readings


def _wait(predicate: Callable[[], bool], timeout: float, what: Callable[[], Any]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out; last stats: {json.dumps(what(), default=str)[:3000]}")


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[NodeThread]]:
    started: list[NodeThread] = []
    for i in range(6):
        node = NodeThread(make_node_config(tmp_path / f"n{i}", min_duration="60s"))
        node.start()
        started.append(node)
    yield started
    for node in started:
        node.stop()


def test_batches_are_placed_proven_evicted_and_restorable_from_the_network(
    tmp_path: Path, nodes: list[NodeThread]
) -> None:
    """Fragments land on distinct nodes, pass a first proof, the local copy is then evicted,
    and a ledger snapshot on the network restores every reading with no local state."""
    owner_path = tmp_path / "owner.key"
    owner = create_owner_key(owner_path)
    config = _config(tmp_path, [n.url for n in nodes], owner)
    vault = Vault(config.state_dir)
    readings = _seal(vault, SensorFleet(seed=3), owner, 3)
    service = StorageService(config, vault, IDENTITY)
    service.start()
    try:
        _wait(lambda: service.stats()["batches_durable"] == 3, 30, service.stats)
        _wait(lambda: service.stats()["ledger_head_batches"] == 3, 30, service.stats)
        _wait(lambda: service.stats()["batches_evicted"] == 3, 30, service.stats)
        stats = service.stats()
        assert all(vault.fragments(seq) == {} for seq in range(3))
        for seq in range(3):
            providers = {p.provider for p in service.book.batch_placements(seq) if p.held}
            assert len(providers) == 6  # k + m fragments on six distinct nodes
        assert int(stats["fil"]["committed"]) > 0
        assert stats["budget_state"] == "ok"
        head = stats["ledger_head"]
    finally:
        service.stop()
    out = io.StringIO()
    summary = restore_from_network(
        format_gateway_public(IDENTITY.verify_key),
        head,
        [n.url for n in nodes],  # the snapshot is replicated on some of them, not on all
        str(owner_path),
        out,
    )
    assert summary.readings == readings
    assert summary.batches == 3
    # the ledger replays into the same state after a restart
    book = Book()
    book.replay(EventLog(config.state_dir / "ledger").events)
    assert book.head is not None and book.head["piece"] == head


def test_a_corrupted_fragment_is_caught_by_the_next_proof_round_and_repaired(
    tmp_path: Path, nodes: list[NodeThread]
) -> None:
    """A node that silently flips bits in a stored piece fails its proofs; the fragment is
    rebuilt from the others and placed on another node."""
    owner = create_owner_key(tmp_path / "owner.key")
    config = _config(tmp_path, [n.url for n in nodes], owner, parity_fragments=1)
    vault = Vault(config.state_dir)
    _seal(vault, SensorFleet(seed=4), owner, 1, m=1)
    service = StorageService(config, vault, IDENTITY)
    service.start()
    try:
        _wait(lambda: service.stats()["batches_evicted"] == 1, 30, service.stats)
        victim = next(p for p in service.book.batch_placements(0) if p.held)
        node = next(n for n in nodes if n.url.rstrip("/") == victim.url)
        files = [
            f
            for f in (node.config.data_dir).rglob("*")
            if f.is_file() and f.stat().st_size == len(b"") + _payload(victim.piece_cid)
        ]
        assert files, "the node's piece file was not found"
        for f in files:
            data = bytearray(f.read_bytes())
            for i in range(0, len(data), 16):
                data[i] ^= 0xFF
            f.write_bytes(bytes(data))
        _wait(lambda: service.stats()["repairs"] >= 1, 30, service.stats)
        _wait(
            lambda: any(
                p.held and p.key == victim.key and p.pid != victim.pid
                for p in service.book.placements.values()
            ),
            30,
            service.stats,
        )
        record = service.book.nodes[victim.provider]
        assert record.proofs_failed >= 2
    finally:
        service.stop()


def _payload(piece_cid: str) -> int:
    from gateway.piece.cid import piece_info_from_v2

    return piece_info_from_v2(piece_cid).payload_size


def test_a_budget_too_small_keeps_data_local_and_says_why(
    tmp_path: Path, nodes: list[NodeThread]
) -> None:
    """No deal is made beyond the budget; nothing is evicted; status names the shortfall."""
    owner = create_owner_key(tmp_path / "owner.key")
    config = _config(tmp_path, [n.url for n in nodes], owner, budget=1000)
    vault = Vault(config.state_dir)
    _seal(vault, SensorFleet(seed=5), owner, 2)
    service = StorageService(config, vault, IDENTITY)
    service.start()
    try:
        _wait(lambda: service.stats()["budget_state"] == "blocked", 15, service.stats)
        time.sleep(1.5)
        stats = service.stats()
        assert "raise [storage] budget" in stats["budget_blocked"]
        assert int(stats["fil"]["spent"]) + int(stats["fil"]["committed"]) <= 1000
        assert stats["batches_evicted"] == 0
        assert all(len(vault.fragments(seq)) == 6 for seq in range(2))
    finally:
        service.stop()


def test_placements_resume_from_the_ledger_after_an_abrupt_stop(
    tmp_path: Path, nodes: list[NodeThread]
) -> None:
    """Stopped mid-flight (tasks cancelled between checkpoints, as a kill would), a new service
    on the same state directory finishes every placement from its recorded state: each object
    ends on exactly its copies, no fragment is forgotten and none is placed twice."""
    owner = create_owner_key(tmp_path / "owner.key")
    config = _config(tmp_path, [n.url for n in nodes], owner)
    vault = Vault(config.state_dir)
    _seal(vault, SensorFleet(seed=7), owner, 4)
    first = StorageService(config, vault, IDENTITY)
    first.start()
    _wait(lambda: any(p.state != "planned" for p in first.book.placements.values()), 10, dict)
    first.stop()
    in_flight = [p for p in first.book.placements.values() if p.state in ("proposed", "accepted")]
    second = StorageService(config, vault, IDENTITY)
    assert len(second.book.placements) == len(first.book.placements)  # replayed from the ledger
    second.start()
    try:
        _wait(lambda: second.stats()["batches_evicted"] == 4, 30, second.stats)
        for p in in_flight:
            assert second.book.placements[p.pid].held  # resumed, not abandoned and re-planned
        for seq in range(4):
            for index in range(6):
                copies = [p for p in second.book.of_key(f"frag/{seq}/{index}") if p.live]
                assert len(copies) == 1
    finally:
        second.stop()


async def test_proven_periods_are_paid_with_cumulative_vouchers_the_node_accepts(
    tmp_path: Path,
) -> None:
    """After each passed proof the client pays, by a signed cumulative voucher, every epoch from
    the deal's start to now; the node records the same total; a renewal moves to a new deal."""
    from gateway.deals.client import NodeClient
    from gateway.deals.engine import START_DELAY_EPOCHS, Engine, EngineSettings
    from gateway.deals.local import LocalObjects
    from gateway.deals.repair import piece_cid_of
    from gateway.market.messages import Ask
    from gateway.testing.node_client import FakeClock

    clock = FakeClock()
    node = NodeThread(make_node_config(tmp_path / "n", min_duration="60s"), clock=clock)
    node.start()
    book = Book()
    local = LocalObjects(tmp_path / "state", None)
    data = bytes(range(256)) * 3
    piece = piece_cid_of(data)
    local.save_snapshot(1, data)
    book.apply({"t": "object", "key": "ledger/1", "piece": piece, "replicas": 1})
    client = NodeClient(IDENTITY, 5.0, clock=clock)
    engine = Engine(
        book,
        book.apply,
        client,
        local,
        None,
        IDENTITY,
        EngineSettings(duration_epochs=100, challenges=3),
        random.Random(1),
        clock,
    )
    try:
        ask, _ = Ask.open(await client.ask(node.url))
        p = engine.plan("ledger/1", piece, ask)
        await engine.drive(p.pid)
        assert book.placements[p.pid].state == "proven"
        assert book.spent == 0  # the deal has not started: nothing is owed yet
        clock.advance(30 * (START_DELAY_EPOCHS + 3))
        assert (await engine.prove(p.pid)).ok
        p = book.placements[p.pid]
        assert p.paid == 4 * p.price_per_epoch and book.spent == p.paid
        reply = await client.deal(node.url, p.deal_id)
        assert int(reply.json()["paid_total"]) == p.paid
        clock.advance(30 * 96)  # near the end: renew on the same node
        assert await engine.renew(p, ask)
        renewed = book.placements[p.pid]
        assert renewed.deal_id != p.deal_id and renewed.paid == 0
    finally:
        await client.close()
        node.stop()


async def test_deals_made_before_a_key_rotation_are_still_paid_with_their_own_key(
    tmp_path: Path,
) -> None:
    """After ``rotate-key`` and a restart, a voucher for an old deal must come from the deal's
    client key (the node accepts payment only from it), not from the new identity."""
    from gateway.deals.client import NodeClient
    from gateway.deals.engine import START_DELAY_EPOCHS, Engine, EngineSettings
    from gateway.deals.local import LocalObjects
    from gateway.deals.repair import piece_cid_of
    from gateway.market.messages import Ask
    from gateway.testing.node_client import FakeClock

    clock = FakeClock()
    node = NodeThread(make_node_config(tmp_path / "n", min_duration="60s"), clock=clock)
    node.start()
    book = Book()
    local = LocalObjects(tmp_path / "state", None)
    data = bytes(range(256)) * 3
    piece = piece_cid_of(data)
    local.save_snapshot(1, data)
    book.apply({"t": "object", "key": "ledger/1", "piece": piece, "replicas": 1})
    settings = EngineSettings(duration_epochs=100, challenges=3)
    old_client = NodeClient(IDENTITY, 5.0, clock=clock)
    engine = Engine(book, book.apply, old_client, local, None, IDENTITY, settings,
                    random.Random(1), clock)  # fmt: skip
    rotated = SigningKey.generate()
    new_client = NodeClient(rotated, 5.0, clock=clock)
    try:
        ask, _ = Ask.open(await old_client.ask(node.url))
        p = engine.plan("ledger/1", piece, ask)
        await engine.drive(p.pid)
        # The gateway restarts with its rotated identity; the old key is now a retired one.
        restarted = Engine(book, book.apply, new_client, local, None, rotated, settings,
                           random.Random(2), clock, retired=[IDENTITY])  # fmt: skip
        clock.advance(30 * (START_DELAY_EPOCHS + 3))
        assert (await restarted.prove(p.pid)).ok
        p = book.placements[p.pid]
        assert p.paid > 0
        reply = await new_client.deal(node.url, p.deal_id)
        assert int(reply.json()["paid_total"]) == p.paid, "the node accepted the old-key voucher"
    finally:
        await old_client.close()
        await new_client.close()
        node.stop()
