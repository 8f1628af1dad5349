"""Poison payloads against a real Mosquitto and a real gateway: quarantined, acked, ingest goes on.

Issue 8 item 4: ``'[' * 1000 + ']' * 1000`` at QoS 1 raised a RecursionError in paho's thread, so
no later reading was made durable and the unacked poison came back after every restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gateway.testing.broker import Broker
from tests.conftest import GatewayProcess, Publisher, restore, write_config

DEEP = b"[" * 1000 + b"]" * 1000
# (topic, payload, reason): sensors/# is a json topic, raw/# an ``any`` topic (conftest config).
POISON = [
    ("sensors/a", DEEP, "too_deep"),
    ("sensors/a", b'{"a":' * 1000 + b"1" + b"}" * 1000, "too_deep"),
    ("sensors/a", b"[" * 100_000, "too_deep"),
    ("raw/a", b'{"id":1,"x":' + DEEP + b"}", "too_deep"),
    ("raw/a", b'{"x":' + DEEP + b',"seq":7}', "too_deep"),
    ("sensors/a", b'{"n":' + b"9" * 5000 + b"}", "number_too_long"),
    ("sensors/a", b'{"s":"\\ud800"}', "invalid_unicode"),
]


def _good(i: int) -> tuple[str, bytes]:
    topic = "sensors/a" if i % 2 else "raw/a"
    return topic, json.dumps({"id": i, "t": 20 + i / 10}).encode()


def test_poison_is_quarantined_and_acked_and_good_readings_are_restored_once(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    good = [_good(i) for i in range(40)]
    # Poison first, then good readings behind it: before the fix none of these became durable.
    messages: list[tuple[str, bytes]] = [(t, p) for t, p, _ in POISON] + good[:20]
    publisher.publish_all(list(messages))
    expected: dict[str, int] = {}
    for _, _, reason in POISON:
        expected[reason] = expected.get(reason, 0) + 1
    status = gw.wait_for(
        lambda s: s["readings_total"] == 20 and s["quarantined"] == len(POISON), timeout=60
    )
    assert status["quarantine"]["by_reason"] == expected
    assert status["sources"]["mqtt"]["connected"] is True
    gw.stop()

    # After a restart the broker resends unacked messages before new ones (MQTT 5 section 4.6),
    # so once the readings published after the restart are durable, a poison that was never
    # acked would already have been counted again.
    gw.start()
    before = gw.status()["readings_total"]  # durable in the spool, over all runs
    publisher.publish_all(list(good[20:]))
    status = gw.wait_for(lambda s: s["readings_total"] == before + 20, timeout=60)
    assert status["quarantined"] == 0, "a quarantined poison was redelivered: it was not acked"
    gw.stop()

    rows = restore(config, tmp_path / "out.jsonl")
    restored = sorted((row["topic"], str(row["payload"])) for row in rows)
    assert restored == sorted((t, p.decode()) for t, p in good), "each good reading exactly once"
    publisher.close()
