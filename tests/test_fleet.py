"""Fleet heartbeats: signed, retained, with a signed last will; the fleet view flags the rest."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gateway.cli import main
from gateway.fleet.collect import collect_retained
from gateway.fleet.heartbeat import (
    HEARTBEAT_KIND,
    HeartbeatPublisher,
    encode,
    heartbeat_body,
    offline_body,
    status_topic,
)
from gateway.fleet.view import classify, classify_all, render_table
from gateway.keys import format_gateway_public
from gateway.market.messages import open_signed, seal_signed
from gateway.status import StatusSnapshot
from gateway.testing.broker import Broker, free_port
from tests.conftest import Publisher, write_config

NOW = 1_700_000_000.0


def _snapshot(key: SigningKey, gateway_id: str = "gw-1", readings: int = 42) -> StatusSnapshot:
    return StatusSnapshot(
        gateway_id=gateway_id,
        public_key=format_gateway_public(key.verify_key),
        version="1.0",
        uptime_s=12.7,
        readings_total=readings,
        spool_pending=3,
        batches_sealed=2,
        batches_durable=1,
        quarantined=0,
        backpressure=False,
        ledger_head="bafy2bzaceexampleexampleexampleexample",
        details={
            "clock": {"synced": True},
            "sources": {"mqtt": {"connected": True, "received": 9}},
            "last_error": {"seal": "secret-free text"},
        },
    )


def _beat(key: SigningKey, gateway_id: str = "gw-1", sent_at: float = NOW, **over: Any) -> bytes:
    return encode(heartbeat_body(_snapshot(key, gateway_id), sent_at) | over, key)


# --- pure core and view, no sockets ---------------------------------------------------------


def test_heartbeat_body_is_a_compact_signed_subset_of_status() -> None:
    key = SigningKey.generate()
    body, signer = open_signed(json.loads(_beat(key)), HEARTBEAT_KIND)
    assert bytes(signer) == bytes(key.verify_key)
    assert body["readings_total"] == 42 and body["online"] is True and body["sent_at"] == NOW
    assert body["sources"] == {"mqtt": True} and body["errors"] == ["seal"]
    assert body["clock_synced"] is True and body["uptime_s"] == 12


def test_verified_heartbeat_is_online_then_stale_when_old() -> None:
    key = SigningKey.generate()
    topic = status_topic("gw-1")
    assert classify(topic, _beat(key), NOW + 5, 180).state == "ONLINE"
    stale = classify(topic, _beat(key), NOW + 181, 180)
    assert stale.state == "STALE" and stale.age_s == pytest.approx(181)


def test_signed_offline_message_is_offline() -> None:
    key = SigningKey.generate()
    body = offline_body("gw-1", format_gateway_public(key.verify_key), NOW)
    entry = classify(status_topic("gw-1"), encode(body, key), NOW + 30, 180)
    assert entry.state == "OFFLINE" and entry.age_s == pytest.approx(30)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("signer is not the claimed public_key", None),
        ("body changed after signing", b"tampered"),
        ("gateway_id differs from the topic", b"other-topic"),
        ("not JSON", b"\xff\x00garbage"),
        ("wrong kind", json.dumps({"kind": "depin/ask/v1"}).encode()),
    ],
)
def test_untrusted_heartbeats_are_unsigned(name: str, payload: bytes | None) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    topic = status_topic("gw-1")
    if payload is None:  # forged: signed by one key, claims another
        body = heartbeat_body(_snapshot(other), NOW)
        payload = json.dumps(seal_signed(HEARTBEAT_KIND, body, key)).encode()
    elif payload == b"tampered":
        wire = json.loads(_beat(key))
        wire["body"]["readings_total"] = 10**6
        payload = json.dumps(wire).encode()
    elif payload == b"other-topic":
        topic = status_topic("gw-2")
        payload = _beat(key)
    entry = classify(topic, payload, NOW, 180)
    assert entry.state == "UNSIGNED", name
    assert entry.body == {} and entry.reason


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=512), topic=st.text(max_size=40))
def test_garbage_bytes_never_crash_and_are_unsigned(payload: bytes, topic: str) -> None:
    assert classify(topic, payload, NOW, 180).state == "UNSIGNED"


def _json(ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    floats = st.floats(allow_nan=False, allow_infinity=False)
    leaves = st.none() | st.booleans() | ints | floats | st.text(max_size=8)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )


_SIGNABLE = _json(st.integers(-(2**63), 2**64 - 1))  # DAG-CBOR integers are 64-bit
_ANY_JSON = _json(st.integers())


@settings(max_examples=200, deadline=None)
@given(body=st.dictionaries(st.text(max_size=12), _SIGNABLE, max_size=6), wire=_ANY_JSON)
def test_arbitrary_json_never_crashes_the_view(body: dict[str, Any], wire: Any) -> None:
    """Signed-but-odd bodies and arbitrary JSON documents are classified, and rendered."""
    key = SigningKey.generate()
    signed = json.dumps(seal_signed(HEARTBEAT_KIND, body, key)).encode()
    entries = [
        classify(status_topic("gw-1"), signed, NOW, 180),
        classify(status_topic("gw-1"), json.dumps(wire).encode(), NOW, 180),
    ]
    assert entries[1].state == "UNSIGNED"
    assert all(e.state in {"ONLINE", "OFFLINE", "STALE", "UNSIGNED"} for e in entries)
    render_table(entries)
    json.dumps([e.to_json() for e in entries])


def test_table_shows_state_counters_and_shortened_head() -> None:
    key = SigningKey.generate()
    messages = {status_topic("gw-1"): _beat(key), status_topic("bad"): b"x"}
    table = render_table(classify_all(messages, NOW + 2))
    assert table.splitlines()[0].split()[:3] == ["GATEWAY", "STATE", "READINGS"]
    row = next(line for line in table.splitlines() if line.startswith("gw-1"))
    assert row.split()[1:5] == ["ONLINE", "42", "3", "2/1"] and "bafy2bza..xample" in row
    assert "UNSIGNED" in next(line for line in table.splitlines() if line.startswith("bad"))


def test_publisher_with_broker_down_reports_error_and_stops_fast() -> None:
    """An absent fleet broker never blocks: the error lands in last_error, stop() is quick."""
    key = SigningKey.generate()
    publisher = HeartbeatPublisher(
        f"mqtt://127.0.0.1:{free_port()}", lambda: key, "gw-1", lambda: _snapshot(key), 1.0
    )
    publisher.start()
    deadline = time.monotonic() + 5
    while publisher.last_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publisher.last_error and "fleet broker" in publisher.last_error
    started = time.monotonic()
    publisher.stop()
    assert time.monotonic() - started < 3 and publisher.published == 0


# --- real Mosquitto, real gateway process ---------------------------------------------------


def _fleet(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict[str, Any]]:
    assert main(["fleet", "--broker", url, "--json", *extra]) == 0
    return {row["gateway_id"]: row for row in json.loads(capsys.readouterr().out)}


def _wait_fleet(url: str, capsys: pytest.CaptureFixture[str], gateway: str, want: Any,
                timeout: float = 20) -> dict[str, dict[str, Any]]:  # fmt: skip
    deadline = time.monotonic() + timeout
    rows: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        rows = _fleet(url, capsys)
        if gateway in rows and want(rows[gateway]):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"fleet never showed the expected {gateway}: {rows}")


def test_gateway_heartbeat_will_and_clean_offline(
    tmp_path: Path, broker: Broker, gateway_process: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Retained signed heartbeat -> ONLINE; kill -9 -> signed will -> OFFLINE; restart ->
    ONLINE; clean stop -> signed offline message; forged -> UNSIGNED; old -> STALE."""
    url = f"mqtt://127.0.0.1:{broker.port}"
    extra = f'[fleet]\nbroker = "{url}"\nheartbeat_interval = "1s"'
    gateway = gateway_process(write_config(tmp_path, broker.port, extra))
    gateway.start()
    publisher = Publisher(broker.port)
    publisher.publish_all([("sensors/a", json.dumps({"id": i})) for i in range(5)])
    status = gateway.wait_for(lambda s: s["readings_total"] >= 5, timeout=20)
    assert "fleet" not in status["last_error"]

    rows = _wait_fleet(url, capsys, "test-gw", lambda r: r.get("readings_total", 0) >= 5)
    assert rows["test-gw"]["state"] == "ONLINE"
    assert rows["test-gw"]["public_key"] == status["public_key"]
    retained = collect_retained(url)[status_topic("test-gw")]  # retained, and it verifies
    body, _ = open_signed(json.loads(retained), HEARTBEAT_KIND)
    assert body["gateway_id"] == "test-gw" and body["online"] is True

    forger, victim = SigningKey.generate(), SigningKey.generate()
    forged = seal_signed(HEARTBEAT_KIND, heartbeat_body(_snapshot(victim, "forged"), time.time()),
                         forger)  # fmt: skip
    old = _beat(forger, "old", sent_at=time.time() - 1000)
    publisher.client.publish(status_topic("old"), old, qos=1, retain=True).wait_for_publish(5)
    publisher.client.publish(status_topic("forged"), json.dumps(forged), qos=1,
                             retain=True).wait_for_publish(5)  # fmt: skip
    publisher.close()
    rows = _fleet(url, capsys)
    assert rows["forged"]["state"] == "UNSIGNED" and "readings_total" not in rows["forged"]
    assert rows["old"]["state"] == "STALE"
    assert _fleet(url, capsys, "--stale", "5000")["old"]["state"] == "ONLINE"

    gateway.kill9()  # the socket closes; the broker publishes the signed last will
    rows = _wait_fleet(url, capsys, "test-gw", lambda r: r["state"] == "OFFLINE", timeout=15)
    assert rows["test-gw"]["public_key"] == status["public_key"]

    gateway.start()
    _wait_fleet(url, capsys, "test-gw", lambda r: r["state"] == "ONLINE")
    stopped_at = int(time.time())
    assert gateway.stop() == 0
    rows = _fleet(url, capsys)
    assert rows["test-gw"]["state"] == "OFFLINE"
    assert rows["test-gw"]["since"] >= stopped_at  # the clean-shutdown message, not the will

    assert main(["fleet", "--broker", url]) == 0
    table = capsys.readouterr().out
    assert "OFFLINE" in table and "UNSIGNED" in table and "STALE" in table
