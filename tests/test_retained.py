"""Retained readings against a real Mosquitto: kept once, not again after every restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gateway.testing.broker import Broker
from tests.conftest import GatewayProcess, Publisher, restore, write_config


def test_a_retained_reading_without_id_is_restored_once_across_three_restarts(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    publisher = Publisher(broker.port)
    # Retained before the gateway ever subscribed: for its first subscription it is a reading.
    publisher.client.publish(
        "sensors/door", b'{"open": true}', qos=1, retain=True
    ).wait_for_publish(timeout=30)
    gw = gateway_process(config)
    gw.start()
    gw.wait_for(lambda s: s["readings_total"] == 1)
    for restart in range(3):
        gw.stop()
        gw.start()
        # The broker sends retained messages in SUBACK order, before any later publish: once
        # this marker is durable, a resent retained copy would have been too.
        marker = json.dumps({"marker": restart})
        publisher.publish_all([("raw/marker", marker)])
        gw.wait_for(lambda s, m=restart: s["readings_total"] - s["duplicates_dropped"] >= m + 2)
        status = gw.status()
        # Kept as a reading exactly once; a resend (if the broker makes one) is dropped as
        # a redelivery: every received retained copy is either the reading or a duplicate.
        assert status["readings_total"] == restart + 2, status
    gw.stop()
    rows = restore(config, tmp_path / "out.jsonl")
    assert [r["payload"] for r in rows if r["topic"] == "sensors/door"] == ['{"open": true}']
    assert [r["topic"] for r in rows].count("raw/marker") == 3
    publisher.close()


def test_a_retained_delivery_of_bytes_already_seen_is_dropped_as_a_redelivery(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    """A new subscription (here: a topic rule added in the config) gets the retained copy of a
    reading the gateway already holds live: it is a redelivery, not a new reading."""
    config = write_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    publisher.client.publish("raw/state", b"on", qos=1, retain=True).wait_for_publish(timeout=30)
    gw.wait_for(lambda s: s["readings_total"] == 1)
    gw.stop()
    text = config.read_text().replace(
        '{filter = "raw/#"}', '{filter = "raw/#"}, {filter = "raw/state"}'
    )
    config.write_text(text)
    gw.start()
    gw.wait_for(lambda s: s["duplicates_dropped"] >= 1)
    publisher.publish_all([("raw/marker", b"after")])
    status = gw.wait_for(lambda s: s["readings_total"] >= 2)
    assert status["readings_total"] == 2
    gw.stop()
    rows = restore(config, tmp_path / "out.jsonl")
    assert [r["payload"] for r in rows] == ["on", "after"]
    publisher.close()
