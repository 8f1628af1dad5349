"""MQTT ingest against a real Mosquitto: durable before ack, bad input quarantined, restarts."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.testing.broker import Broker
from tests.conftest import GatewayProcess, Publisher, restore, write_config


def _ids(rows: list[dict[str, object]]) -> list[int]:
    return [json.loads(str(row["payload"]))["id"] for row in rows if row["topic"] != "raw/bin"]


def test_readings_are_restored_byte_exact_with_receive_metadata(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    sent = [json.dumps({"id": i, "t": round(random.uniform(-20, 40), 2)}) for i in range(500)]
    publisher.publish_all([("sensors/room1/temp", p) for p in sent])
    binary = bytes(range(256))
    publisher.publish_all([("raw/bin", binary)])
    gw.wait_for(lambda s: s["readings_total"] == 501)
    status = gw.status()
    assert status["spool_pending"] == 501
    assert status["sources"]["mqtt"]["connected"] is True
    assert status["disk"]["bytes_written"] > 0
    gw.stop()
    rows = restore(config, tmp_path / "out.jsonl")
    assert [r["payload"] for r in rows if r["topic"] != "raw/bin"] == sent
    assert next(r for r in rows if r["topic"] == "raw/bin")["payload"] == {
        "b64": __import__("base64").b64encode(binary).decode()
    }
    assert all(r["source"] == "mqtt" and r["received_at"].endswith("Z") for r in rows)
    publisher.close()


def test_bad_input_is_quarantined_counted_and_acked(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    text = config.read_text().replace("[mqtt]", '[mqtt]\nmax_payload = "1KiB"')
    # Wildcard-heavy subscriptions next to the JSON rule; odd but valid topic names below.
    text = text.replace('{filter = "raw/#"}', '{filter = "raw/#"}, {filter = "+/+/+/#"}')
    config.write_text(text)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    bad = [
        ("sensors/a", b"x" * 5000),  # oversized
        ("sensors/a", b"\xff\xfe\xfd"),  # not UTF-8
        ("sensors/a", b"{not json"),  # invalid JSON
        ("sensors/a", b""),  # empty
    ]
    odd_topics = [
        "sensors/" + "/".join(["deep"] * 200),
        "sensors/ünï cödé/ spaces ",
        "sensors//empty//levels/",
        "sensors/$sys-like/x",
    ]
    good = [
        (odd_topics[i % 4] if i % 3 == 0 else "sensors/a", json.dumps({"id": i}).encode())
        for i in range(20)
    ]
    messages = [m for pair in zip(good, bad + [None] * 20, strict=False) for m in pair if m]
    publisher.publish_all(messages)
    status = gw.wait_for(lambda s: s["readings_total"] == 20 and s["quarantined"] >= 4)
    reasons = status["quarantine"]["by_reason"]
    assert reasons == {"oversized": 1, "not_utf8": 1, "invalid_json": 1, "empty": 1}
    assert status["sources"]["mqtt"]["rejected"] == reasons
    gw.stop()
    gw.start()  # acked poison messages are not redelivered: nothing blocks the queue
    time.sleep(1.0)
    assert gw.status()["quarantined"] == 0, "counters are per run; nothing came back"
    rows = restore(config, tmp_path / "out.jsonl")
    assert sorted(_ids(rows)) == list(range(20)), "overlapping filters deliver each message once"
    assert {r["topic"] for r in rows} == {"sensors/a", *odd_topics}
    publisher.close()


def test_gateway_down_broker_keeps_messages_for_the_persistent_session(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    gw.stop()  # session now exists on the broker
    publisher = Publisher(broker.port)
    publisher.publish_all([("sensors/a", json.dumps({"id": i})) for i in range(3000)])
    gw.start()
    gw.wait_for(lambda s: s["readings_total"] == 3000)
    gw.stop()
    assert sorted(_ids(restore(config, tmp_path / "o.jsonl"))) == list(range(3000))
    publisher.close()


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    total = 4000
    done = threading.Event()

    def publish() -> None:
        # Reconnects by itself; retries unacked messages after the broker comes back.
        publisher = Publisher(broker.port, client_id="restart-publisher")
        for i in range(total):
            while True:
                info = publisher.publish("sensors/a", json.dumps({"id": i}))
                if info.rc == 0:
                    break
                time.sleep(0.05)
            if i % 200 == 0:
                time.sleep(0.05)
        deadline = time.monotonic() + 60
        while publisher.client.want_write() or publisher.client._out_messages:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        publisher.close()
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    for connects in (2, 3):
        time.sleep(0.3)
        broker.restart()
        gw.wait_for(lambda s, n=connects: s["sources"]["mqtt"]["connects"] == n)
    thread.join(120)
    assert done.is_set()
    status = gw.wait_for(
        lambda s: s["readings_total"] >= total and s["sources"]["mqtt"]["connected"]
    )
    assert status["sources"]["mqtt"]["connects"] >= 3, "it reconnected by itself"
    gw.stop()
    ids = _ids(restore(config, tmp_path / "o.jsonl"))
    assert sorted(set(ids)) == list(range(total))
    assert len(ids) == total, "redeliveries after the restarts are not duplicated"
