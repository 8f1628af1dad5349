"""Nothing acknowledged is lost: kill -9 at random moments, and a full disk budget."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.testing.broker import Broker
from tests.conftest import GatewayProcess, Publisher, restore, write_config


def test_kill9_three_times_mid_stream_restores_every_id_exactly_once(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    total = 20_000
    config = write_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    finished = threading.Event()

    def publish() -> None:
        # ~5 s of traffic so the kills land mid-stream; every message is PUBACKed by the broker.
        for start in range(0, total, 500):
            batch = [
                ("sensors/kill", json.dumps({"id": i, "v": random.random()}))
                for i in range(start, start + 500)
            ]
            publisher.publish_all(batch)
            time.sleep(0.12)
        finished.set()

    thread = threading.Thread(target=publish)
    thread.start()
    kills = 0
    rng = random.Random()
    while not finished.is_set() or kills < 3:
        time.sleep(rng.uniform(0.2, 1.2))
        gw.kill9()
        kills += 1
        time.sleep(rng.uniform(0.0, 0.3))
        gw.start()
    thread.join()
    gw.wait_for(lambda s: s["readings_total"] >= total, timeout=120)
    assert gw.stop() == 0
    ids = [json.loads(row["payload"])["id"] for row in restore(config, tmp_path / "out.jsonl")]
    assert kills >= 3
    assert len(ids) == total, f"{len(ids) - len(set(ids))} duplicates, {total - len(set(ids))} lost"
    assert set(ids) == set(range(total))
    publisher.close()


def test_disk_budget_applies_backpressure_then_every_reading_arrives(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    small = {"disk_budget": "96KiB", "high_watermark": 0.9, "low_watermark": 0.5}
    config = write_config(tmp_path, broker.port, **small)
    text = config.read_text().replace('segment_size = "1MiB"', 'segment_size = "8KiB"')
    # The quarantine is part of the budget, so it must fit in it (a config rule).
    config.write_text(text.replace("[mqtt]\n", '[mqtt]\nquarantine_size = "16KiB"\n'))
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    total = 3000  # ~150 bytes on disk each: four times the budget
    payload = "x" * 60
    publisher.publish_all(
        [("sensors/b", json.dumps({"id": i, "pad": payload})) for i in range(total)]
    )
    status = gw.wait_for(lambda s: s["backpressure"] is True)
    time.sleep(1.0)
    status = gw.status()
    held = status["readings_total"]
    assert 0 < held < total, "acks stopped at the budget; the broker holds the rest"
    assert status["disk"]["used"] <= 96 * 1024 + 16 * 1024, (
        "the budget is honoured (one group over at most)"
    )
    assert status["quarantined"] == 0, "nothing was dropped or diverted"
    gw.stop()
    # The operator makes room (here: a larger budget); nothing was lost meanwhile.
    config.write_text(config.read_text().replace('"96KiB"', '"64MiB"'))
    gw.start()
    status = gw.wait_for(lambda s: s["readings_total"] == total and not s["backpressure"])
    gw.stop()
    ids = [json.loads(row["payload"])["id"] for row in restore(config, tmp_path / "out.jsonl")]
    assert sorted(ids) == list(range(total))
    publisher.close()
