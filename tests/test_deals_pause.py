"""A storage node paused with SIGSTOP loses its reputation, and earns a second chance once it
answers again after SIGCONT (issue 8 item 13): it used to stay at 0 for good, since a banned node
gets no placement that could ever pass a proof."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.config import Config, config_from_string
from gateway.deals import StorageService
from gateway.deals.reputation import BANNED, PROBATION
from gateway.keys import create_owner_key, format_owner_public
from gateway.seal import Vault, seal_batch
from gateway.seal.synthetic import SensorFleet
from gateway.testing.broker import Broker
from gateway.testing.nodes import DemoNode

IDENTITY = SigningKey(b"\x16" * 32)


@pytest.fixture
def nodes(tmp_path: Path, broker: Broker) -> Iterator[list[DemoNode]]:
    started: list[DemoNode] = []
    for i in range(4):
        node = DemoNode(tmp_path / f"node{i}", broker.port, rate_requests=100000,
                        rate_burst=100000, announce_interval="1s")  # fmt: skip
        node.start()
        started.append(node)
    yield started
    for node in started:
        if node.process is not None:
            os.kill(node.process.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        node.stop()


def _config(tmp_path: Path, urls: list[str], owner: PrivateKey) -> Config:
    storage = {"nodes": urls, "deal_duration": "1d", "request_timeout": "1s", "repair_after": 2}
    return config_from_string(
        "\n".join(
            [
                "[gateway]",
                f'state_dir = "{tmp_path / "state"}"',
                "[owner]",
                f'public_keys = ["{format_owner_public(owner.public_key)}"]',
                "[storage]",
                *(f"{k} = {json.dumps(v)}" for k, v in storage.items()),
                "[proving]",
                'interval = "1s"',
                "challenges = 2",
            ]
        )
    )


def _wait(service: StorageService, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stats = service.stats()
        if predicate(stats):
            return stats
        time.sleep(0.2)
    last = json.dumps(service.stats(), default=str)[:3000]
    raise AssertionError(f"timed out; last stats: {last}")


def _node(stats: dict[str, Any], url: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(n for n in stats["nodes"] if n["url"].rstrip("/") == url)
    return entry


def test_a_paused_node_regains_a_usable_reputation_after_it_answers_again(
    tmp_path: Path, nodes: list[DemoNode], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    owner = create_owner_key(tmp_path / "owner.key")
    config = _config(tmp_path, [n.url for n in nodes], owner)
    vault = Vault(config.state_dir)
    fleet = SensorFleet(seed=5)
    for _ in range(4):  # about three placements per node: enough failures to ban it
        head = vault.head()
        batch = seal_batch(
            fleet.readings(20),
            identity=IDENTITY,
            owners=[owner.public_key],
            seq=vault.next_seq(),
            prev=head[1] if head else None,
            k=2,
            m=1,
        )
        vault.put(batch)
    service = StorageService(config, vault, IDENTITY)
    service.start()
    try:
        _wait(service, lambda s: s["batches_durable"] == 4)
        provider = next(p.provider for p in service.book.placements.values() if p.held)
        paused = next(n for n in nodes if _node(service.stats(), n.url)["provider"] == provider)
        assert paused.process is not None
        os.kill(paused.process.pid, signal.SIGSTOP)
        try:
            # Banned, and its fragments repaired onto the others: nothing would ever prove again.
            _wait(
                service,
                lambda s: (
                    _node(s, paused.url)["reputation"] < BANNED
                    and _node(s, paused.url)["placements"] == 0
                ),
            )
        finally:
            os.kill(paused.process.pid, signal.SIGCONT)
        stats = _wait(service, lambda s: _node(s, paused.url)["reputation"] >= PROBATION)
        assert _node(stats, paused.url)["reachable"] is True
    finally:
        service.stop()
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert tracebacks == [], "no placement or round failed with a traceback"
