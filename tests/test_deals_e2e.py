"""The whole storage path with real processes: Mosquitto, six storage nodes, the gateway daemon.

Readings flow in over MQTT, batches are placed on the nodes and proven (``batches_durable``);
two nodes are killed (kill -9) and their disks deleted; repair restores full redundancy on the
four survivors and two new nodes found through their signed asks on the fleet broker; then the
gateway's state directory is deleted and ``restore --from-network`` returns every reading
exactly once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.testing.broker import Broker
from gateway.testing.nodes import DemoNode
from tests.conftest import ROOT, GatewayProcess, Publisher, write_config

pytestmark = pytest.mark.slow


class NodeProcess(DemoNode):
    """A storage node process for this test (no rate limits: the test hammers it)."""

    def __init__(self, directory: Path, broker_port: int) -> None:
        super().__init__(directory, broker_port, rate_requests=100000, rate_burst=100000,
                         announce_interval="1s")  # fmt: skip


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[[int], NodeProcess]]:
    started: list[NodeProcess] = []

    def make(broker_port: int) -> NodeProcess:
        node = NodeProcess(tmp_path / f"node{len(started)}", broker_port)
        node.start()
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def _storage(status: dict[str, Any]) -> dict[str, Any]:
    storage: dict[str, Any] = status["storage"]
    return storage


def test_six_nodes_survive_two_losses_and_restore_from_the_network_alone(
    tmp_path: Path,
    broker: Broker,
    node_factory: Callable[[int], NodeProcess],
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    nodes = [node_factory(broker.port) for _ in range(6)]
    extra = "\n".join(
        [
            "[batch]",
            "max_readings = 60",
            'max_age = "1s"',
            "[storage]",
            f"nodes = {json.dumps([n.url for n in nodes])}",
            'deal_duration = "1d"',
            'request_timeout = "2s"',
            "[proving]",
            'interval = "1s"',
            "[fleet]",
            f'broker = "mqtt://127.0.0.1:{broker.port}"',
        ]
    )
    config = write_config(tmp_path, broker.port, extra)
    gateway = gateway_process(config)
    gateway.start()
    sent = [
        (f"sensors/room{i % 4}", json.dumps({"id": f"r{i}", "t": 20 + i % 7, "i": i}))
        for i in range(300)
    ]
    publisher = Publisher(broker.port)
    publisher.publish_all(sent)
    publisher.close()

    def durable(status: dict[str, Any]) -> bool:
        storage = _storage(status)
        return (
            status["readings_total"] == len(sent)
            and status["spool_pending"] == 0
            and status["batches_sealed"] >= 5
            and status["batches_durable"] == status["batches_sealed"]
            and storage["ledger_head_batches"] == status["batches_sealed"]
        )

    status = gateway.wait_for(durable, timeout=40)
    shown = _cli("status", "--config", str(config))
    assert f"ledger    head {status['ledger_head']}" in shown.stdout
    batches = status["batches_sealed"]
    assert status["ledger_head"] == _storage(status)["ledger_head"]
    assert _storage(status)["batches_evicted"] == batches  # proven -> local copy released
    # A plain local restore still works: evicted fragments come back from the nodes.
    evicted = _cli("restore", "--config", str(config), "--out", str(tmp_path / "local.jsonl"))
    assert f"restored {len(sent)} readings from {batches} batches" in evicted.stderr
    public_key = status["public_key"]
    first_head = status["ledger_head"]

    # Two nodes die with their disks; two new nodes announce themselves on the broker.
    for node in nodes[:2]:
        node.kill9()
        shutil.rmtree(node.data_dir)
    newcomers = [node_factory(broker.port) for _ in range(2)]
    alive = nodes[2:] + newcomers
    alive_urls = {n.url for n in alive}

    def repaired(status: dict[str, Any]) -> bool:
        storage = _storage(status)
        placed = {
            n["url"].rstrip("/") for n in storage["nodes"] if n["placements"] and n["reachable"]
        }
        return (
            storage["repairs"] >= 2
            and storage["batches_fully_redundant"] == batches
            and status["batches_durable"] == batches
            and status["ledger_head"] != first_head
            and storage["placements"].get("repairing", 0) == 0
            and {n.url for n in newcomers} <= placed
        )

    status = gateway.wait_for(repaired, timeout=45)
    bad = [n for n in _storage(status)["nodes"] if n["url"] not in alive_urls]
    assert all(n["proofs_failed"] >= 2 for n in bad)
    head = status["ledger_head"]
    assert gateway.stop() == 0

    # With the state directory still there, --config supplies the key, head and nodes.
    local = _cli(
        "restore",
        "--from-network",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "from-config.jsonl"),
    )
    assert f"restored {len(sent)} readings from {batches} batches" in local.stderr

    # The gateway's disk is gone; only the owner's key survives (kept elsewhere).
    owner_key = tmp_path / "owner-backup.key"
    shutil.copy(tmp_path / "state" / "owner.key", owner_key)
    shutil.rmtree(tmp_path / "state")
    out = tmp_path / "restored.jsonl"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "restore",
            "--from-network",
            "--gateway-key",
            public_key,
            "--head",
            head,
            "--nodes",
            ",".join(sorted(alive_urls)),
            "--owner-key",
            str(owner_key),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["payload"] for line in lines) == sorted(payload for _, payload in sent)
    assert len({line["payload"] for line in lines}) == len(sent)
    assert {line["batch"] for line in lines} == set(range(batches))
