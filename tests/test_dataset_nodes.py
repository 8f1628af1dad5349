"""Dataset export of batches whose local fragments were evicted: fetched back from real nodes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from gateway.testing.broker import Broker
from tests.conftest import GatewayProcess, Publisher, restore, write_config
from tests.dataset_support import cli
from tests.test_deals_e2e import NodeProcess, node_factory  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow


def test_an_export_of_evicted_batches_fetches_them_from_the_nodes_and_verifies(
    tmp_path: Path,
    broker: Broker,
    node_factory: Callable[[int], NodeProcess],  # noqa: F811
    gateway_process: Callable[[Path], GatewayProcess],
) -> None:
    nodes = [node_factory(broker.port) for _ in range(6)]
    extra = "\n".join(
        [
            "[batch]",
            "max_readings = 40",
            'max_age = "1s"',
            "[storage]",
            f"nodes = {json.dumps([n.url for n in nodes])}",
            'deal_duration = "1d"',
            'request_timeout = "2s"',
            "[proving]",
            'interval = "1s"',
        ]
    )
    config = write_config(tmp_path, broker.port, extra)
    gateway = gateway_process(config)
    gateway.start()
    sent = [(f"sensors/room{i % 3}", json.dumps({"id": f"r{i}", "t": i % 7})) for i in range(160)]
    publisher = Publisher(broker.port)
    publisher.publish_all(sent)
    publisher.close()

    def evicted(status: dict[str, Any]) -> bool:
        storage = status["storage"]
        return (
            status["readings_total"] == len(sent)
            and status["spool_pending"] == 0
            and status["batches_sealed"] >= 4
            and storage["batches_evicted"] == status["batches_sealed"]
        )

    status = gateway.wait_for(evicted, timeout=60)
    assert gateway.stop() == 0
    assert not list((tmp_path / "state" / "vault").rglob("frag-*.bin")), "all evicted"
    out = tmp_path / "ds"
    done = cli("dataset", "export", "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = sorted(
        (r for p in sorted(out.rglob("*.parquet")) for r in pq.read_table(p).to_pylist()),
        key=lambda r: r["seq"],
    )
    lines = restore(config, tmp_path / "restore.jsonl")
    assert [r["payload"] for r in rows] == [line["payload"].encode() for line in lines]
    assert {r["batch_seq"] for r in rows} == set(range(status["batches_sealed"]))
    checked = cli("dataset", "verify", str(out), "--gateway-key", status["public_key"])
    assert checked.returncode == 0, checked.stdout
    assert f"{status['batches_sealed']} whole batches re-encoded" in checked.stdout
