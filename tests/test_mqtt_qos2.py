"""QoS 2 end to end with our own client against a real Mosquitto: PUBREC only after the fsync
(tests/test_ack_after_fsync.py checks that from a trace), PUBREL answered with PUBCOMP so the
broker's window keeps moving, and exactly once in the restored data across a kill -9."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from gateway.testing.broker import Broker
from tests.conftest import GatewayProcess, Publisher, restore, write_config


def _qos2_config(tmp_path: Path, port: int) -> Path:
    config = write_config(tmp_path, port)
    # A window of 20: without PUBCOMP for each PUBREL the broker would stop after 20 messages.
    text = config.read_text().replace("[mqtt]\n", "[mqtt]\nqos = 2\nreceive_maximum = 20\n")
    config.write_text(text)
    return config


def test_qos2_flows_through_a_small_window_and_is_restored_once(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = _qos2_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    sent = [json.dumps({"id": i}) for i in range(300)]
    publisher.publish_all([("sensors/q2", p) for p in sent], qos=2)
    gw.wait_for(lambda s: s["readings_total"] == 300, timeout=60)
    assert gw.stop() == 0
    rows = restore(config, tmp_path / "out.jsonl")
    assert [json.loads(str(r["payload"]))["id"] for r in rows] == list(range(300))
    publisher.close()


def test_qos2_across_a_kill_minus_9_is_exactly_once(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    """Killed while QoS 2 messages are between PUBLISH, PUBREC and PUBREL: after a restart the
    broker resends what we had not PUBREC'd and PUBRELs the rest; each reading appears once."""
    config = _qos2_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    sent = [json.dumps({"id": i, "v": "x" * 30}) for i in range(600)]
    for info in [publisher.publish("sensors/q2", p, qos=2) for p in sent[:300]]:
        info.wait_for_publish(timeout=60)
    gw.wait_for(lambda s: s["readings_total"] >= 100, timeout=60)
    assert gw.process is not None
    os.kill(gw.process.pid, signal.SIGKILL)
    gw.process.wait(timeout=30)
    gw.process = None
    publisher.publish_all([("sensors/q2", p) for p in sent[300:]], qos=2)
    gw.start()
    gw.wait_for(lambda s: s["readings_total"] >= 600, timeout=60)
    assert gw.stop() == 0
    rows = restore(config, tmp_path / "out.jsonl")
    assert sorted(json.loads(str(r["payload"]))["id"] for r in rows) == list(range(600))
    publisher.close()
