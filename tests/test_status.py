"""Status snapshots render as JSON with the stable fields and as Prometheus text."""

from __future__ import annotations

from gateway.daemon.metrics import prometheus_text
from gateway.status import StatusSnapshot


def snapshot(**details: object) -> StatusSnapshot:
    return StatusSnapshot("gw", "ed25519:00", "0.1.0", 12.5, 100, 40, 3, 2, 1, True, "bafk...",
                          details)  # fmt: skip


def test_json_keeps_the_stable_top_level_fields_first_and_details_after() -> None:
    data = snapshot(disk={"used": 1, "budget": 2, "bytes_written": 3}).to_json()
    assert list(data)[:11] == ["gateway_id", "public_key", "version", "uptime_s", "readings_total",
                               "spool_pending", "batches_sealed", "batches_durable", "quarantined",
                               "backpressure", "ledger_head"]  # fmt: skip
    assert data["disk"]["bytes_written"] == 3


def test_prometheus_text_covers_ingest_disk_sources_and_storage() -> None:
    text = prometheus_text(snapshot(
        disk={"used": 10, "budget": 20, "bytes_written": 30},
        sources={"mqtt": {"received": 7, "connected": True}},
        storage={"enabled": True, "repairs": 2, "fragments_proven": 6,
                 "fil": {"spent": "10", "committed": str(10**19), "budget": "100"},
                 "nodes": [{"url": "http://n1", "proofs_passed": 3, "proofs_failed": 1,
                            "reputation": 0.9}]},
    )).decode()  # fmt: skip
    expected = (
        "depin_gateway_readings_total 100.0",
        "depin_gateway_backpressure 1.0",
        "depin_gateway_disk_written_bytes_total 30.0",
        'depin_gateway_source_received_total{source="mqtt"} 7.0',
        'depin_gateway_storage_node_proofs_total{node="http://n1",result="failed"} 1.0',
        "depin_gateway_repairs_total 2.0",
        "depin_gateway_fil_committed_attofil 1e+19",
    )
    for line in expected:
        assert line in text, line


def test_health_is_in_the_json_after_the_stable_fields() -> None:
    data = snapshot().to_json()
    assert list(data)[11:13] == ["healthy", "degraded"]
    assert data["healthy"] is True and data["degraded"] == []


def test_healthz_says_which_component_stopped_and_why() -> None:
    snap = StatusSnapshot("gw", "ed25519:00", "0.1.0", 1.0, 0, 0, 0, 0, 0, False, None,
                          {"stopped": {"mqtt": "thread paho died: ValueError: x"}},
                          healthy=False)  # fmt: skip
    assert snap.health() == (503, "unhealthy: mqtt: thread paho died: ValueError: x")
    assert "depin_gateway_healthy 0.0" in prometheus_text(snap).decode()


def test_healthz_is_503_while_degraded_with_the_reason() -> None:
    snap = StatusSnapshot("gw", "ed25519:00", "0.1.0", 1.0, 0, 0, 0, 0, 0, True, None, {},
                          degraded=("disk full: 0 bytes free, below the reserve",))  # fmt: skip
    code, line = snap.health()
    assert code == 503 and line.startswith("degraded: disk full: ")
    assert "depin_gateway_degraded 1.0" in prometheus_text(snap).decode()
    assert snapshot().health() == (200, "ok")
