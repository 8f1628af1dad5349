"""Pinned gateway keys: trust on first use and allow-lists; a forger never shows as ONLINE."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.fleet.heartbeat import encode, heartbeat_body, offline_body, status_topic
from gateway.fleet.monitor import FleetMonitor
from gateway.fleet.pins import KeyPins, parse_allow_list
from gateway.fleet.view import classify
from gateway.keys import format_gateway_public
from gateway.status import StatusSnapshot
from gateway.testing.broker import Broker
from tests.conftest import Publisher

NOW = 1_700_000_000.0


def _beat(key: SigningKey, gateway_id: str = "pi-1", sent_at: float = NOW, readings: int = 7
          ) -> bytes:  # fmt: skip
    snap = StatusSnapshot(gateway_id, format_gateway_public(key.verify_key), "1", 1.0, readings,
                          0, 0, 0, 0, False, None, {})  # fmt: skip
    return encode(heartbeat_body(snap, sent_at), key)


def _pub(key: SigningKey) -> str:
    return format_gateway_public(key.verify_key)


def test_first_key_is_pinned_and_persisted_a_second_key_is_key_changed(tmp_path: Path) -> None:
    real, forger = SigningKey.generate(), SigningKey.generate()
    state = tmp_path / "pins.json"
    pins = KeyPins.trust_on_first_use(state)
    first = pins.apply(classify(status_topic("pi-1"), _beat(real), NOW, 180))
    assert first.state == "ONLINE" and first.pinned_key == _pub(real)
    assert json.loads(state.read_text()) == {"version": 1, "pins": {"pi-1": _pub(real)}}

    again = KeyPins.trust_on_first_use(state)  # a new process reads the same pins
    forged = again.apply(classify(status_topic("pi-1"), _beat(forger, readings=10**6), NOW, 180))
    assert forged.state == "KEY CHANGED" and forged.pinned_key == _pub(real)
    assert dict(forged.body) == {"public_key": _pub(forger)}  # the forger's counters are dropped
    offline = encode(offline_body("pi-1", _pub(forger), NOW), forger)
    assert again.apply(classify(status_topic("pi-1"), offline, NOW, 180)).state == "KEY CHANGED"


def test_allow_list_rejects_unknown_ids_and_other_keys(tmp_path: Path) -> None:
    real, other = SigningKey.generate(), SigningKey.generate()
    keys = tmp_path / "keys"
    keys.write_text(f"# fleet allow-list\npi-1 {_pub(real)}  # the greenhouse\n\n")
    pins = KeyPins.allow_list(keys)
    assert pins.apply(classify(status_topic("pi-1"), _beat(real), NOW, 180)).state == "ONLINE"
    assert pins.apply(classify(status_topic("pi-1"), _beat(other), NOW, 180)).state == (
        "KEY CHANGED"
    )
    unknown = pins.apply(classify(status_topic("pi-2"), _beat(other, "pi-2"), NOW, 180))
    assert unknown.state == "UNSIGNED" and "not in --keys" in unknown.reason
    assert not (tmp_path / "xdg-state").exists()  # an allow-list is never written


@pytest.mark.parametrize(
    ("text", "problem"),
    [("pi-1", "expected"), ("pi-1 ed25519:zz", "not an ed25519"), ("a b c", "expected")],
)
def test_bad_allow_list_lines_are_one_clear_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_allow_list(text, "keys.txt")


def test_bad_pins_file_is_one_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "pins.json"
    state.write_text('{"version": 1, "pins": ["not a map"]}')
    with pytest.raises(ConfigError, match="not a fleet pins file"):
        KeyPins.trust_on_first_use(state)


def test_monitor_keeps_a_key_change_banner_after_the_real_gateway_returns(tmp_path: Path) -> None:
    real, forger = SigningKey.generate(), SigningKey.generate()
    clock = [NOW]
    monitor = FleetMonitor(KeyPins.trust_on_first_use(tmp_path / "p.json"), 180, "mqtt://b:1",
                           clock=lambda: clock[0])  # fmt: skip
    topic = status_topic("pi-1")
    monitor.receive(topic, _beat(real, sent_at=NOW, readings=0))
    clock[0] += 10
    monitor.receive(topic, _beat(real, sent_at=NOW + 10, readings=50))
    monitor.receive(topic, _beat(forger, sent_at=NOW + 11, readings=10**9))
    report = monitor.report()
    assert report["gateways"][0]["state"] == "KEY CHANGED"
    assert report["gateways"][0]["readings_per_s"] is None
    clock[0] += 10
    monitor.receive(topic, _beat(real, sent_at=NOW + 20, readings=100))
    report = monitor.report()
    row = report["gateways"][0]
    assert row["state"] == "ONLINE" and row["readings_per_s"] == 5.0  # the forgery drew nothing
    assert [a["public_key"] for a in report["key_changes"]] == [_pub(forger)]


def _fleet_json(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["fleet", "--broker", url, "--json", *extra]) == 0
    out = capsys.readouterr()
    rows = {row["gateway_id"]: row for row in json.loads(out.out)}
    return {"rows": rows, "stderr": out.err}


@pytest.mark.slow
def test_forged_heartbeat_on_a_real_broker_is_key_changed_never_online(
    tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str], fleet_server: Any
) -> None:
    """Real Mosquitto: a retained forgery for a pinned gateway is KEY CHANGED in `fleet --json`
    (with a warning on stderr), in `fleet --serve`'s /fleet.json, and against an allow-list."""
    url = f"mqtt://127.0.0.1:{broker.port}"
    real, forger = SigningKey.generate(), SigningKey.generate()
    pins = str(tmp_path / "pins.json")
    publisher = Publisher(broker.port)
    try:
        topic = status_topic("pi-1")
        publisher.client.publish(topic, _beat(real, sent_at=time.time()), qos=1,
                                 retain=True).wait_for_publish(5)  # fmt: skip
        assert _fleet_json(url, capsys, "--pins", pins)["rows"]["pi-1"]["state"] == "ONLINE"
        server = fleet_server(url, tmp_path, "--pins", pins)
        publisher.client.publish(topic, _beat(forger, sent_at=time.time()), qos=1,
                                 retain=True).wait_for_publish(5)  # fmt: skip
        seen = _fleet_json(url, capsys, "--pins", pins)
        assert seen["rows"]["pi-1"]["state"] == "KEY CHANGED"
        assert "readings_total" not in seen["rows"]["pi-1"]
        assert "WARNING: KEY CHANGED for pi-1" in seen["stderr"]
        deadline = time.monotonic() + 10
        while not (report := server.report())["key_changes"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert report["gateways"][0]["state"] == "KEY CHANGED"
        assert report["key_changes"][0]["public_key"] == _pub(forger)
        keys = tmp_path / "keys"
        keys.write_text(f"pi-1 {_pub(real)}\n")
        state = _fleet_json(url, capsys, "--keys", str(keys))["rows"]["pi-1"]["state"]
        assert state == "KEY CHANGED"
        assert server.stop() == 0
    finally:
        publisher.close()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--listen", "127.0.0.1:8788"], "--listen needs --serve"),
        (["--serve", "--listen", "h:99999"], "--listen"),
        (["--keys", "{d}/missing"], "is not a file"),
        (["--keys", "{d}/k", "--pins", "{d}/p"], "exclude each other"),
        (["--pins", "{d}"], "is a directory"),
        (["--keys", "{d}/bad"], "line 1"),
    ],
)
def test_fleet_argument_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], problem: str
) -> None:
    (tmp_path / "k").write_text("")
    (tmp_path / "bad").write_text("pi-1 not-a-key\n")
    argv = ["fleet", "--broker", "mqtt://127.0.0.1:1"] + [a.format(d=tmp_path) for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1, err
