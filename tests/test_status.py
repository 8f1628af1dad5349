"""Status snapshots are composed of typed values and render as JSON with the stable fields and as
Prometheus text; the deal service's stats dict becomes a typed value with nothing lost."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import gateway.status as status_module
from gateway.config import load_config
from gateway.daemon import Gateway
from gateway.daemon.snapshot import disk_status, seal_backoff_status, storage_status
from gateway.fleet import heartbeat_body
from gateway.ingest.budget import BudgetState
from gateway.keys import load_identity, load_owner_secret
from gateway.seal.batcher import SealBackoff
from gateway.status import Health, StatusSnapshot
from gateway.status.prometheus import prometheus_text
from gateway.status.sections import as_json
from gateway.testing.broker import free_port
from tests.conftest import write_config
from tests.status_support import STORAGE, make_snapshot
from tests.test_status_shape import SEAL_BACKOFF, mismatches
from tests.test_status_shape import STORAGE as STORAGE_SHAPE

STABLE = [
    "gateway_id",
    "public_key",
    "version",
    "uptime_s",
    "readings_total",
    "spool_pending",
    "batches_sealed",
    "batches_durable",
    "quarantined",
    "backpressure",
    "ledger_head",
]


def test_json_keeps_the_stable_top_level_fields_first_read_from_the_components() -> None:
    data = make_snapshot().to_json()
    assert list(data)[:11] == STABLE
    assert [data[k] for k in STABLE[4:]] == [100, 40, 3, 2, 1, True, "bafk..."]
    assert data["disk"]["bytes_written"] == 30
    assert "backpressure" not in data["disk"] and "batches_sealed" not in data["seal"]


def test_disabled_seal_and_storage_read_enabled_false() -> None:
    data = make_snapshot(seal=None, storage=None).to_json()
    assert data["seal"] == {"enabled": False} and data["storage"] == {"enabled": False}
    assert (data["batches_sealed"], data["batches_durable"], data["ledger_head"]) == (0, 0, None)


def test_prometheus_text_covers_ingest_disk_sources_and_storage() -> None:
    text = prometheus_text(make_snapshot()).decode()
    expected = (
        "depin_gateway_readings_total 100.0",
        "depin_gateway_backpressure 1.0",
        "depin_gateway_disk_written_bytes_total 30.0",
        'depin_gateway_source_received_total{source="mqtt"} 7.0',
        'depin_gateway_storage_node_proofs_total{node="http://n1",result="failed"} 1.0',
        "depin_gateway_repairs_total 2.0",
        "depin_gateway_fil_committed_attofil 1e+19",
        "depin_gateway_fragments_proven 6.0",
    )
    for line in expected:
        assert line in text, line
    assert (
        "depin_gateway_storage_node_proofs"
        not in prometheus_text(make_snapshot(storage=None)).decode()
    )


def test_health_is_in_the_json_after_the_stable_fields() -> None:
    data = make_snapshot().to_json()
    assert list(data)[11:13] == ["healthy", "degraded"]
    assert data["healthy"] is True and data["degraded"] == []


def test_healthz_says_which_component_stopped_and_why() -> None:
    snap = make_snapshot(health=Health(stopped={"mqtt": "thread paho died: ValueError: x"}))
    assert snap.healthz() == (503, "unhealthy: mqtt: thread paho died: ValueError: x")
    assert snap.to_json()["healthy"] is False
    assert snap.to_json()["stopped"] == {"mqtt": "thread paho died: ValueError: x"}
    assert "depin_gateway_healthy 0.0" in prometheus_text(snap).decode()


def test_healthz_is_503_while_degraded_with_the_reason() -> None:
    snap = make_snapshot(health=Health(degraded=("disk full: 0 bytes free, below the reserve",)))
    code, line = snap.healthz()
    assert code == 503 and line.startswith("degraded: disk full: ")
    assert "depin_gateway_degraded 1.0" in prometheus_text(snap).decode()
    assert make_snapshot().healthz() == (200, "ok")


def test_a_seal_backoff_keeps_its_pinned_keys_and_types() -> None:
    """The disk section's ``seal_backoff`` while sealing waits (null otherwise)."""
    backoff = SealBackoff(
        failures=2,
        retry_at=105.0,
        retry_at_wall=1_700_000_000.0,
        needed_bytes=4096,
        error="No space left",
        waiting_for_space=True,
    )
    budget = BudgetState(used=10, budget=20, filesystem_free=5, backpressure=True, reserve=8)
    disk = as_json(disk_status(budget, seal_backoff_status(backoff, now=100.0), 30, 4))
    assert mismatches(disk["seal_backoff"], SEAL_BACKOFF) == []
    assert disk["seal_backoff"]["next_retry_at"] == "2023-11-14T22:13:20Z"
    assert disk["seal_backoff"]["next_retry_in_s"] == 5.0
    assert disk["below_reserve"] is True


def test_the_deal_services_stats_round_trip_through_the_typed_value() -> None:
    """Nothing the deal service reports is lost or retyped on its way into StorageStatus."""
    stats: dict[str, Any] = STORAGE.to_json()
    assert mismatches(stats, STORAGE_SHAPE) == []
    typed = storage_status(stats)
    assert typed == STORAGE and typed is not None and typed.to_json() == stats
    assert storage_status({"enabled": False}) is None


SECRET_WORDS = ("secret", "private", "password", "seed", "token", "mnemonic", "signing")


def _field_names(cls: type, seen: set[type]) -> list[str]:
    if cls in seen or not is_dataclass(cls):
        return []
    seen.add(cls)
    hints = get_type_hints(cls, vars(status_module.sections) | vars(status_module.snapshot))
    names = [f"{cls.__name__}.{f.name}" for f in fields(cls)]
    for hint in hints.values():
        for part in (*getattr(hint, "__args__", ()), hint):
            names += _field_names(part, seen) if isinstance(part, type) else []
    return names


def test_no_status_value_has_a_field_that_could_hold_a_secret() -> None:
    """Every value reachable from the snapshot, by field name (only the public key is a key)."""
    names = _field_names(StatusSnapshot, set())
    assert len(names) > 100  # every section was walked
    flagged = [n for n in names if any(w in n.lower() for w in SECRET_WORDS)
               or ("key" in n.lower() and not n.endswith(".public_key"))]  # fmt: skip
    assert flagged == []


def test_no_secret_reaches_status_metrics_or_the_heartbeat(tmp_path: Path) -> None:
    """A gateway with MQTT credentials, storage and a fleet broker: its identity and owner
    secrets and the MQTT password appear in none of /status, /metrics or the heartbeat."""
    config_path = write_config(tmp_path, free_port(), extra="\n".join([
        "[storage]", 'nodes = ["http://127.0.0.1:9"]',
        "[fleet]", f'broker = "mqtt://127.0.0.1:{free_port()}"',
    ]))  # fmt: skip
    text = config_path.read_text().replace(
        "[mqtt]\n", '[mqtt]\nusername = "gw-user"\npassword = "hunter2-mqtt-pass"\n', 1
    )
    config_path.write_text(text)
    gateway = Gateway(load_config(config_path))
    try:
        snapshot = gateway.snapshot()
        assert snapshot.storage is not None and snapshot.sources.mqtt is not None
        shown = "\n".join([
            json.dumps(snapshot.to_json()),
            prometheus_text(snapshot).decode(),
            json.dumps(heartbeat_body(snapshot, 0.0)),
        ])  # fmt: skip
    finally:
        gateway.stop()
    state = tmp_path / "state"
    secrets = [
        "hunter2-mqtt-pass",
        bytes(load_identity(state / "identity.key")).hex(),
        bytes(load_owner_secret(state / "owner.key")).hex(),
    ]
    assert [secret for secret in secrets if secret in shown] == []
    assert "gw-user" not in shown
